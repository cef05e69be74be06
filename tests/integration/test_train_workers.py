"""The training and eval workers against the local cluster's MinIO, as pods run them.

pretrain -> reward-train -> align (sft, dpo, rpo) -> eval, each as a separate
``python -m synthloop.workers.cli <task>`` process with the cluster's S3 env and the config in
``SYNTHLOOP_WORKER_CONFIG``; inputs are the previous runs' ``s3://`` prefixes. Every run must
leave a manifest that verifies (sizes and sha256) with its outputs, and a resumed pretrain
must continue from the checkpoint it left in MinIO.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from synthloop.artifacts.manifest import verify_manifest
from synthloop.artifacts.store import open_store
from synthloop.corpus import preference_rows, rating_rows, sft_rows

PRETRAIN: dict[str, Any] = {
    "model": {"preset": "tiny-test", "seqLength": 32},
    "tokenizer": {"vocabSize": 256, "trainDocs": 200},
    "phases": [
        {"name": "pretrain", "steps": 12, "lr": 3e-3, "minLr": 3e-4,
         "blend": [{"source": "english", "weight": 0.6}, {"source": "arithmetic", "weight": 0.4}]},
        {"name": "continued", "steps": 4, "lr": 1e-3, "minLr": 0.0, "decay": "steep",
         "blend": [{"source": "qa", "weight": 1.0}]},
    ],
    "globalBatchSize": 4,
    "parallelism": {"microBatchSize": 4},
    "checkpoint": {"everySteps": 5},
    "logEvery": 4,
    "progressEvery": 4,
}


def worker(task: str, cfg: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    run_env = {**os.environ, **env, "SYNTHLOOP_WORKER_CONFIG": json.dumps(cfg)}
    run_env.pop("JOB_COMPLETION_INDEX", None)
    proc = subprocess.run([sys.executable, "-m", "synthloop.workers.cli", task], env=run_env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{task} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_pretrain_reward_align_eval_on_minio(local_cluster: Any, s3_env: dict[str, str],
                                             namespace: str, tmp_path: Any) -> None:
    store = open_store()
    bucket = local_cluster.bucket
    run_id = uuid.uuid4().hex[:8]

    def prefix(kind: str, name: str) -> str:
        return f"s3://{bucket}/{namespace}/{kind.lower()}/{name}/{run_id}/"

    def config(task: str, kind: str, name: str, **kw: Any) -> dict[str, Any]:
        return {"task": task, "namespace": namespace, "kind": kind, "name": name, "uid": run_id,
                "output": prefix(kind, name), "workdir": str(tmp_path / name), "spec_hash": "abc",
                "image": "synthloop:test", **kw}

    data = f"s3://{bucket}/{namespace}/data/{run_id}"
    for name, rows in (("ratings", rating_rows(n=32)), ("pref", preference_rows(n=16, seed=1)),
                       ("sft", sft_rows(n=16))):
        store.put_bytes(f"{data}/{name}.jsonl", "\n".join(json.dumps(r) for r in rows).encode())

    # pretrain, with a checkpoint every 5 steps in MinIO
    pre = prefix("pretrainjob", "base")
    proc = worker("pretrain", config("pretrain", "PretrainJob", "base", params=PRETRAIN), s3_env)
    assert '"event": "checkpoint"' in proc.stdout
    m = verify_manifest(store, pre)
    assert m.task == "pretrain" and m.spec_hash == "abc" and m.namespace == namespace
    # it learns: within the first phase (one distribution), the last steps' loss is below the
    # first steps'; the continued phase trains on other text, so loss.final is not comparable
    losses = store.get_json(f"{pre}losses.json")["losses"]
    assert len(losses) == 16 and sum(losses[9:12]) < sum(losses[:3]), losses
    assert store.exists(f"{pre}model/model.safetensors")
    assert verify_manifest(store, f"{pre}checkpoints/step-15/").extra["step"] == 15
    progress = store.get_json(f"{pre}progress/pretrain-0.json")
    assert progress["done"] == 16 and progress["total"] == 16

    # resuming a run whose checkpoint exists continues from it (a retried pod)
    store.delete(f"{pre}manifest.json")
    proc = worker("pretrain", config("pretrain", "PretrainJob", "base", params=PRETRAIN,
                                     workdir=str(tmp_path / "base-retry")), s3_env)
    assert '"event": "resumed"' in proc.stdout
    assert verify_manifest(store, pre).counts["resumed_from_step"] == 15

    rm = prefix("rewardtrain", "rm")
    worker("reward-train", config("reward-train", "RewardTrain", "rm",
                                  inputs={"model": pre, "data": f"{data}/ratings.jsonl",
                                          "preference": f"{data}/pref.jsonl"},
                                  params={"training": {"epochs": 1, "globalBatchSize": 8,
                                                       "bradleyTerryWeight": 0.5}}), s3_env)
    m = verify_manifest(store, rm)
    assert 0.0 <= m.metrics["preference.accuracy"] <= 1.0
    assert {r.role for r in m.inputs} == {"model", "data", "preference"}
    assert all(r.sha256 for r in m.inputs)

    al = prefix("alignjob", "chat")
    worker("align", config("align", "AlignJob", "chat",
                           inputs={"model": pre, "sft": f"{data}/sft.jsonl",
                                   "preference": f"{data}/pref.jsonl", "reward_model": rm},
                           params={"microBatchSize": 8, "stages": [
                               {"type": "sft", "lr": 3e-3, "globalBatchSize": 8},
                               {"type": "dpo", "lr": 1e-3, "beta": 0.1, "globalBatchSize": 8},
                               {"type": "rpo", "lr": 1e-3, "beta": 0.1, "iterations": 2,
                                "reference": "previous", "globalBatchSize": 8}]}), s3_env)
    m = verify_manifest(store, al)
    assert m.metrics["stage.1-dpo.margin_after"] > m.metrics["stage.1-dpo.margin_before"]
    for stage in ("0-sft", "1-dpo", "2-rpo-1", "2-rpo-2"):
        verify_manifest(store, f"{al}stages/{stage}/")

    ev = prefix("alignjob", "chat-eval")
    worker("eval", config("eval", "AlignJob", "chat-eval",
                          inputs={"model": al, "reward_model": rm, "baseline_model": pre},
                          params={"maxNewTokens": 8, "suites": [
                              {"type": "multipleChoice", "tasks": ["arithmetic"], "limit": 8},
                              {"type": "ifeval", "tasks": ["synthetic"], "limit": 4},
                              {"type": "rewardWinRate", "limit": 4}]}), s3_env)
    m = verify_manifest(store, ev)
    body = store.get_json(f"{ev}metrics.json")
    assert body["metrics"] == m.metrics
    for name in ("mc.arithmetic.acc", "ifeval.prompt_strict", "reward.win_rate"):
        assert name in body["metrics"] and body["counts"][name] > 0


def test_a_failing_worker_leaves_no_manifest(local_cluster: Any, s3_env: dict[str, str],
                                             namespace: str, tmp_path: Any) -> None:
    store = open_store()
    out = f"s3://{local_cluster.bucket}/{namespace}/alignjob/bad/{uuid.uuid4().hex[:8]}/"
    cfg = {"task": "align", "output": out, "workdir": str(tmp_path),
           "inputs": {"model": f"s3://{local_cluster.bucket}/{namespace}/nowhere/"},
           "params": {"stages": [{"type": "sft"}]}}
    run_env = {**os.environ, **s3_env, "SYNTHLOOP_WORKER_CONFIG": json.dumps(cfg)}
    proc = subprocess.run([sys.executable, "-m", "synthloop.workers.cli", "align"], env=run_env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 0
    assert "needs an 'sft' input" in proc.stderr
    assert not store.exists(f"{out}manifest.json")



def test_data_parallel_pretrain_matches_one_process(tmp_path: Any) -> None:
    """torchrun with 2 CPU processes (gloo, the DDP path a multi-GPU pod takes) trains the same
    model as one process: rows of the global batch split by rank, gradients averaged."""
    params = {**PRETRAIN, "phases": PRETRAIN["phases"][:1], "checkpoint": {"everySteps": 6}}
    params["phases"] = [{**params["phases"][0], "steps": 6}]
    results = []
    for name, launcher in (("one", [sys.executable, "-m", "synthloop.workers.cli", "pretrain"]),
                           ("ddp", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                    "--master_port", str(29500 + os.getpid() % 1000),
                                    "-m", "synthloop.workers.cli", "pretrain"])):
        cfg = {"task": "pretrain", "output": f"file://{tmp_path}/{name}/",
               "workdir": str(tmp_path / f"w-{name}"), "params": params}
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHLOOP_S3")}
        proc = subprocess.run(launcher, env={**env, "SYNTHLOOP_WORKER_CONFIG": json.dumps(cfg)},
                              capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results.append(json.loads((tmp_path / name / "losses.json").read_text())["losses"])
    one, ddp = results
    assert len(one) == len(ddp) == 6
    assert max(abs(a - b) for a, b in zip(one, ddp, strict=True)) < 1e-4
