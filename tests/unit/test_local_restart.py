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
