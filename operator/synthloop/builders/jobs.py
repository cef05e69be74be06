"""Job and Service manifests for one stage of a run: pure dicts, ready for server-side apply.

Every pod of a stage is one node's worth of work (one pod per node): an Indexed Job whose
completion index is the shard (SynthRound) or the node rank (training), with a headless
Service as the rendezvous of multi-node training (pod 0 is ``MASTER_ADDR``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from synthloop.api.v1alpha1.common import API_VERSION, Resources
from synthloop.api.worker import WorkerConfig
from synthloop.builders.names import STAGE_LABEL, owner_labels
from synthloop.builders.profiles import HardwareProfile

JOB_LABEL = "synthloop.io/job"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
COMPLETION_INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
MASTER_PORT = 29500
WORKER_UID = 1000


@dataclass(frozen=True)
class Owner:
    """The CR a child belongs to (owner reference + labels)."""

    kind: str
    name: str
    namespace: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def labels(self) -> dict[str, str]:
        return owner_labels(kind=self.kind, name=self.name, uid=self.uid)


@dataclass(frozen=True)
class Platform:
    """Operator settings a pod needs: image, MinIO endpoint and the credentials Secret."""

    image: str
    s3_endpoint: str
    s3_secret: str = "synthloop-minio"
    s3_secure: bool = False
    image_pull_policy: str = "IfNotPresent"
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRequest:
    """One stage's Job: which task, how many pods, and the worker config they share."""

    job_name: str
    stage: str
    config: WorkerConfig
    pods: int = 1
    # Multi-node training: a headless Service named like the Job; ranks from the index.
    rendezvous: bool = False
    gpus_per_pod: int = 8
    backoff_limit: int = 2
    resources: Resources = field(default_factory=Resources)


def worker_config_json(config: WorkerConfig) -> str:
    """The inline JSON of ``SYNTHLOOP_WORKER_CONFIG``.

    ``shard_index`` and ``workdir`` are per pod (from ``JOB_COMPLETION_INDEX`` and the pod's
    scratch dir), so the Job-wide document leaves them out.
    """
    data = config.model_dump(mode="json", exclude={"shard_index", "workdir"}, exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _pod_env(req: JobRequest, platform: Platform, profile: HardwareProfile) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        _env("SYNTHLOOP_WORKER_CONFIG", worker_config_json(req.config)),
        _env("SYNTHLOOP_S3_ENDPOINT", platform.s3_endpoint),
        _env("SYNTHLOOP_S3_SECURE", "1" if platform.s3_secure else "0"),
        {"name": "AWS_ACCESS_KEY_ID",
         "valueFrom": {"secretKeyRef": {"name": platform.s3_secret, "key": "accessKey"}}},
        {"name": "AWS_SECRET_ACCESS_KEY",
         "valueFrom": {"secretKeyRef": {"name": platform.s3_secret, "key": "secretKey"}}},
        _env("NNODES", str(req.pods if req.rendezvous else 1)),
        _env("MASTER_ADDR", f"{req.job_name}-0.{req.job_name}" if req.rendezvous else "127.0.0.1"),
        _env("MASTER_PORT", str(MASTER_PORT)),
        {"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX_FIELD}}},
        # GPUs a launcher (torchrun --nproc-per-node) may start ranks for. WORLD_SIZE/RANK are
        # left to that launcher: the pod runs one process unless its command launches more.
        _env("NPROC_PER_NODE", str(max(req.gpus_per_pod, 1))),
    ]
    merged = dict(profile.env)
    if req.resources.rdma and profile.rdma is not None:
        merged.update(profile.rdma.env)
    merged.update(platform.extra_env)
    env += [_env(k, v) for k, v in sorted(merged.items())]
    return env


def _affinity(job_name: str, profile: HardwareProfile) -> dict[str, Any]:
    affinity: dict[str, Any] = {
        # One pod per node: the whole node's GPUs, NICs and /dev/shm belong to one rank.
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {JOB_LABEL: job_name}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    if profile.node_selector:
        affinity["nodeAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": k, "operator": "In", "values": [v]}
                            for k, v in sorted(profile.node_selector.items())
                        ]
                    }
                ]
            }
        }
    return affinity


