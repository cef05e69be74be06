"""Why a demo stops early: the operator died, fails every pass the same way, a run Failed, or
nothing moved for too long.

A loop that cannot make progress must say so within a minute instead of waiting out its
timeout: a new user's first run otherwise looks like six CRs `Pending` forever, with the reason
buried in a log they do not know exists.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthloop.demo.follow import TERMINAL, row


class DemoFailure(Exception):
    """The loop cannot finish; the message says why and where the full log is."""


def exception_lines(text: str) -> list[str]:
    """The final ``Type: message`` line of every Python traceback in ``text``, in order."""
    found: list[str] = []
    in_tb = False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last):"):
            in_tb = True
            continue
        if in_tb and line and not line[0].isspace():
            if line.startswith(("During handling", "The above exception")):
                continue
            found.append(line.strip())
            in_tb = False
    return found


def failed_conditions(objects: list[dict[str, Any]]) -> list[str]:
    """``Kind/name: message`` of every object whose phase is Failed."""
    out = []
    for obj in objects:
        status = obj.get("status") or {}
        if status.get("phase") != "Failed":
            continue
        cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Failed"), {})
        reason = cond.get("reason") or "Failed"
        out.append(f"{obj['kind']}/{obj['metadata']['name']}: {reason}: {cond.get('message') or '(no message)'}")
    return out


class OperatorWatch:
    """Reads the operator's log as it grows and checks that its process is alive."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, *, offset: int = 0,
                 repeats: int = 3) -> None:
        self.proc, self.log_path, self.repeats = proc, log_path, repeats
        self._offset = offset
        self._seen: Counter[str] = Counter()
        self.last_error = ""

    def _read_new(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        # only whole lines: a traceback being written is read on the next check
        cut = data.rfind(b"\n") + 1
        self._offset += cut
        return data[:cut].decode(errors="replace")

    def check(self) -> None:
        """Raise :class:`DemoFailure` if the operator exited or logs one error over and over."""
        for line in exception_lines(self._read_new()):
            self._seen[line] += 1
            self.last_error = line
            if self._seen[line] >= self.repeats:
                raise DemoFailure(f"the operator fails the same way on every pass ({self._seen[line]} times): "
                                  f"{line}\n   full log: {self.log_path}")
        code = self.proc.poll()
        if code is not None:
            last = f"; its last error: {self.last_error}" if self.last_error else ""
            raise DemoFailure(f"the operator exited with code {code}{last}\n   full log: {self.log_path}")


class LoopEnd:
    """Decides when the loop is over: every AlignJob ended, or nothing can move any more.

    A rejected iteration leaves the next one waiting for a promotion that never comes; that
    is a correct end, recognised when no object is running and the picture is unchanged for
    ``settle`` seconds (so a consumer that has not yet noticed its producer finished is not
    mistaken for a stuck one). A Failed run, a broken operator, or a picture unchanged for
    ``stall`` seconds while something is unfinished ends the wait with :class:`DemoFailure`.
    """

    def __init__(self, *, watch: OperatorWatch | None = None, settle: float = 45.0, stall: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.watch, self.settle, self.stall, self.clock = watch, settle, stall, clock
        self._last: tuple[tuple[str, ...], ...] = ()
        self._since = clock()

    def __call__(self, objects: list[dict[str, Any]]) -> bool:
        if self.watch is not None:
            self.watch.check()
        failed = failed_conditions(objects)
        if failed:
            log = f"\n   operator log: {self.watch.log_path}" if self.watch is not None else ""
            raise DemoFailure("a run of the loop failed:\n   " + "\n   ".join(failed) + log)
        picture = tuple(sorted(row(o) for o in objects))
        if picture != self._last:
            self._last, self._since = picture, self.clock()
        phases = [row[1] for row in picture]
        aligns = [row[1] for row in picture if row[0].startswith("AlignJob/")]
        if aligns and all(p in TERMINAL for p in aligns):
            return True
        unchanged = self.clock() - self._since
        idle = all(p in TERMINAL or p == "WaitingForInputs" for p in phases)
        if idle and "Rejected" in phases and unchanged > self.settle:
            return True
        if unchanged > self.stall:
            why = f"; the operator's last error: {self.watch.last_error}" if self.watch and self.watch.last_error else ""
            where = f"\n   operator log: {self.watch.log_path}" if self.watch is not None else ""
            stuck = ", ".join(f"{r[0]} {r[1]}" for r in picture if r[1] not in TERMINAL)
            raise DemoFailure(f"nothing changed for {unchanged:.0f}s ({stuck}){why}{where}")
        return False
