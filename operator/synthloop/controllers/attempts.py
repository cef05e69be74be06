"""Gang attempts of a multi-node stage: which attempt is current, and where the next resumes.

A multi-node Job fails as a whole (any pod failure, ``podFailurePolicy`` ``FailJob``): its ranks
cannot take a replacement pod into their running process group. The operator then starts
attempt N+1 as a new Job (deterministic name, see ``attempt_job_name``) that resumes from the
latest complete checkpoint of the stage, until ``spec.backoffLimit`` retries are spent. Invalid
input (the workers' ``EXIT_INVALID_INPUT``) is never retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthloop.artifacts.checkpoints import Checkpoints, checkpoint_step
from synthloop.artifacts.store import ArtifactNotFound, ArtifactStore
from synthloop.builders.names import attempt_job_name
from synthloop.controllers.status import PodFailure
from synthloop.exitcodes import EXIT_INVALID_INPUT

#: An attempt ended by a disruption (a rank preempted or drained) does not spend backoffLimit;
#: past this many attempts beyond it, the stage fails anyway.
MAX_DISRUPTED = 10


def current_attempt(jobs: Mapping[str, Mapping[str, Any]], owner: str, stage: str) -> tuple[int, str]:
    """The newest attempt that has a Job (1 when none has), and its Job name."""
    n = 1
    while attempt_job_name(owner, stage, n + 1) in jobs:
        n += 1
    return n, attempt_job_name(owner, stage, n)


def invalid_input(failures: list[PodFailure]) -> bool:
    return any(f.exit_code == EXIT_INVALID_INPUT for f in failures)


def disrupted(failures: list[PodFailure], job: Mapping[str, Any] | None = None) -> bool:
    """A failed pod carries ``DisruptionTarget``, or the Job's Failed condition says one did
    (a gang's podFailurePolicy fails it on that condition), which outlives the evicted pod."""
    conds = ((job or {}).get("status") or {}).get("conditions") or []
    return any(f.disrupted for f in failures) or any(
        c.get("type") == "Failed" and c.get("reason") == "PodFailurePolicy"
        and "has condition DisruptionTarget" in str(c.get("message") or "") for c in conds)


def may_retry(attempt: int, *, backoff_limit: int, was_disrupted: bool) -> bool:
    """Whether attempt ``attempt`` (1-based, just failed) gets a successor.

    ``backoff_limit`` retries; a disrupted attempt is retried beyond them (up to MAX_DISRUPTED).
    Which earlier attempts were disrupted is not known once their pods are gone, so they count.
    """
    return attempt <= backoff_limit + (MAX_DISRUPTED if was_disrupted else 0)


def resume_point(store: ArtifactStore, output: str, task: str) -> tuple[str | None, int]:
    """The latest complete checkpoint of a stage and its step; ``(None, 0)`` when there is none."""
    ckpts = Checkpoints(store, output, task=task)
    try:
        uri = ckpts.latest()
    except ArtifactNotFound:
        return None, 0
    return (uri, checkpoint_step(store, uri)) if uri else (None, 0)
