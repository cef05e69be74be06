"""The real Kueue (v0.17.0, `synthloop local kueue up`) admitting synthloop runs on the local cluster.

Kueue is added to the shared cluster once (idempotent; it only manages Jobs carrying a
queue-name label, so the other tests see no difference). Each test gets its own ClusterQueue
of 8 GPUs (one DGX node's worth) that only its namespace may use, and a LocalQueue ``dgx``.
The runs are tiny PretrainJobs on a DGX process node of the module's own (``local-dgx-7``, a
second node agent), so their pods really run and no other test's pods take its GPUs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synthloop.local import kueue as local_kueue
from tests.conftest import LocalCluster, wait_for
from tests.integration.test_operator import Operator, apply, condition, cr, get_cr, wait_phase

pytestmark = pytest.mark.local_only  # starts Kueue as a process of the embedded cluster

GPUS = 8
QUEUE = "dgx"
PROBE = "synthloop.dev/probe"
PRIVATE_DGX = "local-dgx-7"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def kueue_running(local_cluster: LocalCluster) -> None:
    from synthloop.local.cluster import ClusterError, kueue_up
    from synthloop.local.paths import LocalPaths

    try:
        kueue_up(paths=LocalPaths.default(), build=False, progress=lambda _msg: None)
    except ClusterError as exc:
        pytest.fail(f"Kueue could not be added to the local cluster (CI runs `make local-build`, "
                    f"which builds it): {exc}", pytrace=False)


@pytest.fixture
def queue(local_cluster: LocalCluster, namespace: str, kueue_running: None) -> Iterator[str]:
    """ClusterQueue ``cq-<namespace>`` (8 GPUs, this namespace only) behind LocalQueue ``dgx``."""
    kube = local_cluster.kube
    cq = {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
        "metadata": {"name": f"cq-{namespace}"[:63]},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "resourceGroups": [{"coveredResources": ["nvidia.com/gpu"], "flavors": [{
                "name": local_kueue.FLAVOR,
                "resources": [{"name": "nvidia.com/gpu", "nominalQuota": str(GPUS)}]}]}],
            "preemption": {"withinClusterQueue": "LowerPriority"},
        },
    }
    local_kueue.apply(kube, cq)
    local_kueue.apply(kube, local_kueue.local_queue(namespace, QUEUE, cq["metadata"]["name"]))

    def active() -> bool:
        body = kube.get(local_kueue.object_path(cq))
        return any(c["type"] == "Active" and c["status"] == "True"
                   for c in (body.get("status") or {}).get("conditions") or [])

    wait_for(active, timeout=60, what=f"ClusterQueue {cq['metadata']['name']} Active")
    try:
        yield QUEUE
    finally:
        kube.delete(local_kueue.object_path(cq))


@pytest.fixture(scope="module")
def private_dgx(local_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DGX process node of this module's own (its own node agent): no other test's pods hold its
    8 GPUs, so which run holds them is decided by Kueue and these tests alone."""
    from synthloop.local.paths import LocalPaths

    def ready() -> bool:
        node = local_cluster.kube.get_or_none(f"/api/v1/nodes/{PRIVATE_DGX}") or {}
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (node.get("status") or {}).get("conditions") or [])

    workdir = tmp_path_factory.mktemp("agent")
    cfg = json.loads((LocalPaths.default().local_dir / "node-agent.json").read_text())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    cfg.update({"dgx_nodes": 1, "cpu_nodes": 0, "first_dgx": int(PRIVATE_DGX.rsplit("-", 1)[1]),
                "kubelet_port": port})
    (workdir / "agent.json").write_text(json.dumps(cfg))
    with (workdir / "agent.log").open("wb") as out:
        agent = subprocess.Popen([sys.executable, "-m", "synthloop.local.nodeagent", "--config",
                                  str(workdir / "agent.json")], stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(lambda: ready() or agent.poll() is not None, timeout=60, what=f"node {PRIVATE_DGX} Ready")
        assert agent.poll() is None, (workdir / "agent.log").read_text()[-3000:]
        yield PRIVATE_DGX
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        local_cluster.kubectl("delete", "node", PRIVATE_DGX, "--wait=false", check=False)


@pytest.fixture
def operator(local_cluster: LocalCluster, namespace: str, tmp_path: Path, s3_env: dict[str, str],
             queue: str, private_dgx: str) -> Iterator[Operator]:
    from tests.integration.test_operator import PLURALS, ROOT

    lc = local_cluster
    lc.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    lc.kube.create(f"/api/v1/namespaces/{namespace}/secrets", {
        "metadata": {"name": "synthloop-minio"},
        "stringData": {"accessKey": lc.access_key, "secretKey": lc.secret_key},
    })
    op = Operator(lc, namespace, tmp_path)
    op.profiles["dgx-h100"]["nodeSelector"]["kubernetes.io/hostname"] = private_dgx
    yield op
    if op.proc is not None:
        for plural in PLURALS.values():
            lc.kubectl("delete", plural, "--all", "-n", namespace, "--timeout=30s", check=False)
    op.stop()


def waited(predicate: Any, *, timeout: float, what: str, lc: LocalCluster, op: Operator, namespace: str) -> Any:
    """``wait_for`` that shows the CRs' status and the operator's log when it times out."""
    try:
        return wait_for(predicate, timeout=timeout, what=what)
    except AssertionError as exc:
        crs = lc.kube.get(f"/apis/synthloop.io/v1alpha1/namespaces/{namespace}/pretrainjobs")["items"]
        status = {c["metadata"]["name"]: c.get("status") for c in crs}
        raise AssertionError(f"{exc}\nstatus: {json.dumps(status, indent=1)}\n{op.logs()}") from None


def pretrain(name: str, **resources: Any) -> dict[str, Any]:
    return cr("PretrainJob", name, {
        "model": {"preset": "tiny-test"}, "backoffLimit": 0,
        "phases": [{"name": "p", "steps": 2, "blend": [{"source": "english", "weight": 1}]}],
        "resources": resources,
    })


def job(lc: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    body: dict[str, Any] | None = lc.kube.get_or_none(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
    return body


def pod_phases(lc: LocalCluster, namespace: str, job_name: str) -> list[str]:
    items = lc.kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"synthloop.io/job={job_name}")["items"]
    return [str((p.get("status") or {}).get("phase")) for p in items]


def test_two_runs_compete_for_one_quota_the_second_waits_with_kueues_reason_then_runs(
    local_cluster: LocalCluster, namespace: str, operator: Operator, queue: str,
    record_property: Any,
) -> None:
    lc = local_cluster
    ctx = {"lc": lc, "op": operator, "namespace": namespace}
    apply(lc, namespace, pretrain("a", queue=queue), pretrain("b", queue=queue))
    operator.start()

    def one_admitted() -> tuple[str, str] | None:
        jobs = {n: job(lc, namespace, f"{n}-pretrain") for n in ("a", "b")}
        if not all(jobs.values()):
            return None
        running = [n for n, j in jobs.items() if j and not j["spec"].get("suspend")]
        return (running[0], ({"a", "b"} - set(running)).pop()) if len(running) == 1 else None

    first, second = waited(one_admitted, timeout=90, what="Kueue admitting one of two runs", **ctx)

    def queued_reason() -> dict[str, Any] | None:
        body = get_cr(lc, namespace, "PretrainJob", second)
        running = condition(body, "Running")
        return body if "waiting in queue dgx:" in running.get("message", "") else None

    waiting = waited(queued_reason, timeout=60, what=f"{second} to carry Kueue's reason", **ctx)
    running = condition(waiting, "Running")
    assert running["status"] == "False" and running["reason"] == "JobSuspended"
    assert running["message"] == (
        f"stage pretrain: Job {second}-pretrain waiting in queue dgx: insufficient unused quota for "
        "nvidia.com/gpu in flavor dgx-h100, 8 more needed")
    assert waiting["status"]["phase"] == "Pending"
    assert pod_phases(lc, namespace, f"{second}-pretrain") == [], "a queued gang starts no pod"

    # When the first run is done Kueue admits the second; its CR says where it was admitted.
    def admitted() -> dict[str, Any] | None:
        running = condition(get_cr(lc, namespace, "PretrainJob", second), "Running")
        return running if running.get("reason") == "JobRunning" else None

    running = waited(admitted, timeout=420, what=f"{second} admitted and running", **ctx)
    cluster_queue = f"cq-{namespace}"[:63]
    assert running["message"].endswith(f"; admitted by Kueue to ClusterQueue {cluster_queue} in flavor dgx-h100")
    for name in (first, second):
        done = wait_phase(lc, operator, namespace, "PretrainJob", name, {"Succeeded"}, timeout=420)
        assert condition(done, "Failed")["status"] == "False"


def test_a_run_over_the_clusterqueue_total_waits_saying_so_and_never_fails(
    local_cluster: LocalCluster, namespace: str, operator: Operator, queue: str,
) -> None:
    lc = local_cluster
    ctx = {"lc": lc, "op": operator, "namespace": namespace}
    apply(lc, namespace, pretrain("big", queue=queue, nodes=2))  # 16 GPUs; the queue holds 8
    operator.start()

    def over_quota() -> dict[str, Any] | None:
        body = get_cr(lc, namespace, "PretrainJob", "big")
        return body if "can ever give" in condition(body, "Running").get("message", "") else None

    body = waited(over_quota, timeout=90, what="the over-quota message", **ctx)
    message = condition(body, "Running")["message"]
    assert message.startswith("stage pretrain: Job big-pretrain waiting in queue dgx: insufficient quota for "
                              "nvidia.com/gpu in flavor dgx-h100")
    assert "the run asks for 16 nvidia.com/gpu, more than the 8 the ClusterQueue can ever give" in message
    # Several resync passes later (5 s each) it still waits: never Failed, no pod started.
    time.sleep(16)
    body = get_cr(lc, namespace, "PretrainJob", "big")
    assert body["status"]["phase"] == "Pending"
    assert condition(body, "Failed")["status"] == "False"
    assert condition(body, "Running")["reason"] == "JobSuspended"
    held = job(lc, namespace, "big-pretrain")
    assert held is not None and held["spec"]["suspend"] is True
    assert pod_phases(lc, namespace, "big-pretrain") == []


# -- the hand-off time, with and without Kueue, on a private KWOK DGX node --------------------
# The process node is shared with every other test's pods, so timing there measures them too.
# A KWOK node of this test alone runs each Job's pod for --kwok-job-seconds (1 s) and then
# marks it Succeeded: what is timed is only the control plane handing 8 GPUs from one gang to
# the next (Kueue: Workload finished -> next Workload admitted -> Job unsuspended -> pod created,
# bound, Running; without: the Pending pod bound by kube-scheduler once the first pod is done).

def _gang(namespace: str, name: str, *, probe: str, queue: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {local_kueue.QUEUE_LABEL: queue} if queue else {}},
        "spec": {"suspend": bool(queue), "backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "nodeSelector": {PROBE: probe},
            "tolerations": [GPU_TOLERATION, {"key": PROBE, "operator": "Equal", "value": probe,
                                             "effect": "NoSchedule"}],
            "containers": [{"name": "w", "image": "synthloop/none:0", "command": ["true"],
                            "resources": {"limits": {"nvidia.com/gpu": str(GPUS)}}}]}}},
    }


