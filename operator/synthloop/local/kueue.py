"""Kueue in the local cluster: the pinned controller manager as a process, its webhooks on loopback.

`synthloop local up --kueue` starts it with the rest; `synthloop local kueue up` adds it to a
cluster that is already running (what the test fixtures do, since every other test shares a
cluster started without it). Both are idempotent: a running Kueue is kept, its objects converge.

What comes from the Kueue module itself (its ``config/`` in the Go module cache): the CRDs with
their conversion-webhook patches, and the webhook configurations. What is changed, and why:

* every ``clientConfig.service`` becomes ``url: https://127.0.0.1:<port>/<path>`` with the local
  CA as ``caBundle``: there is no Service network here, the apiserver calls loopback;
* only the webhooks of Kueue's own kinds and of ``batch/v1`` Jobs are registered (the one
  integration enabled), and the Job webhooks carry an ``objectSelector`` on the queue-name
  label: Kueue ignores Jobs without one anyway (``manageJobsWithoutQueueName: false``), and so
  a stopped Kueue can never block the Jobs of runs that do not use a queue.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from synthloop.local.binaries import GO_DIR, KUEUE_VERSION, BinaryError, ensure_binaries, find_go
from synthloop.local.kube import KubeClient, KubeError
from synthloop.local.kubeconfig import write_cert_kubeconfig
from synthloop.local.options import DGX_H100_LABELS, GPU_TAINT, ClusterOptions
from synthloop.local.paths import LocalPaths
from synthloop.local.pki import Pki, ensure_leaf
from synthloop.local.supervisor import ProcessRecord, is_alive, start_process, stop_process, tail

NAME = "kueue"
MODULE = "sigs.k8s.io/kueue"
KUEUE_NAMESPACE = "kueue-system"
FLAVOR = "dgx-h100"
CLUSTER_QUEUE = "dgx"
LOCAL_QUEUE = "dgx"
GPU_RESOURCE = "nvidia.com/gpu"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
FIELD_MANAGER = "synthloop-local"
WEBHOOK_NAMES = ("kueue-mutating-webhook-configuration", "kueue-validating-webhook-configuration")
# Kueue v0.17.0 reads its metrics serving cert from this fixed path when it does not manage
# its own certificates (cmd/kueue/main.go); nothing in its configuration moves it.
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")
# The flavor selects DGX H100 nodes by the labels GPU Feature Discovery puts on them.
FLAVOR_LABELS = ("nvidia.com/gpu.product", "node.kubernetes.io/instance-type")
# A DGX H100 node: 8 GPUs, 224 vCPUs, 2 TiB; the cpu/memory quota is that per 8 GPUs of quota.
GPUS_PER_NODE, CPU_PER_NODE, MEMORY_GI_PER_NODE = 8, 224, 2048

Progress = Callable[[str], None]


class KueueError(RuntimeError):
    """Kueue could not be built, installed or started; the message says which step and why."""


# -- Kueue's own config, from the Go module ----------------------------------------------------

def module_dir() -> Path:
    """The pinned Kueue module's source tree in the Go module cache (downloaded if missing)."""
    proc = subprocess.run(
        [find_go(), "mod", "download", "-json", f"{MODULE}@{KUEUE_VERSION}"],
        cwd=GO_DIR / "kueue", capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, GOTOOLCHAIN="local"),
    )
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or not info.get("Dir") or info.get("Error"):
        raise KueueError(
            f"cannot locate {MODULE}@{KUEUE_VERSION} in the Go module cache "
            f"(go mod download exit {proc.returncode}): {info.get('Error') or proc.stderr[-500:]}"
        )
    return Path(info["Dir"])


