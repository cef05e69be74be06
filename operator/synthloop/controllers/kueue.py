"""What Kueue says about a run's Jobs: why a suspended Job waits, and where an admitted one runs.

A Job with ``resources.queue`` is created suspended; Kueue makes a Workload for it (labelled
with the Job's uid), reserves quota in a ClusterQueue and unsuspends the Job (gang admission:
all pods or none). Until then the only place that says *why* a run waits is the Workload's
``QuotaReserved`` condition, so the operator copies it into the CR's ``Running`` condition.
The operator only reads Workloads (get/list/watch); Kueue owns them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
# Topology-aware scheduling: set on the CR, passed through to the pod template, where Kueue
# reads them (e.g. keep a multi-node run inside one rack or NVLink domain).
TOPOLOGY_ANNOTATIONS = (
    "kueue.x-k8s.io/podset-required-topology",
    "kueue.x-k8s.io/podset-preferred-topology",
    "kueue.x-k8s.io/podset-unconstrained-topology",
    "kueue.x-k8s.io/podset-slice-required-topology",
    "kueue.x-k8s.io/podset-slice-size",
)
_POD_SET_PREFIX = re.compile(r"^couldn't assign flavors to pod set [^:]+: ")
_OVER_CAPACITY = re.compile(
    r"insufficient quota for (?P<resource>\S+) in flavor (?P<flavor>\S+), .*current podset request "
    r"\((?P<request>[^)]+)\) > maximum capacity \((?P<capacity>[^)]+)\)"
)


class WorkloadReader(Protocol):
    def list_workloads(self, namespace: str, job_uid: str) -> list[dict[str, Any]]: ...


def topology_annotations(body: Mapping[str, Any]) -> dict[str, str]:
    """The CR's TAS annotations, for the pod template of each of its Jobs."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return {k: str(v) for k, v in annotations.items() if k in TOPOLOGY_ANNOTATIONS}


def workload_of(cluster: WorkloadReader, job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Workload Kueue made for ``job`` (the newest, if a re-created Job left an old one)."""
    meta = job.get("metadata") or {}
    items = cluster.list_workloads(str(meta.get("namespace")), str(meta.get("uid")))
    owned = [w for w in items if any(r.get("uid") == meta.get("uid")
                                     for r in (w.get("metadata") or {}).get("ownerReferences") or [])]
    candidates = owned or items
    if not candidates:
        return None
    return max(candidates, key=lambda w: str((w.get("metadata") or {}).get("creationTimestamp") or ""))


def _condition(workload: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (workload.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def _true(workload: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    cond = _condition(workload, type_)
    return cond if cond is not None and cond.get("status") == "True" else None


def _admission(workload: Mapping[str, Any]) -> str:
    admission = (workload.get("status") or {}).get("admission") or {}
    flavors = sorted({f for ps in admission.get("podSetAssignments") or [] for f in (ps.get("flavors") or {}).values()})
    text = f"ClusterQueue {admission.get('clusterQueue', '?')}"
    return text + (f" in flavor {', '.join(flavors)}" if flavors else "")


def pending_reason(workload: Mapping[str, Any]) -> str:
    """Kueue's reason, worded for the CR (the pod-set prefix dropped, over-capacity made explicit)."""
    evicted = _true(workload, "Evicted")
    reserved = _condition(workload, "QuotaReserved")
    message = str((reserved or {}).get("message") or "").strip()
    message = _POD_SET_PREFIX.sub("", message)
    if _true(workload, "QuotaReserved") and not _true(workload, "Admitted"):
        return f"quota reserved in {_admission(workload)}, waiting for admission checks"
    if _true(workload, "Admitted"):
        return f"admitted to {_admission(workload)}, waiting for Kueue to start the Job"
    over = _OVER_CAPACITY.search(message)
    if over:
        message += (
            f"; the run asks for {over['request']} {over['resource']}, more than the "
            f"{over['capacity']} the ClusterQueue can ever give in flavor {over['flavor']}: it waits "
            f"until the quota grows or the request shrinks"
        )
    if evicted is not None:
        why = str(evicted.get("message") or evicted.get("reason") or "evicted")
        message = f"evicted ({why}); " + (message or "waiting to be admitted again")
    return message or "waiting for Kueue to reserve quota"


def queued_message(cluster: WorkloadReader, job: Mapping[str, Any], *, stage: str, queue: str) -> str:
    """The Running condition's message for a suspended Job."""
    name = (job.get("metadata") or {}).get("name", "?")
    workload = workload_of(cluster, job)
    if workload is None:
        return f"stage {stage}: Job {name} waits for admission in Kueue queue {queue}"
    return f"stage {stage}: Job {name} waiting in queue {queue}: {pending_reason(workload)}"


def admission_note(cluster: WorkloadReader, job: Mapping[str, Any]) -> str | None:
    """"admitted by Kueue to ClusterQueue dgx in flavor dgx-h100" for a queued Job that runs."""
    if not ((job.get("metadata") or {}).get("labels") or {}).get("kueue.x-k8s.io/queue-name"):
        return None
    workload = workload_of(cluster, job)
    if workload is None or not _true(workload, "Admitted"):
        return None
    return f"admitted by Kueue to {_admission(workload)}" + _evictions(workload)


def _evictions(workload: Mapping[str, Any]) -> str:
    """" after 1 eviction (Preempted)": a re-admitted run resumed from its checkpoint."""
    stats = ((workload.get("status") or {}).get("schedulingStats") or {}).get("evictions") or []
    total = sum(int(e.get("count") or 0) for e in stats)
    if not total:
        return ""
    reasons = ", ".join(sorted({str(e.get("reason")) for e in stats if e.get("reason")}))
    return f" after {total} eviction{'s' if total > 1 else ''}" + (f" ({reasons})" if reasons else "")