def _pods(lc: LocalCluster, namespace: str, job_name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = lc.kube.get(f"/api/v1/namespaces/{namespace}/pods",
                                              labelSelector=f"job-name={job_name}")["items"]
    return items


def _timed_hand_off(lc: LocalCluster, namespace: str, first: str, second: str, *, queued: bool) -> float:
    """Seconds from the first gang's pod Succeeded to the second's pod Running (polled at 50 ms)."""
    freed = None
    deadline = time.monotonic() + 120
    held_checked = False
    while time.monotonic() < deadline:
        now = time.monotonic()
        mine, theirs = _pods(lc, namespace, first), _pods(lc, namespace, second)
        phases = [p["status"].get("phase") for p in mine]
        if freed is None and "Running" in phases and not held_checked:
            # while the first gang holds the GPUs the second is held back: by Kueue (suspended,
            # no pod at all) or by the scheduler (a Pending, unschedulable pod)
            if queued:
                held = job(lc, namespace, second)
                assert held is not None and held["spec"]["suspend"] is True and theirs == []
            else:
                assert [p["status"].get("phase") for p in theirs] in ([], ["Pending"])
            held_checked = True
        if freed is None and "Succeeded" in phases:
            freed = now
        if freed is not None and any(p["status"].get("phase") == "Running" for p in theirs):
            assert held_checked, "the first gang's pod was never seen Running"
            return now - freed
        time.sleep(0.05)
    raise AssertionError(f"no hand-off from {first} to {second} in 120s: {phases}")


@pytest.fixture
def kwok_dgx(local_cluster: LocalCluster) -> Iterator[str]:
    from synthloop.local.fleet import create_nodes, delete_nodes, kwok_fleet
    from synthloop.local.options import DGX_H100_LABELS

    probe = uuid.uuid4().hex[:6]
    fleet = kwok_fleet(dgx=1, cpu=0, gpu_labels=DGX_H100_LABELS, prefix=f"kq-{probe}",
                       extra_labels={PROBE: probe},
                       extra_taints=[{"key": PROBE, "value": probe, "effect": "NoSchedule"}])
    create_nodes(local_cluster.kube, fleet)
    name = fleet[0]["metadata"]["name"]

    def ready() -> bool:
        node = local_cluster.kube.get(f"/api/v1/nodes/{name}")
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or [])

    wait_for(ready, timeout=60, what=f"KWOK node {name} Ready")
    try:
        yield probe
    finally:
        delete_nodes(local_cluster.kube, [name])