def _yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def crd_manifests(mod: Path, *, base_url: str, ca_bundle: str) -> list[dict[str, Any]]:
    """Kueue's CRDs as its ``config/components/crd`` kustomization lists them, conversion on loopback."""
    crd_dir = mod / "config" / "components" / "crd"
    kustomization = yaml.safe_load((crd_dir / "kustomization.yaml").read_text())
    crds = {d["metadata"]["name"]: d for res in kustomization["resources"] for d in _yaml_docs(crd_dir / res)}
    for patch in kustomization.get("patches") or []:
        for doc in _yaml_docs(crd_dir / patch["path"]):
            webhook = ((doc.get("spec") or {}).get("conversion") or {}).get("webhook")
            if not webhook or doc["metadata"]["name"] not in crds:
                continue
            service = webhook["clientConfig"]["service"]
            crds[doc["metadata"]["name"]]["spec"]["conversion"] = {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"url": base_url + service.get("path", "/convert"), "caBundle": ca_bundle},
                    "conversionReviewVersions": webhook.get("conversionReviewVersions", ["v1"]),
                },
            }
    return list(crds.values())


def _wanted_webhook(hook: dict[str, Any]) -> bool:
    for rule in hook.get("rules") or []:
        groups, resources = set(rule.get("apiGroups") or []), set(rule.get("resources") or [])
        if groups == {"kueue.x-k8s.io"} or (groups == {"batch"} and resources == {"jobs"}):
            return True
    return False


def webhook_configurations(mod: Path, *, base_url: str, ca_bundle: str) -> list[dict[str, Any]]:
    """Kueue's Mutating/ValidatingWebhookConfigurations for its kinds and Jobs, on loopback."""
    out = []
    for doc in _yaml_docs(mod / "config" / "components" / "webhook" / "manifests.yaml"):
        if doc.get("kind") not in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            continue
        hooks = []
        for hook in doc["webhooks"]:
            if not _wanted_webhook(hook):
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook = {**hook, "clientConfig": {"url": base_url + path, "caBundle": ca_bundle},
                    "timeoutSeconds": 10}
            if any("batch" in (r.get("apiGroups") or []) for r in hook["rules"]):
                hook["objectSelector"] = {"matchExpressions": [{"key": QUEUE_LABEL, "operator": "Exists"}]}
            hooks.append(hook)
        out.append({
            "apiVersion": doc["apiVersion"], "kind": doc["kind"],
            "metadata": {"name": "kueue-" + doc["metadata"]["name"],
                         "labels": {"app.kubernetes.io/managed-by": FIELD_MANAGER}},
            "webhooks": hooks,
        })
    return out


