"""Settings of one local cluster: ports, node fleets and the DGX label set.

Default ports sit below the Linux ephemeral range (32768+) and away from the standard
Kubernetes ones, so a local cluster does not collide with a real kubelet or with a kind
cluster on the same machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

DGX_H100_LABELS: dict[str, str] = {
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.memory": "81559",
    "nvidia.com/gpu.family": "hopper",
    "nvidia.com/gpu.machine": "DGX-H100",
    "node.kubernetes.io/instance-type": "dgx-h100",
}
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
RDMA_RESOURCE = "rdma/rdma_shared_device_a"

# Which backend runs a node: "process" (the node agent) or "kwok" (simulated).
NODE_KIND_LABEL = "synthloop.dev/node-kind"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"

PORT_FIELDS = (
    "etcd_port", "etcd_peer_port", "apiserver_port", "controller_manager_port",
    "scheduler_port", "minio_port", "minio_console_port", "kubelet_port",
    "kueue_webhook_port", "kueue_health_port", "kueue_metrics_port",
)


@dataclass
class ClusterOptions:
    """Everything `up` needs to know; stored in the state file so `status` can report it."""

    etcd_port: int = 22379
    etcd_peer_port: int = 22380
    apiserver_port: int = 26443
    controller_manager_port: int = 20257
    scheduler_port: int = 20259
    minio_port: int = 29000
    minio_console_port: int = 29001
    kubelet_port: int = 20250  # node agent's kubelet API (container logs)
    kueue_webhook_port: int = 29443  # the apiserver calls Kueue's webhooks here
    kueue_health_port: int = 28081
    kueue_metrics_port: int = 28443
    kwok_nodes: int = 2
    kwok_cpu_nodes: int = 1
    kwok_job_seconds: float = 1.0  # delay before KWOK marks a Job pod Succeeded
    dgx_process_nodes: int = 1
    cpu_process_nodes: int = 1
    gpu_labels: dict[str, str] = field(default_factory=lambda: dict(DGX_H100_LABELS))
    bucket: str = "synthloop"
    ready_timeout: float = 120.0
    # Kueue (`up --kueue`, or `local kueue up` on a running cluster)
    kueue: bool = False
    kueue_gpu_quota: int = 8  # nominal nvidia.com/gpu quota of the ClusterQueue
    kueue_namespace: str = "synthloop-demo"  # where the LocalQueue is created

    def ports(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in PORT_FIELDS}

    def validate(self) -> None:
        ports = self.ports()
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise ValueError(f"--{name.replace('_', '-')} must be a port in 1..65535, got {port}")
        seen: dict[int, str] = {}
        for name, port in ports.items():
            if port in seen:
                raise ValueError(
                    f"--{name.replace('_', '-')} and --{seen[port].replace('_', '-')} "
                    f"both use port {port}; each component needs its own port"
                )
            seen[port] = name
        for name in ("kwok_nodes", "kwok_cpu_nodes", "dgx_process_nodes", "cpu_process_nodes"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.kueue_gpu_quota < 0:
            raise ValueError(f"--kueue-gpu-quota must be >= 0, got {self.kueue_gpu_quota}")
        if self.kwok_job_seconds < 0:
            raise ValueError(f"--kwok-job-seconds must be >= 0, got {self.kwok_job_seconds}")

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ClusterOptions:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)  # type: ignore[arg-type]
