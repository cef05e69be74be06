"""Gang attempts and worker errors in whole reconcile passes (in-memory API server, see
test_reconcile_pass): the worker's reason reaches the Failed condition, invalid input is never
retried, a failed multi-node attempt is followed by a new Job resuming from the last checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloop.artifacts.checkpoints import Checkpoints
from synthloop.artifacts.store import ArtifactStore
from synthloop.artifacts.uris import join
from synthloop.controllers import reasons as R
from synthloop.controllers.config import OperatorConfig
from synthloop.controllers.reconcile import Reconciler
from synthloop.workers.errors import EXIT_INVALID_INPUT
from tests.unit.test_reconcile_pass import NS, ApiServer, DirBackend, worker_config

pytestmark = pytest.mark.unit
KLINGON = "phase 'p': unknown blend sources ['klingon']; expected builtin ['code', 'english']"


@pytest.fixture
def env(tmp_path: Path) -> tuple[ApiServer, ArtifactStore, Reconciler]:
    api = ApiServer()
    store = ArtifactStore(s3=DirBackend(tmp_path / "s3"))  # type: ignore[arg-type]
    rec = Reconciler(cluster=api, store=store,  # type: ignore[arg-type]
                     config=OperatorConfig(s3_endpoint="minio:9000"), ref_grace_seconds=30)
    return api, store, rec


def pretrain(nodes: int, backoff: int) -> dict[str, Any]:
    return {"model": {"preset": "tiny-test"}, "backoffLimit": backoff, "globalBatchSize": 8,
            "phases": [{"name": "p", "steps": 8, "blend": [{"source": "english", "weight": 1}]}],
            "resources": {"nodes": nodes, "gpusPerNode": 2}}


def fail_job(api: ApiServer, job: str, *, codes: dict[int, int], message: str = "",
             disrupted: bool = False) -> None:
    """The Job controller and the kubelet after a failure: failed pods (with their exit codes and
    termination messages) and the Job's Failed condition."""
    pods = []
    for index, code in codes.items():
        term: dict[str, Any] = {"exitCode": code, "reason": "Error", "finishedAt": f"2026-01-01T00:00:0{index}Z"}
        if message and index == min(codes):
            term["message"] = message
        conds = [{"type": "DisruptionTarget", "status": "True"}] if disrupted and index == min(codes) else []
        pods.append({"metadata": {"name": f"{job}-{index}-abcde", "uid": f"{job}-uid-{index}"},
                     "status": {"phase": "Failed", "conditions": conds,
                                "containerStatuses": [{"name": "worker", "state": {"terminated": term}}]}})
    api.pods[job] = pods
    status = api.jobs[job].setdefault("status", {})
    status.update({"startTime": "2026-01-01T00:00:00Z", "failed": len(codes)})
    status["conditions"] = [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
                             "message": f"Container worker for pod {NS}/{job}-0 failed"}]


def test_invalid_input_fails_the_cr_with_the_workers_reason_and_no_retry(env: Any) -> None:
    api, _, rec = env
    api.add("PretrainJob", "k", pretrain(nodes=2, backoff=2))
    assert rec.reconcile("PretrainJob", NS, "k").state == "running"
    fail_job(api, "k-pretrain", codes={0: EXIT_INVALID_INPUT, 1: 1}, message=KLINGON)
    assert rec.reconcile("PretrainJob", NS, "k").state == "failed"
    failed = api.condition("PretrainJob", "k", "Failed")
    assert failed["reason"] == R.INVALID_INPUT
    assert failed["message"].startswith(f"stage pretrain: {KLINGON} (pod k-pretrain-0-abcde exit code 78;")
    assert list(api.jobs) == ["k-pretrain"]  # never retried
    pod_events = [m for _, r, m in api.events if r == R.POD_FAILED]
    assert len(pod_events) == 2 and KLINGON in pod_events[0]
    # Another pass posts nothing twice.
    rec.reconcile("PretrainJob", NS, "k")
    assert len([r for _, r, _ in api.events if r == R.POD_FAILED]) == 2