def _resources(req: JobRequest, profile: HardwareProfile) -> dict[str, Any]:
    limits: dict[str, str] = {}
    if req.gpus_per_pod > 0:
        limits[profile.gpu_resource] = str(req.gpus_per_pod)
    if req.resources.rdma and profile.rdma is not None:
        limits[profile.rdma.resource] = str(profile.rdma.count)
    requests = dict(profile.requests)
    requests.update(limits)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _security(req: JobRequest, profile: HardwareProfile) -> tuple[dict[str, Any], dict[str, Any]]:
    """Pod and container security contexts: the restricted Pod Security Standard where possible.

    RDMA needs IPC_LOCK to pin memory for the HCA, which the restricted standard forbids; only
    then is a capability added back.
    """
    pod = {
        "runAsNonRoot": True,
        "runAsUser": WORKER_UID,
        "runAsGroup": WORKER_UID,
        "fsGroup": WORKER_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    caps: dict[str, Any] = {"drop": ["ALL"]}
    if req.resources.rdma and profile.rdma is not None:
        caps["add"] = ["IPC_LOCK"]
    container = {
        "allowPrivilegeEscalation": False,
        "capabilities": caps,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if not profile.restricted:
        return {}, {"allowPrivilegeEscalation": False}
    return pod, container


def build_job(owner: Owner, platform: Platform, profile: HardwareProfile, req: JobRequest,
              *, pod_annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The Indexed Job of one stage. Apply with server-side apply; the name is deterministic.

    ``pod_annotations`` go on the pod template (Kueue's topology-aware scheduling reads them there).
    """
    labels = {**owner.labels(), STAGE_LABEL: req.stage}
    pod_labels = {**labels, JOB_LABEL: req.job_name}
    resources = req.resources
    job_labels = dict(labels)
    if resources.queue:
        job_labels[KUEUE_QUEUE_LABEL] = resources.queue
        if resources.priority_class:
            job_labels[KUEUE_PRIORITY_LABEL] = resources.priority_class
    pod_security, container_security = _security(req, profile)
    image = resources.image or platform.image
    container: dict[str, Any] = {
        "name": "worker",
        "image": image,
        "imagePullPolicy": platform.image_pull_policy,
        "command": ["synthloop-worker", req.config.task],
        "env": _pod_env(req, platform, profile),
        "resources": _resources(req, profile),
        "securityContext": container_security,
        "ports": [{"name": "rendezvous", "containerPort": MASTER_PORT, "protocol": "TCP"}],
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "scratch", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "affinity": _affinity(req.job_name, profile),
        "tolerations": [t.model_dump(exclude_none=True) for t in profile.tolerations],
        "containers": [container],
        "volumes": [
            # NCCL and data-loader workers share memory through /dev/shm; the container
            # default (64 MiB) is far too small.
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": profile.shm_size}},
            {"name": "scratch", "emptyDir": {}},
        ],
    }
    if pod_security:
        pod_spec["securityContext"] = pod_security
    if req.rendezvous:
        pod_spec["subdomain"] = req.job_name
    if resources.priority_class_name:
        pod_spec["priorityClassName"] = resources.priority_class_name
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": req.pods,
        "parallelism": req.pods,
        "backoffLimit": req.backoff_limit,
        "template": {"metadata": {"labels": pod_labels, **({"annotations": dict(pod_annotations)}
                                                           if pod_annotations else {})},
                     "spec": pod_spec},
    }
    if resources.queue:
        # Kueue admits the whole gang at once by unsuspending the Job.
        spec["suspend"] = True
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": req.job_name,
            "namespace": owner.namespace,
            "labels": job_labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": spec,
    }


COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


def build_service(owner: Owner, req: JobRequest) -> dict[str, Any]:
    """Headless Service giving the rendezvous pod (rank 0) the name ``<job>-0.<job>``.

    Only rank 0 is selected: the ranks need just ``MASTER_ADDR``, and endpoints for all 768
    pods would churn the control plane while they start (measured in bench/scale.py).
    """
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": req.job_name,
            "namespace": owner.namespace,
            "labels": {**owner.labels(), STAGE_LABEL: req.stage},
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "clusterIP": "None",
            # Ranks must resolve each other before they are Ready (the rendezvous is how
            # they become ready).
            "publishNotReadyAddresses": True,
            "selector": {JOB_LABEL: req.job_name, COMPLETION_INDEX_LABEL: "0"},
            "ports": [{"name": "rendezvous", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
        },
    }
