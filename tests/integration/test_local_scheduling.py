"""DGX scheduling on the KWOK fleet: affinity, tolerations and GPU counts behave as on a real cluster."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from synthloop.local.fleet import create_nodes, delete_nodes, kwok_fleet
from synthloop.local.options import DGX_H100_LABELS
from synthloop.local.scaleprobe import dgx_affinity, gpu_toleration
from synthloop.local.testing import LocalCluster, wait_for

pytestmark = pytest.mark.local_only  # the embedded cluster itself (its CLI, KWOK, process nodes)

FLEET_KEY = "synthloop.dev/test-fleet"


@pytest.fixture
def fleet(local_cluster: LocalCluster) -> Iterator[str]:
    """3 KWOK DGX + 2 KWOK CPU nodes of this test only (an extra taint keeps other pods off)."""
    fleet_id = uuid.uuid4().hex[:6]
    taint = {"key": FLEET_KEY, "value": fleet_id, "effect": "NoSchedule"}
    nodes = kwok_fleet(dgx=3, cpu=2, gpu_labels=DGX_H100_LABELS, prefix=f"t{fleet_id}",
                       extra_labels={FLEET_KEY: fleet_id}, extra_taints=[taint])
    kube = local_cluster.kube
    create_nodes(kube, nodes)
    try:
        def ready() -> bool:
            items = kube.get("/api/v1/nodes", labelSelector=f"{FLEET_KEY}={fleet_id}")["items"]
            return sum(
                1 for n in items for c in (n.get("status") or {}).get("conditions") or []
                if c["type"] == "Ready" and c["status"] == "True"
            ) == len(nodes)
        wait_for(ready, timeout=60, what="KWOK test fleet Ready")
        yield fleet_id
    finally:
        delete_nodes(kube, [n["metadata"]["name"] for n in nodes])


def _pod(name: str, fleet_id: str, *, gpus: int | None, dgx: bool) -> dict[str, Any]:
    tolerations = [{"key": FLEET_KEY, "operator": "Equal", "value": fleet_id, "effect": "NoSchedule"}]
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "nodeSelector": {FLEET_KEY: fleet_id},
        "tolerations": tolerations,
        "containers": [{"name": "main", "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                        "command": ["sleep", "3600"]}],
    }
    if dgx:
        spec["affinity"] = dgx_affinity()
        tolerations.append(gpu_toleration())
    if gpus is not None:
        spec["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_dgx_pods_land_only_on_dgx_nodes(local_cluster: LocalCluster, namespace: str, fleet: str) -> None:
    kube = local_cluster.kube
    pods = f"/api/v1/namespaces/{namespace}/pods"
    for i in range(3):
        kube.create(pods, _pod(f"gpu-{i}", fleet, gpus=8, dgx=True))
    kube.create(pods, _pod("too-many", fleet, gpus=9, dgx=True))
    for i in range(4):
        kube.create(pods, _pod(f"plain-{i}", fleet, gpus=None, dgx=False))
    nodes = {n["metadata"]["name"]: n for n in kube.get("/api/v1/nodes")["items"]}

    def running(name: str) -> dict[str, Any] | None:
        pod = kube.get(f"{pods}/{name}")
        return pod if (pod.get("status") or {}).get("phase") == "Running" else None

    gpu_nodes = set()
    for i in range(3):
        pod = wait_for(lambda i=i: running(f"gpu-{i}"), timeout=60, what=f"gpu-{i} Running on KWOK")
        labels = nodes[pod["spec"]["nodeName"]]["metadata"]["labels"]
        assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        gpu_nodes.add(pod["spec"]["nodeName"])
    assert len(gpu_nodes) == 3, "8 GPUs each: one pod per DGX node"

    for i in range(4):
        pod = wait_for(lambda i=i: running(f"plain-{i}"), timeout=60, what=f"plain-{i} Running")
        labels = nodes[pod["spec"]["nodeName"]]["metadata"]["labels"]
        assert "nvidia.com/gpu.product" not in labels, "a pod without the GPU toleration reached a DGX node"

    def failed_scheduling() -> dict[str, Any] | None:
        events = kube.get(f"/api/v1/namespaces/{namespace}/events",
                          fieldSelector="involvedObject.name=too-many")["items"]
        return next((e for e in events if e["reason"] == "FailedScheduling"), None)

    event = wait_for(failed_scheduling, timeout=60, what="FailedScheduling event for too-many")
    assert "nvidia.com/gpu" in event["message"]
    pod = kube.get(f"{pods}/too-many")
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")


def test_kwok_leaves_process_nodes_alone(local_cluster: LocalCluster) -> None:
    node = local_cluster.kube.get("/api/v1/nodes/local-dgx-0")
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("synthloop-process")
    lease = local_cluster.kube.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/local-dgx-0")
    assert lease["spec"]["holderIdentity"] == "local-dgx-0"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