def test_a_failed_gang_attempt_resumes_from_the_latest_checkpoint_until_backoff_is_spent(
        env: Any, tmp_path: Path) -> None:
    api, store, rec = env
    api.add("PretrainJob", "g", pretrain(nodes=2, backoff=1))
    rec.reconcile("PretrainJob", NS, "g")
    output = worker_config(api, "g-pretrain")["output"]
    ckpts = Checkpoints(store, output, task="pretrain")
    for step in (2, 4):
        d = tmp_path / f"ck{step}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"w" * step)
        ckpts.save(step, d, state={})
    store.put_bytes(join(ckpts.uri(6), "model.safetensors"), b"torn")  # no manifest: not complete
    fail_job(api, "g-pretrain", codes={1: 137})  # one rank killed
    assert rec.reconcile("PretrainJob", NS, "g").state == "running"
    assert sorted(api.jobs) == ["g-pretrain", "g-pretrain-attempt-2"]
    assert "g-pretrain-attempt-2" in api.services  # its own rendezvous
    cfg = worker_config(api, "g-pretrain-attempt-2")
    assert cfg["resume_from"] == ckpts.uri(4)
    st = api.status("PretrainJob", "g")
    assert (st["stageAttempt"], st["resumedFromStep"]) == (2, 4)
    running = api.condition("PretrainJob", "g", "Running")
    assert running["reason"] == R.ATTEMPT_STARTED and "resumes from step 4" in running["message"]
    reasons = [r for _, r, _ in api.events]
    assert reasons.count(R.ATTEMPT_FAILED) == 1 and reasons.count(R.ATTEMPT_STARTED) == 1
    rec.reconcile("PretrainJob", NS, "g")  # level-triggered: the same attempt, no duplicate
    assert sorted(api.jobs) == ["g-pretrain", "g-pretrain-attempt-2"]
    env_vars = {e["name"]: e.get("value") for e in
                api.jobs["g-pretrain-attempt-2"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_vars["MASTER_ADDR"] == "g-pretrain-attempt-2-0.g-pretrain-attempt-2"
    # backoffLimit 1: the second failure fails the run with its reason.
    fail_job(api, "g-pretrain-attempt-2", codes={0: 1}, message="RuntimeError: gloo connection reset")
    assert rec.reconcile("PretrainJob", NS, "g").state == "failed"
    failed = api.condition("PretrainJob", "g", "Failed")
    assert failed["reason"] == R.JOB_FAILED
    assert failed["message"].startswith("stage pretrain: RuntimeError: gloo connection reset (pod ")
    assert len(api.jobs) == 2


def test_a_disrupted_attempt_is_retried_beyond_backoff(env: Any) -> None:
    api, _, rec = env
    api.add("PretrainJob", "d", pretrain(nodes=2, backoff=0))
    rec.reconcile("PretrainJob", NS, "d")
    fail_job(api, "d-pretrain", codes={0: 137, 1: 1}, disrupted=True)
    assert rec.reconcile("PretrainJob", NS, "d").state == "running"
    assert "d-pretrain-attempt-2" in api.jobs
    assert api.status("PretrainJob", "d")["resumedFromStep"] == 0
    assert json.loads(json.dumps(worker_config(api, "d-pretrain-attempt-2")))["resume_from"].endswith("/checkpoints/")


def test_a_disrupted_attempt_whose_evicted_pod_is_gone_is_still_retried_beyond_backoff(env: Any) -> None:
    """An eviction deletes the pod; the Job's Failed condition (the gang's DisruptionTarget rule)
    is what is left to say the attempt was disrupted."""
    api, _, rec = env
    api.add("PretrainJob", "e", pretrain(nodes=2, backoff=0))
    rec.reconcile("PretrainJob", NS, "e")
    fail_job(api, "e-pretrain", codes={1: 143})
    del api.pods["e-pretrain"]  # the evicted pod and its peers are gone
    api.jobs["e-pretrain"]["status"]["conditions"] = [{
        "type": "Failed", "status": "True", "reason": "PodFailurePolicy",
        "message": f"Pod {NS}/e-pretrain-0-abcde has condition DisruptionTarget matching FailJob rule at index 0"}]
    assert rec.reconcile("PretrainJob", NS, "e").state == "running"
    assert "e-pretrain-attempt-2" in api.jobs


def test_single_node_stages_keep_the_job_controllers_retries(env: Any) -> None:
    api, _, rec = env
    api.add("PretrainJob", "s", pretrain(nodes=1, backoff=2))
    rec.reconcile("PretrainJob", NS, "s")
    assert api.jobs["s-pretrain"]["spec"]["backoffLimit"] == 2
    fail_job(api, "s-pretrain", codes={0: 1}, message="RuntimeError: boom")
    assert rec.reconcile("PretrainJob", NS, "s").state == "failed"
    assert list(api.jobs) == ["s-pretrain"]
