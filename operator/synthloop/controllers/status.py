"""What the operator reads off Jobs and progress reports, and how a status patch is made.

Pure functions over plain dicts (the API's JSON), so the rules are unit-tested without a
cluster and one pass computes the whole new status before writing it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

JobState = Literal["missing", "suspended", "running", "complete", "failed"]
WORKER_CONTAINER = "worker"
#: What of a termination message (or a log tail) goes into a condition message.
REASON_CHARS = 600


def _cond_true(job: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def job_state(job: Mapping[str, Any] | None) -> JobState:
    """Complete/Failed from the Job's terminal conditions; suspended while Kueue holds it."""
    if job is None:
        return "missing"
    if _cond_true(job, "Complete"):
        return "complete"
    if _cond_true(job, "Failed"):
        return "failed"
    if (job.get("spec") or {}).get("suspend"):
        return "suspended"
    return "running"


def job_failure(job: Mapping[str, Any]) -> str:
    """Why a Job failed, as the Job controller put it (e.g. BackoffLimitExceeded)."""
    cond = _cond_true(job, "Failed") or {}
    status = job.get("status") or {}
    name = (job.get("metadata") or {}).get("name", "?")
    backoff = (job.get("spec") or {}).get("backoffLimit")
    parts = [f"Job {name} failed"]
    if cond.get("reason"):
        parts.append(f"({cond['reason']}")
        parts[-1] += f": {cond['message']})" if cond.get("message") else ")"
    parts.append(f"after {int(status.get('failed') or 0)} failed pod(s), backoffLimit {backoff}")
    return " ".join(parts)


@dataclass(frozen=True)
class PodFailure:
    """One failed pod of a Job: what the kubelet recorded of its worker container."""

    pod: str
    uid: str
    exit_code: int | None
    reason: str  # the container's terminated reason (Error, OOMKilled), else the pod's
    message: str  # the termination message (the worker's one-line reason), collapsed to one line
    finished_at: str
    disrupted: bool  # DisruptionTarget: preempted, drained, evicted

    def describe(self) -> str:
        code = f"exit code {self.exit_code}" if self.exit_code is not None else (self.reason or "failed")
        return f"pod {self.pod} {code}" + (f" ({self.reason})" if self.reason not in ("", "Error") and
                                         self.exit_code is not None else "")


def _one_line(text: str, limit: int = REASON_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else "..." + flat[-(limit - 3):]


def pod_failures(pods: Iterable[Mapping[str, Any]]) -> list[PodFailure]:
    """The failed pods, earliest first (the first one is usually the root cause of a gang)."""
    out: list[PodFailure] = []
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") != "Failed":
            continue
        meta = pod.get("metadata") or {}
        statuses = status.get("containerStatuses") or []
        cs = next((c for c in statuses if c.get("name") == WORKER_CONTAINER), statuses[0] if statuses else {})
        term = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}
        disrupted = any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
                        for c in status.get("conditions") or [])
        code = term.get("exitCode")
        out.append(PodFailure(
            pod=str(meta.get("name", "?")), uid=str(meta.get("uid", "")),
            exit_code=int(code) if code is not None else None,
            reason=str(term.get("reason") or status.get("reason") or ""),
            message=_one_line(term.get("message") or status.get("message") or ""),
            finished_at=str(term.get("finishedAt") or ""), disrupted=disrupted,
        ))
    return sorted(out, key=lambda f: (f.finished_at or "~", f.pod))


def failure_reason(job: Mapping[str, Any], failures: list[PodFailure]) -> str:
    """The worker's own reason first, then which pod and how the Job failed."""
    root = next((f for f in failures if f.message), None)
    if root is None:
        detail = "; ".join(f.describe() for f in failures[:3])
        return job_failure(job) + (f": {detail}" if detail else "")
    return f"{root.message} ({root.describe()}; {job_failure(job)})"


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _gpus_of(job: Mapping[str, Any], gpu_resource: str) -> int:
    total = 0
    tmpl = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for c in tmpl.get("containers") or []:
        limits = (c.get("resources") or {}).get("limits") or {}
        try:
            total += int(str(limits.get(gpu_resource, 0)))
        except ValueError:
            pass
    return total


def gpu_hours(jobs: Iterable[Mapping[str, Any]], *, now: datetime, gpu_resource: str = "nvidia.com/gpu") -> float:
    """Pods x GPUs x wall time of every Job (running ones up to ``now``), rounded to 0.01."""
    total = 0.0
    for job in jobs:
        status = job.get("status") or {}
        start = _ts(status.get("startTime"))
        if start is None:
            continue
        end = _ts(status.get("completionTime")) or (None if job_state(job) == "failed" else now)
        if end is None:
            # A failed Job has no completionTime; its last transition is when it stopped.
            cond = _cond_true(job, "Failed") or {}
            end = _ts(cond.get("lastTransitionTime")) or now
        pods = int((job.get("spec") or {}).get("parallelism") or 1)
        total += pods * _gpus_of(job, gpu_resource) * max((end - start).total_seconds(), 0.0) / 3600.0
    return round(total, 2)


def attempts(jobs: Iterable[Mapping[str, Any]]) -> int:
    """Pods started so far across the run's Jobs (retries included)."""
    n = 0
    for job in jobs:
        status = job.get("status") or {}
        n += int(status.get("succeeded") or 0) + int(status.get("failed") or 0) + int(status.get("active") or 0)
    return n


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    unit: str

    def text(self) -> str:
        return f"{self.done}/{self.total} {self.unit}"


def progress_from_reports(reports: Iterable[Mapping[str, Any]], *, unit: str) -> Progress | None:
    """Sum ``done``/``total`` over a stage's progress reports (one per shard or rank 0)."""
    done = total = 0
    seen = False
    for r in reports:
        try:
            done += int(r.get("done", 0))
            total += int(r.get("total", 0))
        except (TypeError, ValueError):
            continue
        seen = True
    if not seen or total <= 0:
        return None
    return Progress(done, total, unit)


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch turning ``old`` into ``new``, or None when nothing changed.

    Keys gone from ``new`` are set to null so the merge patch removes them.
    """
    if dict(old) == dict(new):
        return None
    patch: dict[str, Any] = {k: v for k, v in new.items() if old.get(k) != v}
    for key in old:
        if key not in new:
            patch[key] = None
    return patch or None
