"""``synthloop-worker synth``: one shard of a SynthRound.

Shard ``i`` of ``n`` takes a deterministic slice of every family's items, writes
``<output>/shards/<i:05d>/{sft.jsonl,preference.jsonl,stats.json}`` and then ``manifest.json``.
Everything is written locally first and uploaded at the end, manifest last: a shard killed
half-way leaves no manifest, is redone from scratch on the next attempt (overwriting any
partial upload), and so never contributes duplicate records. A shard whose manifest exists and
verifies is skipped.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from synthloop.api.worker import SynthParams, WorkerConfig
from synthloop.artifacts.manifest import (
    ArtifactRef,
    Manifest,
    ManifestError,
    report_progress,
    verify_manifest,
    write_manifest,
)
from synthloop.artifacts.store import ArtifactStore, open_store
from synthloop.artifacts.uris import join
from synthloop.workers.synth import formats
from synthloop.workers.synth.backends import cpu_threads, make_backend
from synthloop.workers.synth.backends.base import ModelLoadError
from synthloop.workers.synth.backends.openai_backend import EndpointError
from synthloop.workers.synth.io import (
    SynthInputError,
    check_input,
    dump_json,
    fail,
    load_params,
    model_ref,
    read_documents,
    shard_count,
    shard_prefix,
)
from synthloop.workers.synth.judge import RewardJudge
from synthloop.workers.synth.pipeline import Pipeline

TASK = "synth"


@dataclass(frozen=True)
class ShardResult:
    prefix: str
    skipped: bool
    manifest: Manifest


def _local_dir(uri: str, store: ArtifactStore) -> Path | None:
    from synthloop.models.io import fetch_model_dir

    try:
        return fetch_model_dir(uri, store=store)
    except (OSError, RuntimeError, ValueError):
        return None


def resolve_inputs(config: WorkerConfig, params: SynthParams, store: ArtifactStore) -> dict[str, str]:
    """Role -> URI of every input this shard reads (resolved by the operator from the spec's
    references), each checked to exist."""
    inputs: dict[str, str] = {}
    if params.generator.backend != "openai":
        model = config.inputs.get("model")
        if not model:
            raise SynthInputError("input model: missing (spec.generator.model resolves to it)")
        inputs["model"] = model
    if config.inputs.get("reward_model"):
        inputs["reward_model"] = config.inputs["reward_model"]
    if config.inputs.get("documents") and params.prompts.closed_qa:
        inputs["documents"] = config.inputs["documents"]
    for role, uri in inputs.items():
        check_input(store, role, uri)
    return inputs


def run_shard(config: WorkerConfig, *, store: ArtifactStore | None = None) -> ShardResult:
    params = load_params(config)
    n = shard_count(config, params)
    index = config.shard_index
    store = store or open_store(config.output)
    prefix = shard_prefix(config.output, index)
    try:
        manifest = verify_manifest(store, prefix)
    except ManifestError:
        pass
    else:
        print(f"synth shard {index}/{n}: {prefix} already finished and verified; skipping", flush=True)
        return ShardResult(prefix, True, manifest)

    inputs = resolve_inputs(config, params, store)
    work = config.scratch() / f"shard-{index:05d}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()

    def progress(stage: str, done: int, total: int) -> None:
        report_progress(store, config.output, task=TASK, index=index, done=done, total=total, stage=stage)

    documents = read_documents(store, inputs["documents"], workdir=work) if "documents" in inputs else []
    # for openai the resolved spec.generator.model (if any) is the served model's name
    backend = make_backend(params.generator, model=config.inputs.get("model"), store=store)
    judge = (
        RewardJudge(inputs["reward_model"], weights=params.reward_filter.weights or None, store=store,
                    num_threads=cpu_threads())
        if "reward_model" in inputs else None
    )
    out = Pipeline(
        params, backend=backend, judge=judge, documents=documents,
        shard_index=index, num_shards=n, progress=progress,
    ).run()

    files = {
        "sft": (work / "sft.jsonl", out.sft),
        "preference": (work / "preference.jsonl", out.preference),
    }
    for path, rows in files.values():
        formats.write_jsonl(path, rows)
    stats = out.stats.as_dict()
    stats["shard"] = {"index": index, "num_shards": n, "seconds": round(time.monotonic() - started, 3)}
    dump_json(work / "stats.json", stats)

    outputs = [ArtifactRef.of(store.put_file(join(prefix, p.name), p), role=role) for role, (p, _) in files.items()]
    outputs.append(ArtifactRef.of(store.put_file(join(prefix, "stats.json"), work / "stats.json"), role="stats"))
    refs = [model_ref(uri, _local_dir(uri, store) if role.endswith("model") else None, role=role)
            for role, uri in inputs.items()]
    counts = out.stats.manifest_counts()
    counts.update({"sft_rows": len(out.sft), "preference_rows": len(out.preference)})
    manifest = Manifest(
        task=TASK, namespace=config.namespace, kind=config.kind, name=config.name, uid=config.uid,
        inputs=refs, outputs=outputs, counts=counts, metrics=out.stats.manifest_metrics(),
        spec_hash=config.spec_hash, image=config.image,
        extra={
            "shard_index": index, "num_shards": n,
            "generator": {"backend": params.generator.backend, "model": backend.model_id},
            "reward_model": inputs.get("reward_model"),
            "params": params.model_dump(mode="json", by_alias=True),
        },
    )
    write_manifest(store, prefix, manifest)
    progress("done", 1, 1)
    return ShardResult(prefix, False, manifest)


def run(config: WorkerConfig) -> int:
    try:
        result = run_shard(config)
    except (SynthInputError, ModelLoadError, EndpointError) as exc:
        return fail(TASK, exc)
    if not result.skipped:
        c = result.manifest.counts
        print(f"synth shard {config.shard_index}: {c['sft_rows']} SFT rows, {c['preference_rows']} preference pairs "
              f"-> {result.prefix}", flush=True)
    return 0
