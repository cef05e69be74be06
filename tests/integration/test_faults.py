"""Transient faults during a run are absorbed: MinIO and then the kube-apiserver restart while a
PretrainJob's pod trains, and the run still succeeds with its first attempt.

What has to hold for that (issue 11, point 4): the worker retries artifact-store calls for a
bounded time (``WORKER_RETRY``) and never dies of a progress report; the process node's agent
retries its pod-status updates until they land; the operator's watches and passes recover once
the apiserver is back. The restarts go through ``synthloop.local.cluster.restart``, which waits
until the component is ready again, so the tests after this one find a healthy cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from synthloop.artifacts.manifest import verify_manifest
from synthloop.artifacts.store import open_store
from synthloop.local.paths import LocalPaths
from synthloop.local.testing import LocalCluster, wait_for
from tests.integration import test_operator as op

operator = op.operator  # the fixture: `synthloop operator` for the test's namespace
pytestmark = pytest.mark.local_only  # restarts processes of the embedded cluster itself

#: How long each component stays down (the issue's "10 s restart"), after at most GRACE
#: seconds between SIGTERM and SIGKILL (the apiserver drains its watches that long).
DOWN_SECONDS, GRACE = 10.0, 2.0
#: Long enough (a few hundred tiny steps, a progress report every other step, a checkpoint
#: every 50) that both restarts fall inside the run, which writes to MinIO all the time.
STEPS = 400
SPEC: dict[str, Any] = {
    "model": {"preset": "tiny-test", "seqLength": 64},
    "tokenizer": {"vocabSize": 256, "trainDocs": 200},
    "phases": [{"name": "p", "steps": STEPS, "lr": 3e-3, "minLr": 3e-4,
                "blend": [{"source": "english", "weight": 1.0}]}],
    "globalBatchSize": 8,
    "parallelism": {"microBatchSize": 8},
    "checkpoint": {"everySteps": 50},
    "logEvery": 10,
    "progressEvery": 2,
    "backoffLimit": 2,  # room for a retry, so "no extra attempt" is something the test checks
    "resources": {"nodes": 1, "gpusPerNode": 1},
}


def _restart(component: str, *, while_down: Callable[[], object] | None = None) -> float:
    """Restart one component of the cluster this session runs on; seconds until it was ready."""
    from synthloop.local.cluster import restart

    t0 = time.monotonic()
    restart(component, down_seconds=DOWN_SECONDS, grace=GRACE, while_down=while_down, progress=print)
    return time.monotonic() - t0


def _worker_exited(namespace: str, pod: str) -> bool:
    """The node agent reaped the pod's worker process (it removes the container's pid file)."""
    from synthloop.local.nodeagent.logs import pod_dirs

    dirs = pod_dirs(LocalPaths.default().pods_dir, namespace, pod)
    return bool(dirs) and not (dirs[0] / "pids" / "worker.json").exists()


def _scheduler_caught_up(lc: LocalCluster, namespace: str) -> float:
    """Wait until the scheduler binds a new pod: its watches, refused (403) while the restarted
    apiserver's authorizer warmed up, back off for a while. The tests after this one need it."""
    lc.kube.create(f"/api/v1/namespaces/{namespace}/pods", {
        "metadata": {"name": "after-the-restart"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "none", "command": ["true"]}]},
    })
    wait_for(lambda: (lc.kube.get(f"/api/v1/namespaces/{namespace}/pods/after-the-restart")["spec"]
                      .get("nodeName")), timeout=180, what="the scheduler to bind a pod after the restart")
    return time.monotonic()


