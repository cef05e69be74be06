"""Kueue as a local component: its config rewritten for loopback, certs from the local CA, state.

The Kueue module's layout is reproduced in a temporary directory (the real one is read by
tests/integration/test_kueue.py through `synthloop local kueue up`).
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from synthloop.local import kueue
from synthloop.local.binaries import (
    CLUSTER_COMPONENTS,
    COMPONENTS,
    OPTIONAL_COMPONENTS,
    ensure_binaries,
)
from synthloop.local.cluster import ClusterState, running_state
from synthloop.local.options import ClusterOptions
from synthloop.local.paths import LocalPaths
from synthloop.local.pki import ensure_leaf, ensure_pki
from synthloop.local.supervisor import ProcessRecord, process_start_ticks

pytestmark = pytest.mark.unit
URL = "https://127.0.0.1:29443"


def _module(tmp: Path) -> Path:
    crd = tmp / "config" / "components" / "crd"
    (crd / "bases").mkdir(parents=True)
    (crd / "patches").mkdir()
    for name in ("workloads", "resourceflavors"):
        (crd / "bases" / f"kueue.x-k8s.io_{name}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{name}.kueue.x-k8s.io"}, "spec": {"group": "kueue.x-k8s.io"}}))
    (crd / "patches" / "webhook_in_workloads.yaml").write_text(yaml.safe_dump({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "workloads.kueue.x-k8s.io"},
        "spec": {"conversion": {"strategy": "Webhook", "webhook": {
            "clientConfig": {"service": {"namespace": "system", "name": "webhook-service", "path": "/convert"}},
            "conversionReviewVersions": ["v1"]}}}}))
    (crd / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": ["bases/kueue.x-k8s.io_workloads.yaml", "bases/kueue.x-k8s.io_resourceflavors.yaml"],
        "patches": [{"path": "patches/webhook_in_workloads.yaml"}]}))
    hooks = tmp / "config" / "components" / "webhook"
    hooks.mkdir(parents=True)

    def hook(name: str, group: str, resource: str) -> dict[str, object]:
        return {"name": name, "admissionReviewVersions": ["v1"], "failurePolicy": "Fail", "sideEffects": "None",
                "clientConfig": {"service": {"name": "webhook-service", "namespace": "system",
                                             "path": f"/mutate-{resource}"}},
                "rules": [{"apiGroups": [group], "apiVersions": ["v1"], "operations": ["CREATE"],
                           "resources": [resource]}]}

    (hooks / "manifests.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": {"name": "mutating-webhook-configuration"},
         "webhooks": [hook("mjob.kb.io", "batch", "jobs"), hook("mpod.kb.io", "", "pods"),
                      hook("mworkload.kb.io", "kueue.x-k8s.io", "workloads"),
                      hook("mrayjob.kb.io", "ray.io", "rayjobs")]},
    ]))
    return tmp


def test_crds_come_from_the_kustomization_with_conversion_on_loopback(tmp_path: Path) -> None:
    crds = {c["metadata"]["name"]: c for c in kueue.crd_manifests(_module(tmp_path), base_url=URL, ca_bundle="Q0E=")}
    assert set(crds) == {"workloads.kueue.x-k8s.io", "resourceflavors.kueue.x-k8s.io"}
    conversion = crds["workloads.kueue.x-k8s.io"]["spec"]["conversion"]
    assert conversion == {"strategy": "Webhook", "webhook": {
        "clientConfig": {"url": f"{URL}/convert", "caBundle": "Q0E="}, "conversionReviewVersions": ["v1"]}}
    assert "conversion" not in crds["resourceflavors.kueue.x-k8s.io"]["spec"]


def test_only_kueue_and_job_webhooks_are_registered_and_jobs_only_with_a_queue(tmp_path: Path) -> None:
    (config,) = kueue.webhook_configurations(_module(tmp_path), base_url=URL, ca_bundle="Q0E=")
    assert config["metadata"]["name"] == "kueue-mutating-webhook-configuration" == kueue.WEBHOOK_NAMES[0]
    hooks = {h["name"]: h for h in config["webhooks"]}
    assert set(hooks) == {"mjob.kb.io", "mworkload.kb.io"}  # no pods (every pod would pass Kueue), no ray
    assert hooks["mjob.kb.io"]["clientConfig"] == {"url": f"{URL}/mutate-jobs", "caBundle": "Q0E="}
    assert hooks["mjob.kb.io"]["objectSelector"] == {
        "matchExpressions": [{"key": "kueue.x-k8s.io/queue-name", "operator": "Exists"}]}
    assert "objectSelector" not in hooks["mworkload.kb.io"]


def test_manager_config_manages_only_queued_jobs_on_loopback(tmp_path: Path) -> None:
    cfg = kueue.manager_config(ClusterOptions(), cert_dir=tmp_path)
    assert cfg["manageJobsWithoutQueueName"] is False
    assert cfg["integrations"] == {"frameworks": ["batch/job"]}
    assert cfg["webhook"] == {"port": 29443, "host": "127.0.0.1", "certDir": str(tmp_path)}
    assert cfg["health"]["healthProbeBindAddress"].startswith("127.0.0.1:")
    assert cfg["metrics"]["bindAddress"].startswith("127.0.0.1:")
    assert cfg["internalCertManagement"] == {"enable": False}
    assert cfg["leaderElection"] == {"leaderElect": False}


def test_queue_objects_match_the_dgx_labels_and_the_quota_flag() -> None:
    objs = {o["kind"]: o for o in kueue.queue_objects(ClusterOptions(kueue_gpu_quota=16, kueue_namespace="demo"))}
    flavor = objs["ResourceFlavor"]["spec"]
    assert flavor["nodeLabels"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                                    "node.kubernetes.io/instance-type": "dgx-h100"}
    assert flavor["nodeTaints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    (group,) = objs["ClusterQueue"]["spec"]["resourceGroups"]
    assert group["coveredResources"] == ["nvidia.com/gpu", "cpu", "memory"]
    assert group["flavors"] == [{"name": "dgx-h100", "resources": [
        {"name": "nvidia.com/gpu", "nominalQuota": "16"}, {"name": "cpu", "nominalQuota": "448"},
        {"name": "memory", "nominalQuota": "4096Gi"}]}]
    assert objs["LocalQueue"]["metadata"] == {"name": "dgx", "namespace": "demo"}
    assert objs["LocalQueue"]["spec"] == {"clusterQueue": "dgx"}
    assert kueue.object_path(objs["LocalQueue"]) == "/apis/kueue.x-k8s.io/v1beta2/namespaces/demo/localqueues/dgx"
    assert kueue.object_path(objs["Namespace"]) == "/api/v1/namespaces/demo"
    with pytest.raises(ValueError, match="--kueue-gpu-quota must be >= 0"):
        ClusterOptions(kueue_gpu_quota=-1).validate()


def test_leaf_certs_are_signed_by_the_existing_ca_which_stays_as_is(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    ca_before = pki.ca_cert.read_bytes()
    cert_path, _ = ensure_leaf(pki, "kueue-serving", common_name="kueue-webhook", server=True)
    ensure_leaf(pki, "kueue", common_name="synthloop-kueue", organisations=("system:masters",))
    assert pki.ca_cert.read_bytes() == ca_before and pki.complete()
    ca = x509.load_pem_x509_certificate(ca_before)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    client = x509.load_pem_x509_certificate(pki.cert("kueue").read_bytes())
    assert "O=system:masters" in client.subject.rfc4514_string()
    # made once: a second call keeps the files
    assert ensure_leaf(pki, "kueue-serving", common_name="x", server=True)[0].read_bytes() == cert_path.read_bytes()
    assert base64.b64encode(ca_before)  # the caBundle the webhooks carry


def _me(name: str) -> ProcessRecord:
    import os

    pid = os.getpid()
    ticks = process_start_ticks(pid)
    assert ticks is not None
    return ProcessRecord(name, pid, ticks, "/dev/null", ["x"])


def test_a_dead_kueue_does_not_make_the_cluster_not_running(tmp_path: Path) -> None:
    paths = LocalPaths(tmp_path)
    paths.local_dir.mkdir(parents=True)
    dead = ProcessRecord("kueue", 999_999_999, 1, "/dev/null", ["kueue"])
    state = ClusterState(options=ClusterOptions(kueue=True), processes=[_me("etcd")], addons=[dead], ready=True)
    state.save(paths.state_file)
    loaded = running_state(paths)
    assert loaded is not None and loaded.addon("kueue") == dead and loaded.options.kueue is True


def test_kueue_is_built_by_default_but_not_required_by_up(tmp_path: Path) -> None:
    assert "kueue" in COMPONENTS and "kueue" in OPTIONAL_COMPONENTS and "kueue" not in CLUSTER_COMPONENTS
    assert set(COMPONENTS) == set(CLUSTER_COMPONENTS) | set(OPTIONAL_COMPONENTS)
    from synthloop.local.binaries import BinaryError

    with pytest.raises(BinaryError, match="kubectl is not built yet"):
        ensure_binaries(paths=LocalPaths(tmp_path), build=False)  # names=None: what `up` needs
    with pytest.raises(BinaryError, match="kueue is not built yet"):
        ensure_binaries(["kueue"], paths=LocalPaths(tmp_path), build=False)


def test_the_cli_has_kueue_up_and_down_and_up_kueue() -> None:
    import argparse

    from synthloop.local.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["local", "up", "--kueue", "--kueue-gpu-quota", "16"])
    assert args.kueue is True and args.kueue_gpu_quota == 16 and args.kueue_webhook_port == 29443
    args = parser.parse_args(["local", "kueue", "up", "--gpu-quota", "24", "--namespace", "ns"])
    assert args.kueue_gpu_quota == 24 and args.kueue_namespace == "ns"
    assert parser.parse_args(["local", "kueue", "down"]).func.__name__ == "cmd_kueue_down"
    kept = parser.parse_args(["local", "kueue", "up"])  # no flag: the running cluster's quota stays
    assert kept.kueue_gpu_quota is None and kept.kueue_namespace is None
