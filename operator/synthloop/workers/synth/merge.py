"""``synthloop-worker synth-merge``: combine verified shards into the round's datasets.

Reads every shard's manifest (all must exist and verify), concatenates their records in
shard order, removes exact and near duplicates *across* shards, and writes the TRL files
(``sft.jsonl``, ``preference.jsonl``), the NeMo-Aligner files (``sft.nemo.jsonl``,
``preference.nemo.jsonl``), ``stats.json`` and finally ``manifest.json``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from synthloop.api.worker import WorkerConfig
from synthloop.artifacts.manifest import (
    ArtifactRef,
    Manifest,
    ManifestError,
    verify_manifest,
    write_manifest,
)
from synthloop.artifacts.store import ArtifactStore, open_store
from synthloop.artifacts.uris import join
from synthloop.workers.synth import formats
from synthloop.workers.synth.dedup import prompt_text
from synthloop.workers.synth.io import SynthInputError, dump_json, fail, load_params, shard_prefix
from synthloop.workers.synth.pipeline import dedup_rows
from synthloop.workers.synth.stats import Stats

TASK = "synth-merge"


@dataclass(frozen=True)
class MergeResult:
    prefix: str
    skipped: bool
    manifest: Manifest


def _ref(store: ArtifactStore, uri: str, *, role: str) -> ArtifactRef:
    return ArtifactRef(uri=uri, sha256=store.sha256(uri), size=store.size(uri), role=role)


def run_merge(config: WorkerConfig, *, store: ArtifactStore | None = None) -> MergeResult:
    params = load_params(config)
    n = config.num_shards if config.num_shards > 1 else params.shards
    store = store or open_store(config.output)
    try:
        return MergeResult(config.output, True, verify_manifest(store, config.output))
    except ManifestError:
        pass
    shard_manifests: list[Manifest] = []
    missing = []
    for i in range(n):
        try:
            shard_manifests.append(verify_manifest(store, shard_prefix(config.output, i)))
        except ManifestError as exc:
            missing.append(f"{i} ({exc})")
    if missing:
        raise SynthInputError(f"cannot merge: {len(missing)} of {n} shard(s) not finished: " + "; ".join(missing))

    work = config.scratch() / "merge"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    stats = Stats()
    sft: list[dict[str, Any]] = []
    preference: list[dict[str, Any]] = []
    for i, m in enumerate(shard_manifests):
        local = work / f"shard-{i:05d}"
        for role, rows in (("sft", sft), ("preference", preference)):
            rows.extend(formats.read_jsonl(store.get_file(m.output(role).uri, local / f"{role}.jsonl")))
        stats.merge(store.get_json(m.output("stats").uri).get("families", {}))
    d = params.dedup
    before = (len(sft), len(preference))
    sft = dedup_rows(sft, key=lambda r: prompt_text(r["messages"]), stats=stats, exact=d.exact,
                     near_threshold=d.near_threshold, kind="sft")
    preference = dedup_rows(preference, key=lambda r: prompt_text(r["prompt"]), stats=stats, exact=d.exact,
                            near_threshold=d.near_threshold, kind="preference")

    files = {
        "sft": ("sft.jsonl", sft),
        "preference": ("preference.jsonl", preference),
        "sft_nemo": ("sft.nemo.jsonl", [formats.to_nemo_sft(r) for r in sft]),
        "preference_nemo": ("preference.nemo.jsonl", [formats.to_nemo_preference(r) for r in preference]),
    }
    outputs = []
    for role, (name, rows) in files.items():
        formats.write_jsonl(work / name, rows)
        outputs.append(ArtifactRef.of(store.put_file(join(config.output, name), work / name), role=role))
    summary = stats.as_dict()
    summary["merge"] = {"shards": n, "cross_shard_duplicates": {"sft": before[0] - len(sft),
                                                                "preference": before[1] - len(preference)}}
    dump_json(work / "stats.json", summary)
    outputs.append(ArtifactRef.of(store.put_file(join(config.output, "stats.json"), work / "stats.json"), role="stats"))
    counts = stats.manifest_counts()
    counts.update({"sft_rows": len(sft), "preference_rows": len(preference), "shards": n})
    first = shard_manifests[0].extra if shard_manifests else {}
    manifest = Manifest(
        task=TASK, namespace=config.namespace, kind=config.kind, name=config.name, uid=config.uid,
        inputs=[_ref(store, join(shard_prefix(config.output, i), "manifest.json"), role=f"shard-{i:05d}")
                for i in range(n)],
        outputs=outputs, counts=counts, metrics=stats.manifest_metrics(),
        spec_hash=config.spec_hash, image=config.image,
        extra={"generator": first.get("generator"), "reward_model": first.get("reward_model"),
               "model_inputs": [r.model_dump() for r in shard_manifests[0].inputs] if shard_manifests else []},
    )
    write_manifest(store, config.output, manifest)
    return MergeResult(config.output, False, manifest)


def run(config: WorkerConfig) -> int:
    try:
        result = run_merge(config)
    except SynthInputError as exc:
        return fail(TASK, exc)
    c = result.manifest.counts
    state = "already merged" if result.skipped else "merged"
    print(f"synth-merge: {state}: {c.get('sft_rows')} SFT rows, {c.get('preference_rows')} preference pairs "
          f"-> {result.prefix}", flush=True)
    return 0
