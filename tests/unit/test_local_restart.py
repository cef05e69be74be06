"""`synthloop local restart`: what it refuses before it touches any process."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloop.local.cluster import RESTARTABLE, ClusterError, restart
from synthloop.local.paths import LocalPaths


def test_an_unknown_component_is_refused_with_the_ones_that_can_restart(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"cannot restart 'kwok'; expected one of \['etcd', 'kube-apiserver'"):
        restart("kwok", paths=LocalPaths(home=tmp_path))
    assert {"minio", "kube-apiserver"} <= set(RESTARTABLE)


def test_no_running_cluster_is_an_error_that_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="no running local cluster under .*synthloop local up"):
        restart("minio", paths=LocalPaths(home=tmp_path), progress=lambda _m: None)


def test_a_detached_process_is_not_a_child_of_the_caller_and_still_stops_by_its_record(tmp_path: Path) -> None:
    import os

    from synthloop.local.supervisor import is_alive, start_process, stop_process

    record = start_process("sleeper", ["sleep", "60"], log_path=tmp_path / "sleeper.log", detached=True)
    try:
        assert is_alive(record)
        stat = Path(f"/proc/{record.pid}/stat").read_text()
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        assert ppid != os.getpid()  # nothing for a test session to reap or warn about at exit
        assert Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    finally:
        assert stop_process(record, grace=5).startswith("stopped sleeper")
    assert not is_alive(record)
