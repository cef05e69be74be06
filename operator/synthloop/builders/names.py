"""Deterministic child names and the labels that tie children to their owner.

A pass that runs twice (or an operator that restarted) computes the same names, so applying
them again updates the existing objects instead of creating duplicates.
"""

from __future__ import annotations

import hashlib

MAX_NAME = 63
GROUP = "synthloop.io"
OWNER_UID_LABEL = f"{GROUP}/owner-uid"
OWNER_KIND_LABEL = f"{GROUP}/owner-kind"
OWNER_NAME_LABEL = f"{GROUP}/owner-name"
STAGE_LABEL = f"{GROUP}/stage"
FIELD_MANAGER = "synthloop-operator"


def child_name(owner: str, stage: str, index: int | None = None) -> str:
    """``<owner>-<stage>[-<n>]``, shortened with a hash of the full name past 63 characters.

    Job names become pod hostnames and Service names, so they must be DNS labels; the hash
    keeps two long owners with a common prefix from colliding.
    """
    full = f"{owner}-{stage}" + (f"-{index}" if index is not None else "")
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: MAX_NAME - 9].rstrip('-')}-{digest}"


def job_name(owner: str, stage: str, index: int | None = None) -> str:
    """Job names leave room for the pod suffix of an Indexed Job (``-<index>-<random>``)."""
    full = child_name(owner, stage, index)
    # The Job controller adds "-<completion index>-<5 random>" to pod names (63 max), and
    # the pod hostname is "<job>-<index>"; 52 characters keep both valid for 4-digit indexes.
    limit = 52
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: limit - 9].rstrip('-')}-{digest}"


def owner_labels(*, kind: str, name: str, uid: str) -> dict[str, str]:
    """Labels on every child: the owner's uid (what the operator selects on) and readable ones."""
    return {
        OWNER_UID_LABEL: uid,
        OWNER_KIND_LABEL: kind,
        OWNER_NAME_LABEL: name if len(name) <= MAX_NAME else name[:MAX_NAME],
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        "app.kubernetes.io/part-of": "synthloop",
    }


def attempt_job_name(owner: str, stage: str, attempt: int) -> str:
    """The Job of attempt ``attempt`` (1-based) of a stage: ``<owner>-<stage>``, then
    ``<owner>-<stage>-attempt-<n>``. Each attempt is a new Job (and rendezvous Service), so a
    gang never mixes ranks of two attempts, and a restarted operator finds every attempt."""
    if attempt <= 1:
        return job_name(owner, stage)
    return job_name(owner, f"{stage}-attempt", attempt)
