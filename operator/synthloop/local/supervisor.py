"""Start, identify and stop the cluster's processes by pid, and only those.

A pid alone can be reused by an unrelated process after a crash, so every started process
is recorded with its kernel start time (``/proc/<pid>/stat`` field 22); `down` signals a
pid only while that start time still matches.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


class SupervisorError(RuntimeError):
    """A process could not be started or did not become ready; the message names it."""


@dataclass(frozen=True)
class ProcessRecord:
    """One process `up` started: enough to find it again and to prove it is still ours."""

    name: str
    pid: int
    start_ticks: int
    log: str
    argv: list[str]

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(str(data["pid"])),
            start_ticks=int(str(data["start_ticks"])),
            log=str(data["log"]),
            argv=[str(a) for a in data["argv"]],  # type: ignore[attr-defined]
        )


def process_start_ticks(pid: int) -> int | None:
    """Kernel start time of ``pid`` in clock ticks, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # zombie: exited, only waiting to be reaped
        return None
    return int(fields[19])


def is_alive(record: ProcessRecord) -> bool:
    return process_start_ticks(record.pid) == record.start_ticks


def start_process(
    name: str,
    argv: list[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    detached: bool = False,
) -> ProcessRecord:
    """Start ``argv`` in its own session (so it outlives the CLI) with output to ``log_path``.

    ``detached``: not even a child of this process (a shell starts it in the background and
    exits), for a long-lived caller such as a test session that restarts a component of a
    cluster it does not own: nothing of it is left for this process to reap or warn about.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if detached:
        return _start_detached(name, argv, log_path=log_path, env=env, cwd=cwd)
    with log_path.open("ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {argv}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise SupervisorError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    ticks = process_start_ticks(proc.pid)
    # Kept so this process can reap it (and Popen does not warn); after this CLI exits the
    # process lives on and init reaps it.
    _CHILDREN[proc.pid] = proc
    return ProcessRecord(name, proc.pid, ticks if ticks is not None else -1, str(log_path), argv)


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _start_detached(name: str, argv: list[str], *, log_path: Path, env: dict[str, str] | None,
                    cwd: Path | None) -> ProcessRecord:
    with log_path.open("ab") as log:
        log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {argv}\n".encode())
    script = '"$@" </dev/null >>"$SYNTHLOOP_SUPERVISOR_LOG" 2>&1 & echo $!'
    try:
        out = subprocess.run(
            ["/bin/sh", "-c", script, "sh", *argv], capture_output=True, text=True, check=True,
            env={**(os.environ if env is None else env), "SYNTHLOOP_SUPERVISOR_LOG": str(log_path)},
            cwd=cwd, start_new_session=True, timeout=30,
        )
        pid = int(out.stdout.strip())
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise SupervisorError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    ticks = process_start_ticks(pid)
    return ProcessRecord(name, pid, ticks if ticks is not None else -1, str(log_path), argv)


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def wait_gone(record: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_alive(record):
            return True
        time.sleep(0.1)
    _reap(record.pid)
    return not is_alive(record)


def stop_process(record: ProcessRecord, *, grace: float = 10.0) -> str:
    """SIGTERM, wait ``grace`` seconds, then SIGKILL; returns what happened, for the CLI."""
    if not is_alive(record):
        return f"{record.name} (pid {record.pid}) was not running"
    try:
        os.kill(record.pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"{record.name} (pid {record.pid}) was not running"
    if wait_gone(record, grace):
        return f"stopped {record.name} (pid {record.pid})"
    try:
        os.kill(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_gone(record, 5.0)
    return f"killed {record.name} (pid {record.pid}) after {grace:.0f}s"


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something already listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR: a port in TIME_WAIT after `down` is free; a live listener is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` (0 if it is gone), from /proc/<pid>/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0
