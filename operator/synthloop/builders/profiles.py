"""Hardware profiles: what ``spec.resources.profile`` turns into on a pod.

Profiles are data (operator config, a YAML file mounted from a ConfigMap), so a cluster with
other GPU labels or taints needs a new profile, not a code change. The built-in ``dgx-h100``
matches ``manifests/base/profiles.yaml`` and is used when no file is configured.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Toleration(_Model):
    key: str
    operator: str = "Exists"
    value: str | None = None
    effect: str | None = None


class Rdma(_Model):
    """Added when a CR sets ``resources.rdma``: an RDMA device resource and NCCL IB env."""

    resource: str = "rdma/rdma_shared_device_a"
    count: int = Field(default=1, ge=1)
    env: dict[str, str] = Field(default_factory=dict)


class NoGpu(_Model):
    """CPU and memory of a pod that asks for no GPU (the synth merge); it avoids the GPU nodes.

    ``node_selector`` names where such pods go (a CPU pool), when any non-GPU node would not do.
    """

    cpu: str | None = "4"
    memory: str | None = "16Gi"
    node_selector: dict[str, str] = Field(default_factory=dict)


class HardwareProfile(_Model):
    """Placement and resources of one kind of node (one pod per node)."""

    description: str = ""
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    gpu_resource: str = "nvidia.com/gpu"
    gpus_per_node: int = Field(default=8, ge=0)
    # Memory of one GPU; the operator's capacity check refuses runs that cannot fit (None: no check).
    gpu_memory_gib: float | None = Field(default=None, gt=0)
    shm_size: str = "64Gi"
    env: dict[str, str] = Field(default_factory=dict)
    rdma: Rdma | None = None
    # CPU and memory of one GPU pod, as requests and limits (a Guaranteed pod); leave the
    # node daemons' share (kubelet, GPU/network operators) out of the node's capacity.
    cpu: str | None = None
    memory: str | None = None
    no_gpu: NoGpu = Field(default_factory=NoGpu)
    # Optional extra pod requests (any resource) on top of the above.
    requests: dict[str, str] = Field(default_factory=dict)
    # Process-backed local nodes run pods without a container runtime; a profile may say
    # the security context cannot be enforced there, but defaults to the restricted one.
    restricted: bool = True


class ProfileSet(_Model):
    default: str = "dgx-h100"
    profiles: dict[str, HardwareProfile]

    def get(self, name: str | None) -> HardwareProfile:
        """The profile ``name`` (or the default); KeyError names the profiles there are."""
        key = name or self.default
        try:
            return self.profiles[key]
        except KeyError:
            have = ", ".join(sorted(self.profiles)) or "none"
            raise KeyError(f"hardware profile {key!r} is not configured (profiles: {have})") from None


DGX_H100 = HardwareProfile(
    description="NVIDIA DGX H100, 8x H100 80GB SXM, ConnectX-7 InfiniBand",
    node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8"},
    tolerations=[Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")],
    gpu_resource="nvidia.com/gpu",
    gpus_per_node=8,
    gpu_memory_gib=80,
    shm_size="64Gi",
    # 224 hardware threads and 2 TiB per DGX H100; the rest is for the node's daemons
    cpu="208",
    memory="1800Gi",
    env={"NCCL_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "WARN", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1"},
    rdma=Rdma(resource="rdma/rdma_shared_device_a", count=1,
              env={"NCCL_IB_DISABLE": "0", "NCCL_IB_HCA": "mlx5"}),
)

BUILTIN = ProfileSet(default="dgx-h100", profiles={"dgx-h100": DGX_H100})


class ProfileError(ValueError):
    """A profiles file that does not parse; the message names the bad field."""


def parse_profiles(text: str, *, source: str = "profiles") -> ProfileSet:
    """Parse a profiles YAML document (``default`` + ``profiles: {name: {...}}``)."""
    data: Any = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping with 'default' and 'profiles'")
    try:
        profiles = ProfileSet.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            ".".join(str(p) for p in err["loc"]) + ": " + err["msg"] for err in exc.errors()
        )
        raise ProfileError(f"{source}: {problems}") from None
    if profiles.default not in profiles.profiles:
        raise ProfileError(
            f"{source}: default profile {profiles.default!r} is not among the profiles "
            f"({', '.join(sorted(profiles.profiles))})"
        )
    return profiles
