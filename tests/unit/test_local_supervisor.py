"""Process bookkeeping of `synthloop local`: start, identify by start time, stop by pid."""

from __future__ import annotations

import socket
import sys
from dataclasses import replace
from pathlib import Path

from synthloop.local.supervisor import (
    is_alive,
    port_in_use,
    process_start_ticks,
    start_process,
    stop_process,
)


def test_start_and_stop_a_real_process(tmp_path: Path) -> None:
    rec = start_process("sleeper", [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(60)"],
                        log_path=tmp_path / "sleeper.log")
    assert is_alive(rec)
    assert process_start_ticks(rec.pid) == rec.start_ticks
    msg = stop_process(rec, grace=5)
    assert msg.startswith("stopped sleeper")
    assert not is_alive(rec)
    assert "starting" in (tmp_path / "sleeper.log").read_text()


def test_sigterm_ignored_means_sigkill(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('RE' + 'ADY', flush=True); time.sleep(60)"
    rec = start_process("stubborn", [sys.executable, "-c", code], log_path=tmp_path / "s.log")
    import time
    for _ in range(50):
        if "READY" in (tmp_path / "s.log").read_text():
            break
        time.sleep(0.1)
    msg = stop_process(rec, grace=0.5)
    assert msg.startswith("killed stubborn")
    assert not is_alive(rec)


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    rec = start_process("victim", [sys.executable, "-c", "import time; time.sleep(30)"],
                        log_path=tmp_path / "v.log")
    impostor = replace(rec, start_ticks=rec.start_ticks - 1)  # same pid, other process
    assert not is_alive(impostor)
    assert "was not running" in stop_process(impostor)
    assert is_alive(rec)
    stop_process(rec, grace=5)


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)
