"""Typed conditions: set one, keep lastTransitionTime unless the status flips."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

TYPES = ("InputsReady", "Running", "Evaluated", "Promoted", "Failed")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool | str,
    reason: str,
    message: str = "",
    *,
    now: str,
    generation: int = 0,
) -> list[dict[str, Any]]:
    """A new list with condition ``type_`` set; ``lastTransitionTime`` moves only on a flip.

    Keeping the time when only the message changes is what makes "status written only if it
    changed" hold across passes that observe the same state.
    """
    value = status if isinstance(status, str) else ("True" if status else "False")
    if type_ not in TYPES:
        raise ValueError(f"condition type {type_!r}: expected one of {', '.join(TYPES)}")
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        if cond.get("type") != type_:
            out.append(dict(cond))
            continue
        found = True
        transition = cond.get("lastTransitionTime") or now
        if cond.get("status") != value:
            transition = now
        out.append({"type": type_, "status": value, "reason": reason, "message": message,
                    "lastTransitionTime": transition, "observedGeneration": generation})
    if not found:
        out.append({"type": type_, "status": value, "reason": reason, "message": message,
                    "lastTransitionTime": now, "observedGeneration": generation})
    order = {t: i for i, t in enumerate(TYPES)}
    return sorted(out, key=lambda c: order.get(str(c.get("type")), len(order)))


def get_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]], type_: str) -> bool:
    cond = get_condition(conditions, type_)
    return bool(cond and cond.get("status") == "True")