def test_minio_and_apiserver_restarts_during_a_run_cost_no_attempt(
    local_cluster: LocalCluster, namespace: str, operator: op.Operator, s3_env: dict[str, str]
) -> None:
    lc = local_cluster
    op.apply(lc, namespace, op.cr("PretrainJob", "faults", SPEC))
    operator.start()
    store = open_store()
    uid = wait_for(lambda: (op.get_cr(lc, namespace, "PretrainJob", "faults").get("status") or {}).get("runId"),
                   timeout=60, what=f"the run id\n{operator.logs()}")
    prefix = f"s3://{lc.bucket}/{namespace}/pretrainjob/faults/{uid}/pretrain/"
    progress, manifest_uri = prefix + "progress/pretrain-0.json", prefix + "manifest.json"
    wait_for(lambda: store.exists(progress), timeout=180, interval=0.5,
             what=f"the worker's first progress report\n{operator.logs()}")
    (pod,) = op.pods(lc, namespace, "faults-pretrain")
    pod_name = pod["metadata"]["name"]

    # 1. MinIO goes away mid-training: every store call of the worker waits it out.
    at_minio = store.get_json(progress)["done"]
    minio_s = _restart("minio")
    assert not store.exists(manifest_uri), "the run ended before MinIO came back: make STEPS larger"

    # 2. The apiserver goes away near the end and stays away until the worker has exited, so
    # the node agent's final pod status has to be retried until the apiserver is back.
    near_end = wait_for(lambda: (d := store.get_json(progress)["done"]) >= STEPS - 100 and d,
                        timeout=600, interval=0.5, what="the last steps of the run")
    exited_in_outage = False

    def until_the_worker_exits() -> None:
        nonlocal exited_in_outage
        wait_for(lambda: _worker_exited(namespace, pod_name), timeout=240, interval=0.2,
                 what="the worker to finish while the apiserver is down")
        exited_in_outage = True
        time.sleep(2.0)  # the agent's first status PATCH fails in this window

    api_s = _restart("kube-apiserver", while_down=until_the_worker_exits)
    t_back = time.monotonic()
    assert exited_in_outage and store.exists(manifest_uri)

    body = op.wait_phase(lc, operator, namespace, "PretrainJob", "faults", {"Succeeded"}, timeout=300)
    cr_s = time.monotonic() - t_back
    # the run is done when its manifest is (the operator's rule); the Job completes once the
    # node agent's final pod status has landed and the Job controller has caught up
    (job,) = wait_for(lambda: [j for j in op.jobs(lc, namespace) if j["status"].get("succeeded")],
                      timeout=180, what=f"Job faults-pretrain to count its pod Succeeded\n{op.jobs(lc, namespace)}")
    job_s = time.monotonic() - t_back
    sched_s = _scheduler_caught_up(lc, namespace) - t_back
    print(f"MinIO down at step {at_minio}/{STEPS}: {minio_s:.1f}s until ready again; apiserver down "
          f"from step {near_end} until the worker had exited: {api_s:.1f}s until ready again; then "
          f"the CR Succeeded after {cr_s:.1f}s, the Job counted its pod after {job_s:.1f}s and a new "
          f"pod was scheduled after {sched_s:.1f}s")
    # exactly one attempt: one pod, one Job, nothing failed
    assert body["status"]["attempts"] == 1, body["status"]
    assert body["status"].get("stageAttempt") in (None, 1), body["status"]
    assert job["metadata"]["name"] == "faults-pretrain"
    assert job["status"]["succeeded"] == 1 and not job["status"].get("failed"), job["status"]
    assert [j["metadata"]["name"] for j in op.jobs(lc, namespace)] == ["faults-pretrain"]
    (pod,) = op.pods(lc, namespace, "faults-pretrain")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed", term
    agent_log = (LocalPaths.default().logs_dir / "node-agent.log").read_text(errors="replace")
    assert f"pod {namespace}/{pod_name}: status update failed (retrying" in agent_log
    manifest = verify_manifest(store, prefix)
    assert manifest.counts["steps"] == STEPS and manifest.counts["resumed_from_step"] == 0
    # the worker felt the MinIO outage and waited it out (the store's retry warnings in its log)
    log = lc.kubectl("logs", "-n", namespace, pod_name, check=False).stdout
    assert "since the first try" in log or '"progress-skipped"' in log, log[-3000:]
