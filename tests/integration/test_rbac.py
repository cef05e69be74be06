"""The operator's RBAC on the real kube-apiserver: what its ServiceAccount may and may not do.

The base's ServiceAccount, roles and bindings (and the CRDs, so the resources resolve) are
applied to the local cluster; `kubectl auth can-i --as` asks the apiserver's authorizer, and a
kubeconfig holding a TokenRequest token for the ServiceAccount makes real (dry-run) requests,
so authentication and authorization are both the cluster's own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "synthloop-system"
SA = "synthloop-operator"
AS = f"system:serviceaccount:{NAMESPACE}:{SA}"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
APPLY_KINDS = ("Namespace", "CustomResourceDefinition", *RBAC_KINDS)
CR_PLURALS = ("pretrainjobs", "synthrounds", "rewardtrains", "alignjobs")


class Kubectl:
    """kubectl against the local cluster, as its admin (the fixture's kubeconfig)."""

    def __init__(self, cluster: Any) -> None:
        candidate = Path(cluster.bin_dir) / "kubectl"
        self.binary = str(candidate) if candidate.is_file() else shutil.which("kubectl")
        assert self.binary, "kubectl not found next to the cluster binaries or on PATH"
        self.env = {**os.environ, **cluster.env(), "KUBECONFIG": str(cluster.kubeconfig)}

    def run(self, *args: str, stdin: str | None = None, check: bool = True,
            kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if kubeconfig is not None:
            env["KUBECONFIG"] = str(kubeconfig)
        proc = subprocess.run([self.binary, *args], input=stdin, capture_output=True, text=True,
                              env=env, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def can_i(self, verb: str, resource: str, *, namespace: str | None = None,
              subresource: str | None = None) -> bool:
        args = ["auth", "can-i", verb, resource, "--as", AS]
        args += ["-n", namespace] if namespace else ["--all-namespaces"]
        if subresource:
            args += ["--subresource", subresource]
        proc = self.run(*args, check=False)
        answer = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        assert answer in ("yes", "no"), f"can-i {verb} {resource}: {proc.stdout!r} {proc.stderr!r}"
        assert proc.returncode == (0 if answer == "yes" else 1)
        return answer == "yes"


@pytest.fixture(scope="module")
def kubectl(local_cluster: Any) -> Kubectl:
    return Kubectl(local_cluster)


@pytest.fixture(scope="module")
def operator_rbac(kubectl: Kubectl) -> Iterator[list[dict[str, Any]]]:
    """Apply the base's RBAC (+ namespace, CRDs); remove the RBAC objects this test created."""
    rendered = kubectl.run("kustomize", str(ROOT / "manifests" / "base")).stdout
    objs = [o for o in yaml.safe_load_all(rendered) if o and o["kind"] in APPLY_KINDS]
    assert {o["kind"] for o in objs} == set(APPLY_KINDS)
    created = []
    for obj in objs:
        if obj["kind"] not in RBAC_KINDS:
            continue
        ns = ["-n", obj["metadata"]["namespace"]] if "namespace" in obj["metadata"] else []
        exists = kubectl.run("get", obj["kind"].lower(), obj["metadata"]["name"], *ns,
                             "--ignore-not-found", "-o", "name").stdout.strip()
        if not exists:
            created.append(obj)
    kubectl.run("apply", "--server-side", "--force-conflicts", "--field-manager=synthloop-test-rbac",
                "-f", "-", stdin=yaml.safe_dump_all(objs))
    crds = [f"crd/{o['metadata']['name']}" for o in objs if o["kind"] == "CustomResourceDefinition"]
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", *crds)
    yield objs
    for obj in reversed(created):
        ns = ["-n", obj["metadata"]["namespace"]] if "namespace" in obj["metadata"] else []
        kubectl.run("delete", obj["kind"].lower(), obj["metadata"]["name"], *ns,
                    "--ignore-not-found", "--wait=false", check=False)


def test_operator_may_do_its_work(kubectl: Kubectl, operator_rbac: list[Any], namespace: str) -> None:
    allowed: list[tuple[str, str, str | None, str | None]] = []
    for plural in CR_PLURALS:
        resource = f"{plural}.synthloop.io"
        allowed += [(verb, resource, namespace, None) for verb in ("get", "list", "watch", "patch", "update")]
        allowed += [("list", resource, None, None), ("watch", resource, None, None)]
        allowed += [(verb, resource, namespace, "status") for verb in ("get", "patch", "update")]
    allowed += [(verb, "jobs.batch", namespace, None)
                for verb in ("get", "list", "watch", "create", "patch", "delete")]
    allowed += [(verb, "services", namespace, None)
                for verb in ("get", "list", "watch", "create", "patch", "delete")]
    allowed += [("list", "pods", namespace, None), ("watch", "pods", None, None),
                ("get", "pods", namespace, "log"),
                ("create", "events", namespace, None), ("patch", "events", namespace, None),
                ("create", "events.events.k8s.io", namespace, None),
                ("get", "secrets/synthloop-minio", namespace, None),
                ("get", "configmaps", NAMESPACE, None), ("watch", "configmaps", NAMESPACE, None),
                ("list", "customresourcedefinitions.apiextensions.k8s.io", None, None),
                ("watch", "namespaces", None, None)]
    denied_but_expected = [a for a in allowed if not kubectl.can_i(a[0], a[1], namespace=a[2], subresource=a[3])]
    assert denied_but_expected == []


def test_operator_may_not_exceed_its_work(kubectl: Kubectl, operator_rbac: list[Any],
                                          namespace: str) -> None:
    forbidden: list[tuple[str, str, str | None, str | None]] = [
        ("delete", "namespaces", None, None),
        ("create", "namespaces", None, None),
        ("create", "pods", namespace, None),
        ("delete", "pods", namespace, None),
        ("create", "pods", namespace, "exec"),
        ("get", "secrets", "kube-system", None),
        ("get", "secrets/synthloop-minio-other", namespace, None),
        ("list", "secrets", namespace, None),
        ("list", "secrets", None, None),
        ("watch", "secrets", NAMESPACE, None),
        ("create", "secrets", namespace, None),
        ("patch", "secrets/synthloop-minio", namespace, None),
        ("get", "configmaps", namespace, None),
        ("create", "configmaps", NAMESPACE, None),
        ("create", "alignjobs.synthloop.io", namespace, None),
        ("delete", "alignjobs.synthloop.io", namespace, None),
        ("delete", "synthrounds.synthloop.io", None, None),
        ("update", "jobs.batch", namespace, "status"),
        ("create", "deployments.apps", namespace, None),
        ("patch", "nodes", None, None),
        ("create", "clusterroles.rbac.authorization.k8s.io", None, None),
        ("create", "rolebindings.rbac.authorization.k8s.io", namespace, None),
        ("impersonate", "serviceaccounts", namespace, None),
        ("create", "serviceaccounts", namespace, "token"),
        ("update", "leases.coordination.k8s.io", NAMESPACE, None),
        ("create", "workloads.kueue.x-k8s.io", namespace, None),
    ]
    granted_but_forbidden = [f for f in forbidden if kubectl.can_i(f[0], f[1], namespace=f[2], subresource=f[3])]
    assert granted_but_forbidden == []


def _token_kubeconfig(kubectl: Kubectl, admin: Path, out: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount only (no client certificate)."""
    token = kubectl.run("create", "token", SA, "-n", NAMESPACE, "--duration=10m").stdout.strip()
    assert token.count(".") == 2, "TokenRequest did not return a JWT"
    config = yaml.safe_load(admin.read_text())
    context = next(c for c in config["contexts"] if c["name"] == config["current-context"])["context"]
    cluster = next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
    if "certificate-authority" in cluster:
        cluster["certificate-authority"] = str((admin.parent / cluster["certificate-authority"]).resolve())
    out.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}],
    }))
    return out


def test_service_account_token_works_within_its_rights(
    kubectl: Kubectl, operator_rbac: list[Any], namespace: str, local_cluster: Any, tmp_path: Path
) -> None:
    sa_config = _token_kubeconfig(kubectl, Path(local_cluster.kubeconfig), tmp_path / "sa.kubeconfig")
    whoami = kubectl.run("auth", "whoami", "-o", "json", kubeconfig=sa_config)
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == AS
    # What the operator does: watch its kinds everywhere, create a Job and a Service.
    kubectl.run("get", "alignjobs.synthloop.io", "--all-namespaces", kubeconfig=sa_config)
    job = kubectl.run("create", "job", "rbac-probe", "--image=ghcr.io/synthloop/trainer:0.1.0",
                      "-n", namespace, "--dry-run=server", "-o", "name", kubeconfig=sa_config)
    assert job.stdout.strip() == "job.batch/rbac-probe"
    kubectl.run("create", "service", "clusterip", "rbac-probe", "--clusterip=None", "-n", namespace,
                "--dry-run=server", kubeconfig=sa_config)
    # What it must not: run a pod itself, read Secrets in kube-system, delete a namespace.
    for args in (
        ("run", "rbac-probe", "--image=busybox:1.36", "-n", namespace, "--dry-run=server"),
        ("get", "secrets", "-n", "kube-system"),
        ("delete", "namespace", namespace, "--dry-run=server"),
    ):
        proc = kubectl.run(*args, check=False, kubeconfig=sa_config)
        assert proc.returncode != 0 and "forbidden" in proc.stderr.lower(), (args, proc.stderr)
