"""Job and Service manifests for one stage of a run: pure dicts, ready for server-side apply.

Every pod of a stage is one node's worth of work (one pod per node): an Indexed Job whose
completion index is the shard (SynthRound) or the node rank (training), with a headless
Service as the rendezvous of multi-node training (pod 0 is ``MASTER_ADDR``).

Training pods run torchrun (through :mod:`synthloop.workers.runtime.launch`): a rank per GPU,
``--nnodes`` from the Job and ``--node-rank`` from the completion index. A multi-node Job is a
gang: any failed pod fails the whole Job at once (``podFailurePolicy``), and the operator starts
the next attempt as a new Job that resumes from the latest checkpoint. Every Job fails at once
on the workers' invalid-input exit code and does not count pod disruptions (preemption, drain).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from synthloop.api.v1alpha1.common import API_VERSION, Resources
from synthloop.api.v1alpha1.pod import PodTemplate
from synthloop.api.worker import WorkerConfig
from synthloop.builders.names import STAGE_LABEL, owner_labels
from synthloop.builders.podtemplate import apply_pod_template
from synthloop.builders.profiles import HardwareProfile
from synthloop.exitcodes import DEFAULT_TERMINATION_PATH, EXIT_INVALID_INPUT

JOB_LABEL = "synthloop.io/job"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
COMPLETION_INDEX_FIELD = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
CONTAINER = "worker"
#: The uid (and gid) images/*/Dockerfile create and own HOME and the caches for; pods run as it.
WORKER_UID = 10001
#: torchrun's rendezvous port is derived from the Job name within this range, so gangs that
#: share a host network (hostNetwork pods, the local cluster's process nodes) do not collide.
RENDEZVOUS_PORTS = (23000, 26000)
LAUNCHER = ("python", "-m", "synthloop.workers.runtime.launch")


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
    # torchrun launches a rank per GPU (builders.stages.RANKED_TASKS: training and eval); else one process.
    distributed: bool = False
    gpus_per_pod: int = 8
    backoff_limit: int = 2
    resources: Resources = field(default_factory=Resources)
    pod_template: PodTemplate | None = None  # the spec's podTemplate (builders/podtemplate.py)


def worker_config_json(config: WorkerConfig) -> str:
    """The inline JSON of ``SYNTHLOOP_WORKER_CONFIG``.

    ``shard_index`` and ``workdir`` are per pod (from ``JOB_COMPLETION_INDEX`` and the pod's
    scratch dir), so the Job-wide document leaves them out.
    """
    data = config.model_dump(mode="json", exclude={"shard_index", "workdir"}, exclude_none=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def rendezvous_port(job_name: str) -> int:
    lo, hi = RENDEZVOUS_PORTS
    return lo + int(hashlib.sha256(job_name.encode()).hexdigest()[:8], 16) % (hi - lo)


def nproc_per_node(req: JobRequest) -> int:
    """Ranks per pod: one per GPU (a pod that sees no GPU runs ``SYNTHLOOP_CPU_RANKS``)."""
    return max(req.gpus_per_pod, 1)


def command(req: JobRequest) -> list[str]:
    """The container command: the worker itself, or torchrun over it for a training or eval stage."""
    worker = ["synthloop-worker", req.config.task]
    if not req.distributed:
        return worker
    nnodes = req.pods if req.rendezvous else 1
    argv = [*LAUNCHER, f"--nnodes={nnodes}", f"--nproc-per-node={nproc_per_node(req)}", "--max-restarts=0"]
    if req.rendezvous:
        # static rendezvous on rank 0's stable name; $(VAR) is expanded by the kubelet
        argv += ["--node-rank=$(NODE_RANK)", "--master-addr=$(MASTER_ADDR)", "--master-port=$(MASTER_PORT)"]
    else:
        argv += ["--standalone"]  # one node: a free local port, no Service
    return [*argv, "-m", "synthloop.workers.cli", req.config.task]


def pod_failure_policy(req: JobRequest) -> dict[str, Any]:
    """Fail at once on invalid input; never count a disruption; a gang fails on any pod.

    A gang fails at once on a disrupted pod too (its replacement could not rejoin the process
    group): the Job's Failed condition then names ``DisruptionTarget``, which tells the operator
    the attempt was disrupted even after the evicted pod object is gone.
    """
    disruption = [{"type": "DisruptionTarget", "status": "True"}]
    rules: list[dict[str, Any]] = [
        {"action": "FailJob" if req.rendezvous else "Ignore", "onPodConditions": disruption},
        {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                              "values": [EXIT_INVALID_INPUT]}},
    ]
    if req.rendezvous:
        rules.append({"action": "FailJob", "onExitCodes": {"containerName": CONTAINER, "operator": "NotIn",
                                                           "values": [0]}})
    return {"rules": rules}


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
        _env("MASTER_PORT", str(rendezvous_port(req.job_name))),
        {"name": "NODE_RANK", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX_FIELD}}},
        # WORLD_SIZE/RANK/LOCAL_RANK are torchrun's to set, per rank.
    ]
    merged = dict(profile.env)
    if req.resources.rdma and profile.rdma is not None:
        merged.update(profile.rdma.env)
    merged.update(platform.extra_env)
    env += [_env(k, v) for k, v in sorted(merged.items())]
    return env


def _affinity(job_name: str, profile: HardwareProfile, *, gpus: int) -> dict[str, Any]:
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
        # A pod without GPUs (the synth merge) must not take a GPU node from the training runs.
        op = "In" if gpus > 0 else "NotIn"
        exprs = [{"key": k, "operator": op, "values": [v]} for k, v in sorted(profile.node_selector.items())]
        # NotIn terms are ORed (any differing label is enough); In terms are ANDed in one term.
        terms = [{"matchExpressions": exprs}] if gpus > 0 else [{"matchExpressions": [e]} for e in exprs]
        affinity["nodeAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }
    return affinity


def _resources(req: JobRequest, profile: HardwareProfile) -> dict[str, Any]:
    limits: dict[str, str] = {}
    if req.gpus_per_pod > 0:
        limits[profile.gpu_resource] = str(req.gpus_per_pod)
    if req.resources.rdma and profile.rdma is not None:
        limits[profile.rdma.resource] = str(profile.rdma.count)
    if req.gpus_per_pod > 0:
        # cpu/memory limits equal to requests: with the GPUs, a Guaranteed pod
        pod = {k: v for k, v in (("cpu", profile.cpu), ("memory", profile.memory)) if v}
    else:
        pod = {k: v for k, v in (("cpu", profile.no_gpu.cpu), ("memory", profile.no_gpu.memory)) if v}
    limits.update(pod)
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
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": platform.image_pull_policy,
        "command": command(req),
        # the worker's one-line reason; a crash that wrote none leaves its log tail instead
        "terminationMessagePath": DEFAULT_TERMINATION_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "env": _pod_env(req, platform, profile),
        "resources": _resources(req, profile),
        "securityContext": container_security,
        "ports": [{"name": "rendezvous", "containerPort": rendezvous_port(req.job_name), "protocol": "TCP"}],
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "scratch", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "affinity": _affinity(req.job_name, profile, gpus=req.gpus_per_pod),
        "tolerations": [t.model_dump(exclude_none=True) for t in profile.tolerations] if req.gpus_per_pod else [],
        "containers": [container],
        "volumes": [
            # NCCL and data-loader workers share memory through /dev/shm; the container
            # default (64 MiB) is far too small.
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": profile.shm_size}},
            {"name": "scratch", "emptyDir": {}},
        ],
    }
    if not req.gpus_per_pod and profile.no_gpu.node_selector:
        pod_spec["nodeSelector"] = dict(profile.no_gpu.node_selector)
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
        # A gang's retries are the operator's attempts (a new Job that resumes); one pod's
        # replacement could not rejoin the running ranks.
        "backoffLimit": 0 if req.rendezvous else req.backoff_limit,
        "podFailurePolicy": pod_failure_policy(req),
        # a replacement pod starts only once the one it replaces has stopped
        "podReplacementPolicy": "Failed",
        "template": {"metadata": {"labels": pod_labels, **({"annotations": dict(pod_annotations)}
                                                           if pod_annotations else {})},
                     "spec": pod_spec},
    }
    if resources.queue:
        # Kueue admits the whole gang at once by unsuspending the Job.
        spec["suspend"] = True
    return apply_pod_template({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": req.job_name,
            "namespace": owner.namespace,
            "labels": job_labels,
            "ownerReferences": [owner.reference()],
        },
        "spec": spec,
    }, req.pod_template)


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
            "ports": [{"name": "rendezvous", "port": rendezvous_port(req.job_name),
                       "targetPort": rendezvous_port(req.job_name)}],
        },
    }
