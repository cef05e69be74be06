"""The demo's watchdog: a broken operator or a Failed run ends the demo at once, saying why."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from synthloop.demo.watchdog import DemoFailure, LoopEnd, OperatorWatch, exception_lines

KOPF_LOG = """\
[2026-12-01 10:00:00,000] kopf.objects [ERROR] Handler 'alignjobs-create' failed with an exception. Will retry.
Traceback (most recent call last):
  File "/x/kopf/_core/actions/execution.py", line 276, in execute_handler_once
    result = await invoke_handler(
  File "/x/synthloop/api/v1alpha1/common.py", line 66, in _rules_of
    import celpy
ModuleNotFoundError: No module named 'celpy'
[2026-12-01 10:00:01,000] kopf.objects [INFO] Timer 'x' succeeded.
Traceback (most recent call last):
  File "a.py", line 1, in <module>
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "a.py", line 3, in <module>
ValueError: y
"""


def cr(kind: str, name: str, phase: str | None, **status: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name}, "status": {"phase": phase, **status} if phase else {}}


def test_exception_lines_are_the_last_line_of_each_traceback() -> None:
    assert exception_lines(KOPF_LOG) == ["ModuleNotFoundError: No module named 'celpy'", "KeyError: 'x'",
                                         "ValueError: y"]


def _writer(log: Path, script: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-c", script], stdout=out, stderr=subprocess.STDOUT)


def test_the_same_traceback_on_repeated_passes_stops_the_demo(tmp_path: Path) -> None:
    log = tmp_path / "operator.log"
    log.write_text("an older run's traceback does not count\nTraceback (most recent call last):\n"
                   "ModuleNotFoundError: No module named 'celpy'\n")
    script = ("import sys, time, traceback\n"
              "for _ in range(3):\n"
              "    try:\n        import celpy_missing_here\n"
              "    except ImportError:\n        traceback.print_exc(); sys.stderr.flush()\n"
              "time.sleep(30)\n")
    proc = _writer(log, script)
    try:
        watch = OperatorWatch(proc, log, offset=log.stat().st_size)
        done = LoopEnd(watch=watch)
        with pytest.raises(DemoFailure) as info:
            for _ in range(200):
                done([cr("AlignJob", "a", None)])
                time.sleep(0.05)
        message = str(info.value)
        assert "No module named 'celpy_missing_here'" in message and "3 times" in message
        assert str(log) in message
    finally:
        proc.kill()
        proc.wait()


def test_an_operator_that_exits_stops_the_demo_with_its_code(tmp_path: Path) -> None:
    log = tmp_path / "operator.log"
    proc = _writer(log, "import sys; print('Traceback (most recent call last):'); print('RuntimeError: boom'); sys.exit(3)")
    proc.wait()
    watch = OperatorWatch(proc, log)
    with pytest.raises(DemoFailure, match=r"exited with code 3; its last error: RuntimeError: boom"):
        watch.check()


def test_a_failed_run_stops_the_demo_with_its_condition() -> None:
    failed = cr("RewardTrain", "reward", "Failed", conditions=[
        {"type": "Failed", "status": "True", "reason": "WorkerFailed", "message": "stage train: bad data"}])
    with pytest.raises(DemoFailure, match=r"RewardTrain/reward: WorkerFailed: stage train: bad data"):
        LoopEnd()([cr("PretrainJob", "base", "Succeeded"), failed])


def test_the_loop_ends_when_every_alignjob_ended() -> None:
    end = LoopEnd()
    assert not end([cr("AlignJob", "a", "Running"), cr("AlignJob", "b", "Pending")])
    assert end([cr("AlignJob", "a", "Promoted"), cr("AlignJob", "b", "Rejected")])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_rejection_ends_the_loop_once_it_settles_and_a_stall_fails_it() -> None:
    clock = Clock()
    settled = LoopEnd(settle=45, stall=600, clock=clock)
    picture = [cr("AlignJob", "a", "Rejected"), cr("AlignJob", "b", "WaitingForInputs")]
    assert not settled(picture)
    clock.now = 50
    assert settled(picture)

    stuck = LoopEnd(settle=45, stall=600, clock=clock)
    running = [cr("PretrainJob", "base", "Running", progress="3/10")]
    assert not stuck(running)
    clock.now += 599
    assert not stuck(running)
    clock.now += 2
    with pytest.raises(DemoFailure, match=r"nothing changed for 601s \(PretrainJob/base Running\)"):
        stuck(running)
