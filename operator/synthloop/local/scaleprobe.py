"""Fleet-scale probe: N KWOK DGX nodes register, then an N-completion Indexed Job runs on them.

Shared by the scale integration test and ``bench/cluster_scale.py``. The probe's nodes
carry an extra taint (``synthloop.dev/probe=<id>:NoSchedule``) that only the probe's pods
tolerate, so a probe in a shared cluster never captures anyone else's pods.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from synthloop.local.fleet import create_nodes, delete_nodes, kwok_fleet
from synthloop.local.kube import KubeClient
from synthloop.local.options import DGX_H100_LABELS

PROBE_TAINT_KEY = "synthloop.dev/probe"


@dataclass
class ProbeResult:
    nodes: int
    register_seconds: float  # create -> all Ready
    job_seconds: float  # Job created -> Complete
    bound_seconds: float  # Job created -> every pod bound to a node
    pods_on_probe_nodes: int

    def as_dict(self) -> dict[str, float]:
        return {
            "nodes": self.nodes, "register_seconds": round(self.register_seconds, 2),
            "bound_seconds": round(self.bound_seconds, 2), "job_seconds": round(self.job_seconds, 2),
            "pods_on_probe_nodes": self.pods_on_probe_nodes,
        }


def dgx_affinity() -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [
            {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]},
            {"key": "nvidia.com/gpu.count", "operator": "In", "values": ["8"]},
        ]}
    ]}}}


def gpu_toleration() -> dict[str, str]:
    return {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_probe(
    kube: KubeClient, *, nodes: int, namespace: str, timeout: float = 600.0, keep: bool = False
) -> ProbeResult:
    """Register ``nodes`` KWOK DGX nodes and run an Indexed Job with one 8-GPU pod per node."""
    probe = uuid.uuid4().hex[:6]
    taint = {"key": PROBE_TAINT_KEY, "value": probe, "effect": "NoSchedule"}
    fleet = kwok_fleet(dgx=nodes, cpu=0, gpu_labels=DGX_H100_LABELS, prefix=f"probe-{probe}",
                       extra_labels={PROBE_TAINT_KEY: probe}, extra_taints=[taint])
    names = {n["metadata"]["name"] for n in fleet}
    job_name = f"probe-{probe}"
    t0 = time.monotonic()
    try:
        create_nodes(kube, fleet)

        def all_ready() -> bool:
            items = kube.get("/api/v1/nodes", labelSelector=f"{PROBE_TAINT_KEY}={probe}")["items"]
            ready = sum(
                1 for n in items
                if any(c["type"] == "Ready" and c["status"] == "True"
                       for c in (n.get("status") or {}).get("conditions") or [])
            )
            return ready == nodes

        _wait(all_ready, timeout, f"{nodes} probe nodes Ready", interval=1.0)
        registered = time.monotonic() - t0

        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name, "namespace": namespace},
            "spec": {
                "completionMode": "Indexed", "completions": nodes, "parallelism": nodes,
                "backoffLimit": 0,
                "template": {"spec": {
                    "restartPolicy": "Never",
                    "affinity": dgx_affinity(),
                    "nodeSelector": {PROBE_TAINT_KEY: probe},
                    "tolerations": [gpu_toleration(),
                                    {"key": PROBE_TAINT_KEY, "operator": "Equal", "value": probe,
                                     "effect": "NoSchedule"}],
                    "containers": [{
                        "name": "trainer", "image": "nvcr.io/nvidia/pytorch:24.05-py3",
                        "command": ["torchrun"],
                        "resources": {"limits": {"nvidia.com/gpu": "8"},
                                      "requests": {"cpu": "1", "memory": "1Gi"}},
                    }],
                }},
            },
        }
        t1 = time.monotonic()
        kube.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", job)
        bound_at: list[float] = []
        on_probe: list[int] = []

        def complete() -> bool:
            if not bound_at:
                pods = kube.get(f"/api/v1/namespaces/{namespace}/pods",
                                labelSelector=f"job-name={job_name}")["items"]
                bound = [p for p in pods if (p.get("spec") or {}).get("nodeName")]
                if len(bound) >= nodes:
                    bound_at.append(time.monotonic() - t1)
                    on_probe.append(sum(1 for p in bound if p["spec"]["nodeName"] in names))
            status = kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{job_name}")["status"]
            for cond in status.get("conditions") or []:
                if cond["type"] == "Failed" and cond["status"] == "True":
                    raise RuntimeError(f"probe job failed: {cond.get('message')}")
            return bool(status.get("succeeded", 0) >= nodes)

        _wait(complete, timeout, f"{nodes}-completion Job", interval=1.0)
        job_seconds = time.monotonic() - t1
        if not bound_at:  # completed between polls: every pod was bound
            pods = kube.get(f"/api/v1/namespaces/{namespace}/pods",
                            labelSelector=f"job-name={job_name}")["items"]
            bound_at.append(job_seconds)
            on_probe.append(sum(1 for p in pods if p["spec"].get("nodeName") in names))
        return ProbeResult(nodes, registered, job_seconds, bound_at[0], on_probe[0])
    finally:
        if not keep:
            kube.delete(f"/apis/batch/v1/namespaces/{namespace}/jobs/{job_name}",
                        propagationPolicy="Background")
            delete_nodes(kube, names)
