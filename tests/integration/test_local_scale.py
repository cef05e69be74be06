"""768 KWOK DGX nodes register and a 768-completion Indexed Job binds and completes on them
(the report's cluster size). Timings are printed (run with -s) and written next to the test
log, never asserted: bench/cluster_scale.py is where they are compared."""

from __future__ import annotations

import json
import os

import pytest

from synthloop.local.scaleprobe import run_probe
from synthloop.local.testing import LocalCluster

pytestmark = pytest.mark.local_only  # the embedded cluster itself (its CLI, KWOK, process nodes)

NODES = int(os.environ.get("SYNTHLOOP_SCALE_NODES", "768"))


def test_768_dgx_nodes_and_a_768_completion_indexed_job(
    local_cluster: LocalCluster, namespace: str
) -> None:
    result = run_probe(local_cluster.kube, nodes=NODES, namespace=namespace, timeout=900)
    print("\nscale probe:", json.dumps(result.as_dict()))
    assert result.nodes == NODES
    assert result.pods_on_probe_nodes == NODES, "every pod must be bound to its own probe DGX node"
