"""Distributed runs on the local cluster: worker errors in the CR, torchrun ranks across two DGX
process nodes, and a gang attempt that resumes from the last checkpoint after a rank is killed.

The operator runs as in test_operator (a subprocess watching the test's namespace). Its
``dgx-h100`` profile here selects the DGX *process* nodes and gives their pods
``SYNTHLOOP_CPU_RANKS=2``: they have no CUDA, so torchrun starts 2 gloo ranks per pod where a
DGX would start one per GPU. A second DGX process node (``local-dgx-1``) is added for the
module by a second node agent unless the cluster already has it (``--dgx-process-nodes 2``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthloop.artifacts.manifest import verify_manifest
from synthloop.artifacts.store import open_store
from synthloop.local.options import NODE_KIND_LABEL
from synthloop.local.testing import LocalCluster, wait_for
from synthloop.workers.errors import EXIT_INVALID_INPUT
from tests.integration import test_operator as op

operator = op.operator  # the fixture: `synthloop operator` for the test's namespace
pytestmark = pytest.mark.local_only  # process nodes (a second DGX one, CPU ranks) exist only locally
SECOND_DGX = "local-dgx-1"
#: The same run three ways: one process (reference), 2 pods x 2 ranks, and killed + resumed.
STEPS, EVERY = 24, 6
PARAMS: dict[str, Any] = {
    "model": {"preset": "tiny-test", "seqLength": 64},
    "tokenizer": {"vocabSize": 256, "trainDocs": 200},
    "phases": [{"name": "p", "steps": STEPS, "lr": 3e-3, "minLr": 3e-4,
                "blend": [{"source": "english", "weight": 0.6}, {"source": "arithmetic", "weight": 0.4}]}],
    "globalBatchSize": 8,
    "parallelism": {"microBatchSize": 2},
    "checkpoint": {"everySteps": EVERY},
    "logEvery": 1,
    "progressEvery": 6,
}
#: fp32 on CPU: 4 ranks sum gradients in another order than one process (measured ~1e-6).
LOSS_TOLERANCE = 1e-4
#: A resumed run against the same world uninterrupted: same sums in the same order.
RESUME_TOLERANCE = 1e-6


def _node_ready(lc: LocalCluster, name: str) -> bool:
    node = lc.kube.get_or_none(f"/api/v1/nodes/{name}")
    conds = ((node or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_dgx_nodes(local_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """local-dgx-0 and local-dgx-1, the second from a node agent of its own when missing."""
    from synthloop.local.paths import LocalPaths

    lc = local_cluster
    if _node_ready(lc, SECOND_DGX):
        yield ["local-dgx-0", SECOND_DGX]
        return
    workdir = tmp_path_factory.mktemp("agent")
    cfg = json.loads((LocalPaths.default().local_dir / "node-agent.json").read_text())
    cfg.update({"dgx_nodes": 1, "cpu_nodes": 0, "first_dgx": 1, "kubelet_port": _free_port()})
    (workdir / "agent.json").write_text(json.dumps(cfg))
    with (workdir / "agent.log").open("wb") as out:
        agent = subprocess.Popen([sys.executable, "-m", "synthloop.local.nodeagent", "--config",
                                  str(workdir / "agent.json")], stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: _node_ready(lc, SECOND_DGX) or agent.poll() is not None, timeout=60,
                 what=f"node {SECOND_DGX} Ready")
        assert agent.poll() is None, (workdir / "agent.log").read_text()[-3000:]
        yield ["local-dgx-0", SECOND_DGX]
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        lc.kubectl("delete", "node", SECOND_DGX, "--wait=false", check=False)


def _run_outside_the_cluster(out: Path, launcher: list[str]) -> dict[str, Any]:
    """The same pretrain run on this machine (file:// output): its losses and final weights."""
    cfg = {"task": "pretrain", "output": f"file://{out}/", "params": PARAMS, "workdir": str(out / "work")}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SYNTHLOOP_S3", "SYNTHLOOP_CPU_RANKS", "AWS_", "RANK", "WORLD_SIZE", "LOCAL_",
                                "MASTER_"))}
    proc = subprocess.run([*launcher, "-m", "synthloop.workers.cli", "pretrain"],
                          env={**env, "SYNTHLOOP_WORKER_CONFIG": json.dumps(cfg)},
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    from safetensors.torch import load_file

    return {"losses": json.loads((out / "losses.json").read_text())["losses"],
            "weights": load_file(str(out / "model" / "model.safetensors"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run as one process (world size 1): what the loss curves of 4 ranks are held to."""
    return _run_outside_the_cluster(tmp_path_factory.mktemp("reference"), [sys.executable])


@pytest.fixture(scope="module")
def reference4(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run uninterrupted in a world of 4 gloo ranks, as the 2 pods x 2 ranks run it: the same
    gradient sums in the same order, so a resumed run must end at exactly these weights."""
    return _run_outside_the_cluster(tmp_path_factory.mktemp("reference4"), [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4"])


def _profile(operator: op.Operator) -> None:
    operator.profiles["dgx-h100"] = {
        "nodeSelector": {NODE_KIND_LABEL: "process", **op.DGX_SELECTOR},
        "tolerations": [op.GPU_TOLERATION], "gpusPerNode": 8, "shmSize": "1Gi",
        "env": {"SYNTHLOOP_CPU_RANKS": "2"},
    }


def _pretrain(nodes: int, *, backoff: int = 0, **extra: Any) -> dict[str, Any]:
    # gpusPerNode 2: what the first pass sizes the data-parallel world by (2 x nodes), and what
    # torchrun's --nproc-per-node says; the CPU pods run SYNTHLOOP_CPU_RANKS=2 instead.
    return {**PARAMS, "backoffLimit": backoff, "resources": {"nodes": nodes, "gpusPerNode": 2}, **extra}


def _events(lc: LocalCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = lc.kube.get(f"/api/v1/namespaces/{namespace}/events",
                                              fieldSelector=f"involvedObject.name={name}")["items"]
    return items


def _pod_logs(lc: LocalCluster, namespace: str, job: str) -> str:
    return "\n".join(lc.kubectl("logs", "-n", namespace, p["metadata"]["name"], check=False).stdout
                     for p in op.pods(lc, namespace, job))


def test_invalid_input_fails_after_one_pod_with_the_workers_reason(
    local_cluster: LocalCluster, namespace: str, operator: op.Operator, s3_env: dict[str, str]
) -> None:
    lc = local_cluster
    _profile(operator)
    data = f"s3://{lc.bucket}/{namespace}/inputs/docs/"
    open_store().put_bytes(data + "vulcan.jsonl", b'{"text": "live long"}\n')
    spec = _pretrain(1, backoff=2, data={"uri": data})
    spec["phases"] = [{"name": "p", "steps": 2, "blend": [{"source": "klingon", "weight": 1}]}]
    op.apply(lc, namespace, op.cr("PretrainJob", "klingon", spec))
    operator.start()
    body = op.wait_phase(lc, operator, namespace, "PretrainJob", "klingon", {"Failed"}, timeout=180)
    failed = op.condition(body, "Failed")
    assert failed["reason"] == "InvalidInput", failed
    assert failed["message"].startswith(
        "stage pretrain: phase 'p': unknown blend sources ['klingon']; expected builtin "), failed
    (job,) = op.jobs(lc, namespace)
    assert job["status"].get("failed") == 1 and not job["status"].get("active")  # one pod, no retry
    (pod,) = op.pods(lc, namespace, "klingon-pretrain")
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == EXIT_INVALID_INPUT and "unknown blend sources ['klingon']" in term["message"]
    warnings = [e for e in _events(lc, namespace, "klingon") if e["type"] == "Warning"]
    assert {"PodFailed", "InvalidInput"} <= {e["reason"] for e in warnings}
    assert any("unknown blend sources" in e["message"] for e in warnings if e["reason"] == "PodFailed")


def test_two_nodes_with_two_ranks_each_train_like_one_process(
    local_cluster: LocalCluster, namespace: str, operator: op.Operator, two_dgx_nodes: list[str],
    reference: dict[str, Any], s3_env: dict[str, str]
) -> None:
    lc = local_cluster
    _profile(operator)
    op.apply(lc, namespace, op.cr("PretrainJob", "ddp", _pretrain(2)))
    operator.start()
    body = op.wait_phase(lc, operator, namespace, "PretrainJob", "ddp", {"Succeeded"}, timeout=420)
    assert body["status"]["counts"]["ranks"] == 4  # 2 pods x 2 ranks in one world
    nodes = {p["spec"]["nodeName"] for p in op.pods(lc, namespace, "ddp-pretrain")}
    assert nodes == set(two_dgx_nodes)
    store = open_store()
    prefix = body["status"]["outputs"][0]["uri"].removesuffix("model/")
    losses = store.get_json(prefix + "losses.json")["losses"]
    assert len(losses) == len(reference["losses"]) == STEPS
    worst = max(abs(a - b) for a, b in zip(losses, reference["losses"], strict=True))
    assert worst < LOSS_TOLERANCE, f"loss curves differ by {worst:.3g}"
    print(f"4 ranks vs 1 process: max |loss difference| over {STEPS} steps = {worst:.3g}")
    # The manifest is rank 0's alone: one "finished" over the logs of all four ranks.
    logs = _pod_logs(lc, namespace, "ddp-pretrain")
    assert logs.count('"event": "finished"') == 1, logs[-3000:]
    verify_manifest(store, prefix)


def _rank_pid(pod: str, rank: int) -> int | None:
    """The pid of the torchrun rank ``rank`` of a process-node pod (found by its env)."""
    want = {f"HOSTNAME={pod}".encode(), f"RANK={rank}".encode()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if b"synthloop.workers.cli" not in (entry / "cmdline").read_bytes():
                continue
            env = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if want <= env:
            return int(entry.name)
    return None


def _last_step(namespace: str, pod: str) -> int:
    """The last step rank 0 logged, read from the process node's log file of the pod."""
    from synthloop.local.nodeagent.logs import find_log
    from synthloop.local.paths import LocalPaths

    path = find_log(LocalPaths.default().pods_dir, namespace, pod, "worker")
    steps = [json.loads(line)["step"] for line in (path.read_text().splitlines() if path else [])
             if line.startswith('{"event": "step"')]
    return max(steps, default=0)


def test_a_killed_rank_fails_the_attempt_and_the_next_resumes_from_the_checkpoint(
    local_cluster: LocalCluster, namespace: str, operator: op.Operator, two_dgx_nodes: list[str],
    reference: dict[str, Any], reference4: dict[str, Any], s3_env: dict[str, str]
) -> None:
    lc = local_cluster
    _profile(operator)
    op.apply(lc, namespace, op.cr("PretrainJob", "gang", _pretrain(2, backoff=1)))
    operator.start()
    store = open_store()
    uid = wait_for(lambda: (op.get_cr(lc, namespace, "PretrainJob", "gang").get("status") or {}).get("runId"),
                   timeout=60, what="the run id")
    ckpt = f"s3://{lc.bucket}/{namespace}/pretrainjob/gang/{uid}/pretrain/checkpoints/step-{EVERY}/"
    wait_for(lambda: store.exists(ckpt + "manifest.json"), timeout=300, interval=0.2,
             what=f"checkpoint step {EVERY}\n{operator.logs()}")
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p["metadata"]["name"]
                for p in op.pods(lc, namespace, "gang-pretrain")}
    pid = wait_for(lambda: _rank_pid(by_index["1"], 3), timeout=10, what=f"rank 3 of {by_index['1']}")
    os.kill(pid, signal.SIGKILL)
    killed_at = _last_step(namespace, by_index["0"])  # rank 0's last logged step when rank 3 died
    body = op.wait_phase(lc, operator, namespace, "PretrainJob", "gang", {"Succeeded"}, timeout=600)
    names = sorted(j["metadata"]["name"] for j in op.jobs(lc, namespace))
    assert names == ["gang-pretrain", "gang-pretrain-attempt-2"]
    first = next(j for j in op.jobs(lc, namespace) if j["metadata"]["name"] == "gang-pretrain")
    assert any(c["type"] == "Failed" and c["status"] == "True" for c in first["status"]["conditions"])
    resumed = body["status"]["counts"]["resumed_from_step"]
    assert resumed >= EVERY and resumed % EVERY == 0, body["status"]["counts"]  # not from 0
    assert (body["status"]["stageAttempt"], body["status"]["resumedFromStep"]) == (2, resumed)
    cfg = json.loads(next(e["value"] for e in next(
        j for j in op.jobs(lc, namespace) if j["metadata"]["name"] == "gang-pretrain-attempt-2"
    )["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == "SYNTHLOOP_WORKER_CONFIG"))
    assert cfg["resume_from"].endswith(f"/checkpoints/step-{resumed}/")
    reasons = [e["reason"] for e in _events(lc, namespace, "gang")]
    assert "AttemptFailed" in reasons and "AttemptStarted" in reasons
    # The resumed run ends where an uninterrupted one does.
    prefix = body["status"]["outputs"][0]["uri"].removesuffix("model/")
    losses = store.get_json(prefix + "losses.json")["losses"]
    assert len(losses) == STEPS
    worst = max(abs(a - b) for a, b in zip(losses, reference["losses"], strict=True))
    from safetensors.torch import load

    weights = load(store.get_bytes(prefix + "model/model.safetensors"))
    dw = max(float((weights[k] - reference["weights"][k]).abs().max()) for k in reference["weights"])
    dw4 = max(float((weights[k] - reference4["weights"][k]).abs().max()) for k in reference4["weights"])
    print(f"killed rank 3 at step {killed_at} (checkpoint {EVERY} existed): resumed from step {resumed}, "
          f"{killed_at - resumed} step(s) lost; max |loss diff| {worst:.3g}, max |weight diff| {dw:.3g} "
          f"vs one process, {dw4:.3g} vs 4 ranks uninterrupted")
    assert worst < LOSS_TOLERANCE, f"loss curves differ by {worst:.3g}"
    assert dw4 < RESUME_TOLERANCE, f"the resumed weights differ from an uninterrupted run's by {dw4:.3g}"


def test_an_evicted_rank_is_a_disruption_even_after_its_pod_is_gone(
    local_cluster: LocalCluster, namespace: str, operator: op.Operator, two_dgx_nodes: list[str],
    s3_env: dict[str, str]
) -> None:
    """backoffLimit 0 and an evicted rank: the eviction deletes the pod, the gang's Job fails on
    its DisruptionTarget, and the operator still starts attempt 2, which resumes and succeeds."""
    lc = local_cluster
    _profile(operator)
    op.apply(lc, namespace, op.cr("PretrainJob", "evict", _pretrain(2, backoff=0)))
    operator.start()
    store = open_store()
    uid = wait_for(lambda: (op.get_cr(lc, namespace, "PretrainJob", "evict").get("status") or {}).get("runId"),
                   timeout=60, what="the run id")
    ckpt = f"s3://{lc.bucket}/{namespace}/pretrainjob/evict/{uid}/pretrain/checkpoints/step-{EVERY}/"
    wait_for(lambda: store.exists(ckpt + "manifest.json"), timeout=300, interval=0.2,
             what=f"checkpoint step {EVERY}\n{operator.logs()}")
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p["metadata"]["name"]
                for p in op.pods(lc, namespace, "evict-pretrain")}
    victim = by_index["1"]
    lc.kube.create(f"/api/v1/namespaces/{namespace}/pods/{victim}/eviction",
                   {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim, "namespace": namespace}})
    body = op.wait_phase(lc, operator, namespace, "PretrainJob", "evict", {"Succeeded"}, timeout=600)
    assert lc.kube.get_or_none(f"/api/v1/namespaces/{namespace}/pods/{victim}") is None  # evicted: deleted
    names = sorted(j["metadata"]["name"] for j in op.jobs(lc, namespace))
    assert names == ["evict-pretrain", "evict-pretrain-attempt-2"]  # retried although backoffLimit is 0
    first = next(j for j in op.jobs(lc, namespace) if j["metadata"]["name"] == "evict-pretrain")
    failed = next(c for c in first["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "PodFailurePolicy" and f"{victim} has condition DisruptionTarget" in failed["message"]
    assert body["status"]["stageAttempt"] == 2 and body["status"]["resumedFromStep"] >= EVERY
