"""The synth worker against the local cluster's MinIO: two shards, then the merge.

Runs ``synthloop-worker`` as separate processes with the cluster's S3 env, exactly as a pod's
command would, on a tiny torch model built here and uploaded to MinIO (no download).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from synthloop.artifacts.manifest import verify_manifest
from synthloop.artifacts.store import open_store
from synthloop.workers.synth import formats

#: A SynthRound's settings as the operator hands them over (``SynthParams.of(spec)``); the
#: generator and reward models arrive resolved in ``inputs``.
PARAMS: dict[str, Any] = {
    "prompts": {"math": 4, "python": 2, "openQA": 2, "closedQA": 2, "instructionFollowing": 2, "twoTurn": 1,
                "writing": 1, "refusals": 1},
    "generator": {"backend": "transformers", "model": {"uri": "s3://resolved/into/inputs/"}, "maxTokens": 12,
                  "batchSize": 32},
    "dialogues": {"count": 2, "turns": 2},
    "preference": {"responsesPerPrompt": 2, "includeReference": True},
    "rewardFilter": {"threshold": -1000.0},
    "shards": 2,
}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from synthloop.models.build import make_tiny_model
    from synthloop.models.io import load_tokenizer
    from synthloop.models.reward import build_reward_model

    gen = make_tiny_model(tmp_path_factory.mktemp("gen"), seed=3)
    rm = tmp_path_factory.mktemp("rm")
    build_reward_model(gen).save_pretrained(rm)
    load_tokenizer(str(gen)).save_pretrained(rm)
    return gen, rm


def worker(task: str, cfg: dict[str, Any], env: dict[str, str], *, index: int | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {**os.environ, **env, "SYNTHLOOP_WORKER_CONFIG": json.dumps(cfg)}
    run_env.pop("JOB_COMPLETION_INDEX", None)
    if index is not None:
        run_env["JOB_COMPLETION_INDEX"] = str(index)  # as an Indexed Job sets it
    return subprocess.run([sys.executable, "-m", "synthloop.workers.cli", task], env=run_env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_two_shards_and_merge_on_minio(local_cluster: Any, s3_env: dict[str, str], namespace: str,
                                       tiny_models: tuple[Path, Path], tmp_path: Path) -> None:
    store = open_store()
    bucket = local_cluster.bucket
    gen, rm = tiny_models
    models = f"s3://{bucket}/{namespace}/models"
    store.upload_dir(gen, f"{models}/gen/")
    store.upload_dir(rm, f"{models}/rm/")
    uid = uuid.uuid4().hex[:8]
    output = f"s3://{bucket}/{namespace}/synthround/round-1/{uid}/"
    cfg = {
        "task": "synth", "namespace": namespace, "kind": "SynthRound", "name": "round-1", "uid": uid,
        "output": output, "inputs": {"model": f"{models}/gen/", "reward_model": f"{models}/rm/"},
        "params": PARAMS, "num_shards": 2, "spec_hash": "abc123", "image": "synthloop:test",
    }
    cache = {"SYNTHLOOP_MODEL_CACHE": str(tmp_path / "cache")}
    for i in range(2):
        result = worker("synth", {**cfg, "workdir": str(tmp_path / f"w{i}")}, {**s3_env, **cache}, index=i)
        assert result.returncode == 0, result.stderr[-3000:]
    merged = worker("synth-merge", {**cfg, "task": "synth-merge", "workdir": str(tmp_path / "wm")}, {**s3_env, **cache})
    assert merged.returncode == 0, merged.stderr[-3000:]

    manifest = verify_manifest(store, output)  # every output's size and sha256 checked
    names = sorted(o.uri.rsplit("/", 1)[1] for o in manifest.outputs)
    assert names == ["preference.jsonl", "preference.nemo.jsonl", "sft.jsonl", "sft.nemo.jsonl", "stats.json"]
    for ref in manifest.outputs:
        assert ref.uri.startswith(output)
        local = store.get_file(ref.uri, tmp_path / "check" / ref.uri.rsplit("/", 1)[1])
        from synthloop.artifacts.store import sha256_file

        assert sha256_file(local) == ref.sha256 and local.stat().st_size == ref.size
    sft = list(formats.read_jsonl(tmp_path / "check" / "sft.jsonl"))
    pref = list(formats.read_jsonl(tmp_path / "check" / "preference.jsonl"))
    assert manifest.counts["sft_rows"] == len(sft) > 0 and manifest.counts["preference_rows"] == len(pref) > 0
    for row in sft:
        formats.validate_trl_sft(row)
    for row in pref:
        formats.validate_trl_preference(row)
    assert {r["judge"] for r in pref} <= {"verifier", "reward_model"}
    assert any(r["judge"] == "reward_model" for r in pref)  # open QA etc. ranked by the reward model
    assert manifest.counts["math.prompts"] == 4 and manifest.counts["dialogue.prompts"] == 2
    assert manifest.extra["reward_model"] == f"{models}/rm/"
    assert manifest.spec_hash == "abc123" and manifest.image == "synthloop:test"
    shard_keys = [u for u in store.list(f"{output}shards/") if u.endswith("manifest.json")]
    assert len(shard_keys) == 2

    # A re-run of a finished shard is a no-op.
    again = worker("synth", {**cfg, "workdir": str(tmp_path / "w0b")}, {**s3_env, **cache}, index=0)
    assert again.returncode == 0 and "skipping" in again.stdout


def test_missing_bucket_and_object_fail_fast(s3_env: dict[str, str], namespace: str, tmp_path: Path,
                                             local_cluster: Any) -> None:
    bucket = local_cluster.bucket
    cfg = {"task": "synth", "namespace": namespace, "output": f"s3://{bucket}/{namespace}/synthround/r/x/",
           "inputs": {"model": "s3://no-such-bucket-synthloop/models/gen/"}, "params": PARAMS,
           "num_shards": 2, "workdir": str(tmp_path / "w")}
    result = worker("synth", cfg, s3_env, index=0)
    assert result.returncode == 2
    assert "input model: bucket 'no-such-bucket-synthloop'" in result.stderr
    cfg["inputs"] = {"model": f"s3://{bucket}/{namespace}/nothing-here/"}
    result = worker("synth", cfg, s3_env, index=0)
    assert result.returncode == 2 and "input model: nothing exists at" in result.stderr