def manager_config(options: ClusterOptions, *, cert_dir: Path) -> dict[str, Any]:
    """Kueue's Configuration: standalone, loopback ports, only queue-labelled Jobs."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": KUEUE_NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{options.kueue_health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{options.kueue_metrics_port}"},
        "webhook": {"port": options.kueue_webhook_port, "host": "127.0.0.1", "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
        # The on-demand visibility API needs an APIService routed to it: not served here.
        "featureGates": {"VisibilityOnDemand": False},
        # An RDMA device is shared by the pods of a node, not a quota worth queueing for.
        "resources": {"excludeResourcePrefixes": ["rdma/"]},
        "clientConnection": {"qps": 50, "burst": 100},
    }


# -- the objects `up --kueue` creates ----------------------------------------------------------

def queue_objects(options: ClusterOptions) -> list[dict[str, Any]]:
    """ResourceFlavor ``dgx-h100``, ClusterQueue ``dgx`` (GPU quota) and LocalQueue ``dgx``."""
    labels = {k: options.gpu_labels.get(k, DGX_H100_LABELS[k]) for k in FLAVOR_LABELS}
    nodes = max(1, -(-options.kueue_gpu_quota // GPUS_PER_NODE))  # DGX nodes' worth, rounded up
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": options.kueue_namespace}},
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor",
            "metadata": {"name": FLAVOR},
            "spec": {"nodeLabels": labels, "nodeTaints": [dict(GPU_TAINT)]},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue",
            "metadata": {"name": CLUSTER_QUEUE},
            "spec": {
                "namespaceSelector": {},
                "queueingStrategy": "BestEffortFIFO",
                # cpu and memory too: the DGX profile's pods request them (Guaranteed QoS), and
                # Kueue does not admit a request for a resource its ClusterQueue does not cover
                "resourceGroups": [{
                    "coveredResources": [GPU_RESOURCE, "cpu", "memory"],
                    "flavors": [{"name": FLAVOR, "resources": [
                        {"name": GPU_RESOURCE, "nominalQuota": str(options.kueue_gpu_quota)},
                        {"name": "cpu", "nominalQuota": str(CPU_PER_NODE * nodes)},
                        {"name": "memory", "nominalQuota": f"{MEMORY_GI_PER_NODE * nodes}Gi"},
                    ]}],
                }],
                "preemption": {"withinClusterQueue": "LowerPriority"},
            },
        },
        local_queue(options.kueue_namespace),
    ]


def local_queue(namespace: str, name: str = LOCAL_QUEUE, cluster_queue: str = CLUSTER_QUEUE) -> dict[str, Any]:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterQueue": cluster_queue},
    }


_PLURALS = {
    "Namespace": "namespaces", "ResourceFlavor": "resourceflavors", "ClusterQueue": "clusterqueues",
    "LocalQueue": "localqueues", "CustomResourceDefinition": "customresourcedefinitions",
    "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
    "WorkloadPriorityClass": "workloadpriorityclasses",
}


def object_path(obj: dict[str, Any]) -> str:
    group_version = obj["apiVersion"]
    base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    namespace = obj["metadata"].get("namespace")
    if namespace:
        base += f"/namespaces/{namespace}"
    return f"{base}/{_PLURALS[obj['kind']]}/{obj['metadata']['name']}"


def apply(kube: KubeClient, obj: dict[str, Any]) -> Any:
    """Server-side apply (creates or converges; CRDs this size exceed client-side apply's annotation)."""
    return kube.request(
        "PATCH", object_path(obj), body=obj, content_type="application/apply-patch+yaml",
        params={"fieldManager": FIELD_MANAGER, "force": "true"}, timeout=60,
    )


# -- process -----------------------------------------------------------------------------------

def _write_certs(pki: Pki, paths: LocalPaths) -> tuple[Path, Path]:
    """Serving certs for the webhook (and metrics) from the local CA; the client identity."""
    serving_cert, serving_key = ensure_leaf(pki, "kueue-serving", common_name="kueue-webhook", server=True)
    ensure_leaf(pki, "kueue", common_name="synthloop-kueue", organisations=("system:masters",))
    cert_dir = paths.local_dir / "kueue" / "certs"
    targets = [cert_dir]
    try:
        METRICS_CERT_DIR.mkdir(parents=True, exist_ok=True)
        targets.append(METRICS_CERT_DIR)
    except OSError as exc:
        raise KueueError(
            f"Kueue {KUEUE_VERSION} reads its metrics certificate from the fixed path "
            f"{METRICS_CERT_DIR} and this user cannot create it ({exc}); create it writable "
            f"for this user (e.g. `sudo install -d -o $USER {METRICS_CERT_DIR}`) and retry"
        ) from exc
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(serving_cert, target / "tls.crt")
        shutil.copyfile(serving_key, target / "tls.key")
        (target / "tls.key").chmod(0o600)
    return cert_dir, pki.ca_cert


def _wait_ready(record: ProcessRecord, url: str, timeout: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not is_alive(record):
            raise KueueError(f"kueue exited during startup; last lines of {record.log}:\n{tail(record.log, 25)}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise KueueError(f"kueue was not ready at {url} after {timeout:.0f}s ({last}); last lines of "
                     f"{record.log}:\n{tail(record.log, 25)}")


def _wait_established(kube: KubeClient, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            crd = kube.get_or_none(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
            conds = (crd.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                pending.discard(name)
        time.sleep(0.2)
    if pending:
        raise KueueError(f"Kueue CRDs not Established after {timeout:.0f}s: {sorted(pending)}")


def _apply_with_retry(kube: KubeClient, obj: dict[str, Any], timeout: float) -> None:
    """Apply an object whose admission goes through Kueue's webhooks, which may still be warming up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            apply(kube, obj)
            return
        except KubeError as exc:
            if exc.status not in (0, 500, 502, 503, 504) or time.monotonic() > deadline:
                raise KueueError(f"cannot apply {obj['kind']} {obj['metadata']['name']}: {exc}") from exc
            time.sleep(0.5)


def start(
    options: ClusterOptions,
    *,
    paths: LocalPaths,
    pki: Pki,
    server: str,
    kube: KubeClient,
    build: bool = True,
    progress: Progress,
) -> ProcessRecord:
    """Install Kueue's CRDs, start the manager, register its webhooks, create the queues."""
    try:
        binary = ensure_binaries([NAME], paths=paths, build=build, progress=progress)[NAME]
    except BinaryError as exc:
        raise KueueError(str(exc)) from exc
    mod = module_dir()
    cert_dir, ca_cert = _write_certs(pki, paths)
    ca_bundle = base64.b64encode(ca_cert.read_bytes()).decode()
    base_url = f"https://127.0.0.1:{options.kueue_webhook_port}"

    crds = crd_manifests(mod, base_url=base_url, ca_bundle=ca_bundle)
    for crd in crds:
        apply(kube, crd)
    _wait_established(kube, [c["metadata"]["name"] for c in crds], options.ready_timeout)
    apply(kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUEUE_NAMESPACE}})
    progress(f"installed {len(crds)} Kueue CRDs from {mod}")

    kubeconfig = write_cert_kubeconfig(
        paths.component_kubeconfig(NAME), server=server, ca_cert=pki.ca_cert,
        client_cert=pki.cert(NAME), client_key=pki.key(NAME),
    )
    config = paths.local_dir / "kueue" / "config.yaml"
    config.write_text(yaml.safe_dump(manager_config(options, cert_dir=cert_dir), sort_keys=False))
    record = start_process(
        NAME, [str(binary), f"--config={config}", "--zap-log-level=2"],
        log_path=paths.logs_dir / "kueue.log", env=dict(os.environ, KUBECONFIG=str(kubeconfig)),
    )
    progress(f"started kueue (pid {record.pid}, log {record.log})")
    try:
        _wait_ready(record, f"http://127.0.0.1:{options.kueue_health_port}/readyz", options.ready_timeout)
        for hooks in webhook_configurations(mod, base_url=base_url, ca_bundle=ca_bundle):
            apply(kube, hooks)
        for obj in queue_objects(options):
            _apply_with_retry(kube, obj, timeout=options.ready_timeout)
    except BaseException:
        remove_webhooks(kube)
        stop_process(record)
        raise
    progress(f"kueue ready: ClusterQueue {CLUSTER_QUEUE} ({options.kueue_gpu_quota} {GPU_RESOURCE} in flavor "
             f"{FLAVOR}), LocalQueue {options.kueue_namespace}/{LOCAL_QUEUE}")
    return record


def ensure_objects(options: ClusterOptions, kube: KubeClient, *, timeout: float = 60) -> None:
    """Converge the flavor and queues on a running Kueue (e.g. a new GPU quota)."""
    for obj in queue_objects(options):
        _apply_with_retry(kube, obj, timeout=timeout)


def remove_webhooks(kube: KubeClient) -> None:
    """Without Kueue behind them, its webhooks (failurePolicy Fail) would reject queued Jobs."""
    for kind, name in zip(("mutatingwebhookconfigurations", "validatingwebhookconfigurations"), WEBHOOK_NAMES,
                          strict=True):
        try:
            kube.delete(f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}")
        except KubeError:
            pass
