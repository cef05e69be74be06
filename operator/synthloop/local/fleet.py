"""Node objects for the local cluster: the KWOK DGX fleet, KWOK CPU nodes, process nodes.

KWOK is started with ``--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake``,
so it drives only nodes created here with that annotation and never the process-backed
nodes, whose status the node agent reports honestly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from synthloop.local.kube import KubeClient
from synthloop.local.options import (
    GPU_TAINT,
    KWOK_ANNOTATION,
    KWOK_ANNOTATION_VALUE,
    NODE_KIND_LABEL,
    RDMA_RESOURCE,
)

STAGES_TEMPLATE = Path(__file__).with_name("kwok-stages.yaml")

DGX_RESOURCES = {
    "cpu": "224",
    "memory": "2063937Mi",
    "ephemeral-storage": "30Ti",
    "pods": "110",
    "nvidia.com/gpu": "8",
    RDMA_RESOURCE: "1k",
}
CPU_RESOURCES = {"cpu": "64", "memory": "256Gi", "ephemeral-storage": "1Ti", "pods": "110"}


def node_manifest(
    name: str,
    *,
    kind: str,
    gpu_labels: Mapping[str, str] | None,
    extra_labels: Mapping[str, str] | None = None,
    extra_taints: Iterable[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """A Node as registered by its backend. ``gpu_labels=None`` makes a plain CPU node."""
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        NODE_KIND_LABEL: kind,
    }
    taints: list[dict[str, str]] = [dict(t) for t in extra_taints]
    if gpu_labels is not None:
        labels.update(gpu_labels)
        taints.insert(0, dict(GPU_TAINT))
        resources = dict(DGX_RESOURCES)
        resources["nvidia.com/gpu"] = gpu_labels.get("nvidia.com/gpu.count", "8")
    else:
        labels["node.kubernetes.io/instance-type"] = "cpu"
        resources = dict(CPU_RESOURCES)
    labels.update(extra_labels or {})
    annotations = {"node.alpha.kubernetes.io/ttl": "0"}
    if kind == "kwok":
        annotations[KWOK_ANNOTATION] = KWOK_ANNOTATION_VALUE
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {"taints": taints} if taints else {},
        "status": {"capacity": dict(resources), "allocatable": dict(resources)},
    }


def kwok_fleet(
    *,
    dgx: int,
    cpu: int,
    gpu_labels: Mapping[str, str],
    prefix: str = "kwok",
    extra_labels: Mapping[str, str] | None = None,
    extra_taints: Iterable[Mapping[str, str]] = (),
) -> list[dict[str, Any]]:
    """``dgx`` DGX-like and ``cpu`` plain KWOK nodes named ``<prefix>-dgx-N``/``<prefix>-cpu-N``."""
    taints = list(extra_taints)
    nodes = [
        node_manifest(f"{prefix}-dgx-{i}", kind="kwok", gpu_labels=gpu_labels,
                      extra_labels=extra_labels, extra_taints=taints)
        for i in range(dgx)
    ]
    nodes += [
        node_manifest(f"{prefix}-cpu-{i}", kind="kwok", gpu_labels=None,
                      extra_labels=extra_labels, extra_taints=taints)
        for i in range(cpu)
    ]
    return nodes


def create_nodes(kube: KubeClient, nodes: list[dict[str, Any]], *, workers: int = 16) -> None:
    """Create every node (an existing one is left as is), ``workers`` requests at a time."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda n: kube.create("/api/v1/nodes", n, exist_ok=True), nodes))


def delete_nodes(kube: KubeClient, names: Iterable[str], *, workers: int = 16) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda n: kube.delete(f"/api/v1/nodes/{n}"), names))


def render_stages(out: Path, *, job_seconds: float) -> Path:
    """Write KWOK's stage config with Job pods completing ``job_seconds`` after Running."""
    docs = list(yaml.safe_load_all(STAGES_TEMPLATE.read_text()))
    for doc in docs:
        if doc["metadata"]["name"] == "pod-complete":
            doc["spec"]["delay"] = {"durationMilliseconds": int(job_seconds * 1000)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out