def test_hand_off_from_one_gang_to_the_next_with_and_without_kueue(
    local_cluster: LocalCluster, namespace: str, queue: str, kwok_dgx: str, record_property: Any,
) -> None:
    lc = local_cluster
    jobs_path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    timings: dict[str, list[float]] = {"kueue": [], "scheduler": []}
    for round_ in range(3):
        for mode in ("kueue", "scheduler"):
            first, second = f"{mode[0]}{round_}a", f"{mode[0]}{round_}b"
            q = queue if mode == "kueue" else None
            lc.kube.create(jobs_path, _gang(namespace, first, probe=kwok_dgx, queue=q))
            wait_for(lambda f=first: _pods(lc, namespace, f), timeout=60, what=f"pod of {first}")
            lc.kube.create(jobs_path, _gang(namespace, second, probe=kwok_dgx, queue=q))
            timings[mode].append(_timed_hand_off(lc, namespace, first, second, queued=q is not None))
            for name in (first, second):
                wait_for(lambda n=name: any(p["status"].get("phase") == "Succeeded" for p in _pods(lc, namespace, n)),
                         timeout=60, what=f"{name} done")
                lc.kube.delete(f"{jobs_path}/{name}", propagationPolicy="Background")
            wait_for(lambda: not lc.kube.get(f"/api/v1/namespaces/{namespace}/pods")["items"], timeout=60,
                     what="the pods of this round gone")
    med = {m: statistics.median(v) for m, v in timings.items()}
    record_property("handoff_kueue_s", [round(t, 3) for t in timings["kueue"]])
    record_property("handoff_scheduler_only_s", [round(t, 3) for t in timings["scheduler"]])
    print(f"\nhand-off, first gang's pod Succeeded -> next gang's pod Running (median of 3): "
          f"Kueue {med['kueue']:.2f}s {timings['kueue']}, without Kueue {med['scheduler']:.2f}s "
          f"{timings['scheduler']}")


