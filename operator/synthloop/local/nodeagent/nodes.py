"""Process-backed Node objects: registration, Lease renewal and the Ready heartbeat.

The node lifecycle controller marks a node NotReady (and taints it unreachable) when its
Lease in ``kube-node-lease`` stops being renewed, so the agent renews it every 10 seconds,
as a kubelet does, and refreshes the Ready condition less often.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from synthloop.local.binaries import KUBERNETES_VERSION
from synthloop.local.fleet import node_manifest
from synthloop.local.kube import STRATEGIC, KubeClient, KubeError

LEASE_SECONDS = 40
LEASE_NAMESPACE = "kube-node-lease"


def process_node_names(*, dgx: int, cpu: int, first_dgx: int = 0, first_cpu: int = 0) -> list[str]:
    """``local-dgx-N`` then ``local-cpu-N``; ``first_*`` lets a second agent add more nodes."""
    return ([f"local-dgx-{i}" for i in range(first_dgx, first_dgx + dgx)]
            + [f"local-cpu-{i}" for i in range(first_cpu, first_cpu + cpu)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rfc3339(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_conditions(now: dt.datetime, since: dt.datetime) -> list[dict[str, str]]:
    def cond(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": _rfc3339(now), "lastTransitionTime": _rfc3339(since),
        }

    return [
        cond("Ready", "True", "KubeletReady", "synthloop node agent is running pods as processes"),
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "ok"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "ok"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "ok"),
    ]


def process_node(
    name: str, *, gpu_labels: Mapping[str, str] | None, kubelet_port: int, since: dt.datetime
) -> dict[str, Any]:
    """A process node's full Node object, as its agent registers it."""
    node = node_manifest(name, kind="process", gpu_labels=gpu_labels)
    node["status"].update({
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "conditions": node_conditions(_now(), since),
        "nodeInfo": {
            "architecture": "amd64", "operatingSystem": "linux", "osImage": "synthloop-local",
            "kernelVersion": "", "kubeletVersion": KUBERNETES_VERSION,
            "kubeProxyVersion": "", "containerRuntimeVersion": "synthloop-process://1",
            "machineID": "", "systemUUID": "", "bootID": "",
        },
        "phase": "Running",
    })
    return node


class NodeRegistrar:
    """Registers the agent's nodes and keeps their Leases and Ready condition fresh."""

    def __init__(self, kube: KubeClient, nodes: list[dict[str, Any]]) -> None:
        self.kube = kube
        self.nodes = {n["metadata"]["name"]: n for n in nodes}
        self.since = _now()

    def register(self) -> None:
        for name, node in self.nodes.items():
            if self.kube.create("/api/v1/nodes", node, exist_ok=True) is None:
                self.kube.patch(f"/api/v1/nodes/{name}", {
                    "metadata": {"labels": node["metadata"]["labels"]},
                    "spec": {"taints": (node.get("spec") or {}).get("taints"), "unschedulable": None},
                })
            self.heartbeat_status(name)
            self.renew_lease(name)

    def heartbeat_status(self, name: str) -> None:
        status = dict(self.nodes[name]["status"])
        status["conditions"] = node_conditions(_now(), self.since)
        self.kube.patch(f"/api/v1/nodes/{name}/status", {"status": status}, content_type=STRATEGIC)

    def renew_lease(self, name: str) -> None:
        now = _now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now}
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        try:
            self.kube.patch(f"{path}/{name}", {"spec": spec})
        except KubeError as exc:
            if exc.status != 404:
                raise
            self.kube.create(path, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE}, "spec": spec,
            }, exist_ok=True)
