"""Node objects and KWOK stages of the local fleet."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthloop.local.fleet import kwok_fleet, node_manifest, render_stages
from synthloop.local.nodeagent.nodes import process_node, process_node_names
from synthloop.local.options import DGX_H100_LABELS, ClusterOptions


def test_kwok_dgx_nodes_look_like_gpu_feature_discovery_labelled_dgx() -> None:
    nodes = kwok_fleet(dgx=3, cpu=2, gpu_labels=DGX_H100_LABELS)
    assert [n["metadata"]["name"] for n in nodes] == [
        "kwok-dgx-0", "kwok-dgx-1", "kwok-dgx-2", "kwok-cpu-0", "kwok-cpu-1"]
    dgx, cpu = nodes[0], nodes[-1]
    labels = dgx["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.count"] == "8" and labels["nvidia.com/gpu.family"] == "hopper"
    assert labels["node.kubernetes.io/instance-type"] == "dgx-h100"
    assert dgx["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    alloc = dgx["status"]["allocatable"]
    assert alloc["nvidia.com/gpu"] == "8" and "rdma/rdma_shared_device_a" in alloc
    assert dgx["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert "nvidia.com/gpu" not in cpu["status"]["allocatable"] and not cpu["spec"]
    assert "nvidia.com/gpu.product" not in cpu["metadata"]["labels"]


def test_process_nodes_are_never_kwok_managed() -> None:
    assert process_node_names(dgx=1, cpu=1) == ["local-dgx-0", "local-cpu-0"]
    import datetime as dt
    node = process_node("local-dgx-0", gpu_labels=DGX_H100_LABELS, kubelet_port=20250,
                        since=dt.datetime.now(dt.UTC))
    assert "kwok.x-k8s.io/node" not in node["metadata"]["annotations"]
    assert node["metadata"]["labels"]["synthloop.dev/node-kind"] == "process"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 20250
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    cpu = node_manifest("local-cpu-0", kind="process", gpu_labels=None)
    assert not cpu["spec"].get("taints")


def test_stages_complete_job_pods_after_the_configured_delay(tmp_path: Path) -> None:
    out = render_stages(tmp_path / "stages.yaml", job_seconds=2.5)
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out.read_text())}
    assert set(docs) == {"node-initialize", "node-heartbeat-with-lease", "pod-ready",
                         "pod-complete", "pod-delete"}
    assert docs["pod-complete"]["spec"]["delay"] == {"durationMilliseconds": 2500}


def test_options_validation_names_the_flag() -> None:
    with pytest.raises(ValueError, match="--minio-port and --etcd-port both use port 22379"):
        ClusterOptions(minio_port=22379).validate()
    with pytest.raises(ValueError, match="--kwok-nodes must be >= 0"):
        ClusterOptions(kwok_nodes=-1).validate()


def test_kwok_pod_ips_are_deterministic() -> None:
    """A re-played pod-ready stage must not merge a second IP into status.podIPs."""
    from synthloop.local.fleet import STAGES_TEMPLATE

    ready = next(d for d in yaml.safe_load_all(STAGES_TEMPLATE.read_text())
                 if d["metadata"]["name"] == "pod-ready")
    template = ready["spec"]["next"]["statusTemplate"]
    assert "PodIPsWith" not in template and "NodeIPsWith" in template
