"""Following a loop in the terminal: one line per change, then a summary table.

Reads CR objects through ``kubectl get -o json`` (any kubeconfig works) and prints only what
changed since the last poll, so a long run stays readable in a CI log as well as a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthloop.report.model import LoopReport

TERMINAL = {"Succeeded", "Promoted", "Rejected", "Failed"}


def row(obj: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    status = obj.get("status") or {}
    return (
        f"{obj['kind']}/{obj['metadata']['name']}",
        status.get("phase") or "Pending",
        status.get("stage") or "",
        status.get("progress") or "",
        status.get("keyMetric") or "",
        status.get("promotedAs") or "",
    )


def bar(progress: str, width: int = 20) -> str:
    """``"3/4"`` -> ``[###############.....]``; anything else is shown as is."""
    done, _, total = progress.partition("/")
    try:
        frac = min(1.0, float(done) / float(total.split()[0]))
    except (ValueError, ZeroDivisionError, IndexError):
        return progress
    filled = round(frac * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {progress}"


def follow(
    fetch: Callable[[], list[dict[str, Any]]],
    *,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float,
    interval: float = 3.0,
    echo: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Poll until ``done(objects)`` or timeout; print each object's line when it changes.

    Ten failed reads in a row end the wait; fewer are a busy apiserver and are retried.
    """
    seen: dict[str, tuple[str, ...]] = {}
    start = time.monotonic()
    objects: list[dict[str, Any]] = []
    failures = 0
    while True:
        try:
            objects = fetch()
            failures = 0
        except Exception as exc:  # a busy apiserver: report, and keep following
            failures += 1
            if failures >= 10:
                raise
            echo(f"   (could not read the objects: {exc}; retrying)")
            time.sleep(interval)
            continue
        for obj in sorted(objects, key=lambda o: o["metadata"].get("creationTimestamp", "")):
            line = row(obj)
            if seen.get(line[0]) != line:
                seen[line[0]] = line
                key, phase, stage, progress, metric, promoted = line
                elapsed = time.monotonic() - start
                extra = " ".join(x for x in (stage, bar(progress) if progress else "", metric,
                                             f"promoted as {promoted}" if promoted else "") if x)
                echo(f"[{elapsed:6.0f}s] {key:28s} {phase:16s} {extra}")
        if done(objects):
            return objects
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"the loop did not finish within {timeout:.0f}s")
        time.sleep(interval)


def summary_table(objects: list[dict[str, Any]]) -> str:
    headers = ("RESOURCE", "PHASE", "STAGE", "PROGRESS", "METRIC", "PROMOTED")
    rows = [headers] + [row(o) for o in sorted(objects, key=lambda o: o["metadata"].get("creationTimestamp", ""))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def held_out_table(report: LoopReport) -> str:
    """Each model's held-out verifier metrics as ``value ± stderr``, in lineage order: the
    numbers the loop is for (is the aligned model right more often on problems it never saw)."""
    from synthloop.report.model import held_out, model_label

    models, names = held_out(report)
    if not models:
        return ""
    rows = [("MODEL", "PHASE", *names)]
    for m in models:
        cells = []
        for name in names:
            value, err = m.metrics.get(name), m.metrics.get(f"{name}_stderr")
            cells.append("" if value is None else f"{value:.3f}" + ("" if err is None else f" ± {err:.3f}"))
        rows.append((model_label(m), m.phase, *cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
