"""How a worker ends when it fails: an exit code the Job's podFailurePolicy reads, and a
one-line reason in the termination message the operator copies into the CR's condition.

Invalid input or config (a blend source that does not exist, params that do not validate) is
deterministic: another pod would fail the same way, so it exits with ``EXIT_INVALID_INPUT`` and
the Job fails at once (``podFailurePolicy`` ``FailJob``) instead of spending its backoffLimit.
Anything else exits 1 and may be retried.
"""

from __future__ import annotations

import os
from pathlib import Path

from synthloop.exitcodes import (  # the one source: builders and controllers read them there
    DEFAULT_TERMINATION_PATH,
    EXIT_INVALID_INPUT,
    MAX_MESSAGE_BYTES,
    TERMINATION_PATH_ENV,
)

__all__ = ["DEFAULT_TERMINATION_PATH", "EXIT_INVALID_INPUT", "MAX_MESSAGE_BYTES", "TERMINATION_PATH_ENV",
           "InvalidInput", "one_line", "validation_message", "write_termination_message"]


class InvalidInput(ValueError):
    """The worker's input or config cannot work; retrying would fail the same way."""


def one_line(text: str, *, limit: int = 1024) -> str:
    """Collapse whitespace so the reason fits a condition message and a log line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def validation_message(exc: Exception) -> str:
    """A pydantic ValidationError as ``loc: msg; loc: msg`` (one line), else ``str(exc)``."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            parts = [".".join(str(p) for p in e["loc"]) + ": " + str(e["msg"]) for e in errors()]
        except (TypeError, KeyError):
            parts = []
        if parts:
            title = getattr(exc, "title", "")
            return (f"{title}: " if title else "") + "; ".join(parts)
    return str(exc)


def write_termination_message(text: str) -> None:
    """Write ``text`` where the kubelet (or the process-node agent) reads it; never raises.

    The first reason wins: under torchrun every rank of a pod may fail, and the root cause is
    the one that failed first (the others mostly die of a broken process group after it).
    """
    path = Path(os.environ.get(TERMINATION_PATH_ENV) or DEFAULT_TERMINATION_PATH)
    data = one_line(text).encode()[:MAX_MESSAGE_BYTES]
    try:
        if path.is_file() and path.stat().st_size > 0:
            return
        with path.open("ab") as fh:
            fh.write(data + b"\n")
    except OSError:
        pass  # outside a pod (/dev/termination-log absent): the log line is all there is
