"""The operator's reading of Kueue: Workload conditions -> the CR's Running condition; labels and TAS.

Workloads here are shaped as Kueue v0.17 writes them (the messages are the formats of its
flavor assigner); tests/integration/test_kueue.py checks the same against the real Kueue.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from synthloop.api.v1alpha1.common import Resources
from synthloop.builders.jobs import KUEUE_PRIORITY_LABEL, KUEUE_QUEUE_LABEL
from synthloop.controllers import kueue
from synthloop.controllers import reasons as R
from tests.unit.test_reconcile_pass import NS, SYNTH, env  # noqa: F401 - env is a fixture

pytestmark = pytest.mark.unit

SHORT = ("couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu in "
         "flavor dgx-h100, 8 more needed")
OVER = ("couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor "
        "dgx-h100, previously considered podsets requests (0) + current podset request (16) > "
        "maximum capacity (8)")


def workload(job_uid: str, *conditions: dict[str, str], admission: dict[str, Any] | None = None,
             created: str = "2026-12-01T10:00:00Z") -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if admission:
        status["admission"] = admission
    return {"metadata": {"name": f"job-x-{job_uid[:5]}", "namespace": NS, "creationTimestamp": created,
                         "labels": {kueue.JOB_UID_LABEL: job_uid},
                         "ownerReferences": [{"kind": "Job", "uid": job_uid, "controller": True}]},
            "status": status}


def cond(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


ADMISSION = {"clusterQueue": "dgx", "podSetAssignments": [
    {"name": "main", "flavors": {"nvidia.com/gpu": "dgx-h100"}, "count": 1}]}


def test_pending_reason_is_kueues_message_without_the_pod_set_prefix() -> None:
    wl = workload("u1", cond("QuotaReserved", "False", "Pending", SHORT))
    assert kueue.pending_reason(wl) == "insufficient unused quota for nvidia.com/gpu in flavor dgx-h100, 8 more needed"


def test_a_request_over_the_clusterqueue_total_says_it_cannot_be_admitted_as_is() -> None:
    reason = kueue.pending_reason(workload("u1", cond("QuotaReserved", "False", "Pending", OVER)))
    assert reason.startswith("insufficient quota for nvidia.com/gpu in flavor dgx-h100")
    assert ("the run asks for 16 nvidia.com/gpu, more than the 8 the ClusterQueue can ever give in flavor "
            "dgx-h100") in reason


def test_eviction_and_admission_states() -> None:
    evicted = workload("u1", cond("Evicted", "True", "Preempted", "Preempted to accommodate a workload "
                                  "(UID: abc) due to prioritization in the ClusterQueue"),
                       cond("QuotaReserved", "False", "Pending", SHORT))
    assert kueue.pending_reason(evicted).startswith("evicted (Preempted to accommodate a workload")
    assert kueue.pending_reason(evicted).endswith("8 more needed")
    admitted = workload("u1", cond("QuotaReserved", "True"), cond("Admitted", "True"), admission=ADMISSION)
    assert kueue.pending_reason(admitted) == (
        "admitted to ClusterQueue dgx in flavor dgx-h100, waiting for Kueue to start the Job")
    checks = workload("u1", cond("QuotaReserved", "True"), cond("Admitted", "False"), admission=ADMISSION)
    assert "waiting for admission checks" in kueue.pending_reason(checks)
    assert kueue.pending_reason(workload("u1")) == "waiting for Kueue to reserve quota"


def test_the_newest_owned_workload_is_read() -> None:
    class Reader:
        def list_workloads(self, namespace: str, job_uid: str) -> list[dict[str, Any]]:
            return [workload(job_uid, created="2026-12-01T09:00:00Z"),
                    workload(job_uid, cond("Admitted", "True"), created="2026-12-01T10:00:00Z"),
                    workload("other", created="2026-12-01T11:00:00Z")]

    job = {"metadata": {"name": "x", "namespace": NS, "uid": "u1", "labels": {KUEUE_QUEUE_LABEL: "dgx"}}}
    got = kueue.workload_of(Reader(), job)
    assert got is not None and got["metadata"]["creationTimestamp"] == "2026-12-01T10:00:00Z"
    assert kueue.admission_note(Reader(), job) == "admitted by Kueue to ClusterQueue ?"
    readmitted = workload("u1", cond("Admitted", "True"), admission=ADMISSION)
    readmitted["status"]["schedulingStats"] = {"evictions": [
        {"reason": "Preempted", "underlyingCause": "", "count": 1}]}

    class Again:
        def list_workloads(self, namespace: str, job_uid: str) -> list[dict[str, Any]]:
            return [readmitted]

    assert kueue.admission_note(Again(), job) == (
        "admitted by Kueue to ClusterQueue dgx in flavor dgx-h100 after 1 eviction (Preempted)")
    unqueued = {"metadata": {"name": "x", "namespace": NS, "uid": "u1"}}
    assert kueue.admission_note(Reader(), unqueued) is None


def test_topology_annotations_pass_through_only_kueues_tas_keys() -> None:
    body = {"metadata": {"annotations": {
        "kueue.x-k8s.io/podset-required-topology": "cloud.provider.com/topology-rack",
        "kueue.x-k8s.io/podset-slice-size": "4",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }}}
    assert kueue.topology_annotations(body) == {
        "kueue.x-k8s.io/podset-required-topology": "cloud.provider.com/topology-rack",
        "kueue.x-k8s.io/podset-slice-size": "4",
    }
    assert kueue.topology_annotations({"metadata": {}}) == {}


def test_priority_class_is_a_resources_field() -> None:
    assert Resources.model_validate({"queue": "dgx", "priorityClass": "high"}).priority_class == "high"


def _queued_run(api: Any, rec: Any, **extra: Any) -> dict[str, Any]:
    from synthloop.controllers.reconcile import Reconciler

    assert isinstance(rec, Reconciler)
    api.add("SynthRound", "r1", {**SYNTH, "resources": {"gpusPerNode": 0, "queue": "dgx", **extra}})
    meta = api.crs[("SynthRound", "r1")]["metadata"]
    meta["annotations"] = {"kueue.x-k8s.io/podset-required-topology": "nvidia.com/gpu.clique"}
    rec.reconcile("SynthRound", NS, "r1")
    job: dict[str, Any] = api.jobs["r1-synth"]
    job["metadata"]["uid"] = "job-uid-1"
    return job


def test_a_queued_run_carries_kueues_reason_then_its_admission(env: Any) -> None:  # noqa: F811
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    job = _queued_run(api, rec, priorityClass="high")
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "dgx"
    assert job["metadata"]["labels"][KUEUE_PRIORITY_LABEL] == "high"
    assert job["spec"]["template"]["metadata"]["annotations"] == {
        "kueue.x-k8s.io/podset-required-topology": "nvidia.com/gpu.clique"}

    # Before Kueue made the Workload: the generic message.
    rec.reconcile("SynthRound", NS, "r1")
    assert "waits for admission in Kueue queue dgx" in api.condition("SynthRound", "r1", "Running")["message"]

    api.workloads.append(workload("job-uid-1", cond("QuotaReserved", "False", "Pending", SHORT)))
    assert rec.reconcile("SynthRound", NS, "r1").state == "running"
    running = api.condition("SynthRound", "r1", "Running")
    assert running["status"] == "False" and running["reason"] == R.JOB_SUSPENDED
    assert running["message"] == ("stage synth: Job r1-synth waiting in queue dgx: insufficient unused quota "
                                  "for nvidia.com/gpu in flavor dgx-h100, 8 more needed")
    assert api.status("SynthRound", "r1")["phase"] == "Pending"

    # Kueue admits: it unsuspends the Job; the condition says where the run was admitted.
    api.workloads[0] = workload("job-uid-1", cond("QuotaReserved", "True"), cond("Admitted", "True"),
                                admission=ADMISSION)
    api.jobs["r1-synth"]["spec"]["suspend"] = False
    assert rec.reconcile("SynthRound", NS, "r1").state == "running"
    running = api.condition("SynthRound", "r1", "Running")
    assert running["reason"] == R.JOB_RUNNING
    assert running["message"].endswith("; admitted by Kueue to ClusterQueue dgx in flavor dgx-h100")


def test_a_run_without_queue_reads_no_workloads(env: Any) -> None:  # noqa: F811
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    api.add("SynthRound", "r1", copy.deepcopy(SYNTH))
    rec.reconcile("SynthRound", NS, "r1")
    job = api.jobs["r1-synth"]
    assert "suspend" not in job["spec"] and KUEUE_PRIORITY_LABEL not in job["metadata"]["labels"]
    assert "annotations" not in job["spec"]["template"]["metadata"]
    api.workloads.append(workload("anything", cond("Admitted", "True")))
    rec.reconcile("SynthRound", NS, "r1")
    assert "admitted" not in api.condition("SynthRound", "r1", "Running")["message"]