# -- preemption ----------------------------------------------------------------------------------

def _priority(name: str, value: int) -> dict[str, Any]:
    return {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "WorkloadPriorityClass",
            "metadata": {"name": name}, "value": value,
            "description": "test_kueue: preemption within one ClusterQueue"}


@pytest.fixture
def priorities(local_cluster: LocalCluster, kueue_running: None) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:6]
    low, high = _priority(f"low-{tag}", 10), _priority(f"high-{tag}", 1000)
    for pc in (low, high):
        local_kueue.apply(local_cluster.kube, pc)
    try:
        yield low["metadata"]["name"], high["metadata"]["name"]
    finally:
        for pc in (low, high):
            local_cluster.kube.delete(local_kueue.object_path(pc))


def test_a_high_priority_run_preempts_a_low_one_which_resumes_from_its_checkpoint(
    local_cluster: LocalCluster, namespace: str, operator: Operator, queue: str,
    priorities: tuple[str, str], s3_env: dict[str, str],
) -> None:
    from synthloop.artifacts.store import open_store

    lc = local_cluster
    ctx = {"lc": lc, "op": operator, "namespace": namespace}
    low_class, high_class = priorities
    low = pretrain("low", queue=queue, priorityClass=low_class)
    low["spec"]["phases"][0]["steps"] = 48
    low["spec"]["checkpoint"] = {"everySteps": 6}
    apply(lc, namespace, low)
    operator.start()
    uid = waited(lambda: (get_cr(lc, namespace, "PretrainJob", "low").get("status") or {}).get("runId"),
                 timeout=60, what="the run id", **ctx)
    store = open_store()
    ckpt = f"s3://{lc.bucket}/{namespace}/pretrainjob/low/{uid}/pretrain/checkpoints/step-6/manifest.json"
    waited(lambda: store.exists(ckpt), timeout=420, what="low's checkpoint at step 6", **ctx)

    apply(lc, namespace, pretrain("high", queue=queue, priorityClass=high_class))

    def preempted() -> dict[str, Any] | None:
        body = get_cr(lc, namespace, "PretrainJob", "low")
        return body if "evicted (Preempted" in condition(body, "Running").get("message", "") else None

    body = waited(preempted, timeout=120, what="low preempted by high", **ctx)
    running = condition(body, "Running")
    assert running["status"] == "False" and running["reason"] == "JobSuspended"
    assert body["status"]["phase"] == "Pending" and condition(body, "Failed")["status"] == "False"

    wait_phase(lc, operator, namespace, "PretrainJob", "high", {"Succeeded"}, timeout=420)
    done = wait_phase(lc, operator, namespace, "PretrainJob", "low", {"Succeeded"}, timeout=420)
    assert condition(done, "Failed")["status"] == "False"
    resumed = done["status"]["counts"]["resumed_from_step"]
    assert resumed >= 6 and resumed % 6 == 0, done["status"]["counts"]  # from its checkpoint, not step 0
    held = job(lc, namespace, "low-pretrain")
    assert held is not None and not any(c["type"] == "Failed" and c["status"] == "True"
                                        for c in (held.get("status") or {}).get("conditions") or [])
    (workload,) = lc.kube.get(f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads",
                              labelSelector=f"kueue.x-k8s.io/job-uid={held['metadata']['uid']}")["items"]
    evictions = workload["status"]["schedulingStats"]["evictions"]
    assert any(e["reason"] == "Preempted" and e["count"] >= 1 for e in evictions), evictions
    print(f"\nlow preempted after its checkpoint at step 6, re-admitted after high: resumed from step {resumed}")
