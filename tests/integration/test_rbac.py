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
import time
import uuid
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


def test_operator_may_read_kueue_workloads_and_nothing_else_of_kueue(
    local_cluster: Any, operator_rbac: list[Any], namespace: str
) -> None:
    """SubjectAccessReviews, not `kubectl auth can-i`: kubectl answers "no" for a resource whose
    CRD is not installed, and these must hold whether or not Kueue is."""
    def allowed(verb: str, resource: str, subresource: str = "", ns: str | None = namespace) -> bool:
        review = local_cluster.kube.create("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": AS, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
                     "resourceAttributes": {"group": "kueue.x-k8s.io", "resource": resource, "verb": verb,
                                            "subresource": subresource, "namespace": ns or ""}}})
        return bool(review["status"].get("allowed"))

    assert [v for v in ("get", "list", "watch") if not allowed(v, "workloads")] == []
    assert allowed("list", "workloads", ns=None) and allowed("watch", "workloads", ns=None)
    forbidden = [("create", "workloads", ""), ("patch", "workloads", ""), ("delete", "workloads", ""),
                 ("update", "workloads", "status"), ("patch", "workloads", "status"),
                 ("get", "localqueues", ""), ("list", "clusterqueues", ""), ("create", "clusterqueues", ""),
                 ("get", "resourceflavors", ""), ("create", "workloadpriorityclasses", "")]
    assert [f for f in forbidden if allowed(*f)] == []


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


# --- The operator as its own Deployment (manifests/overlays/local), on the process node ---

OPERATOR_READY_S = 180


def _ns_args(obj: dict[str, Any]) -> list[str]:
    return ["-n", obj["metadata"]["namespace"]] if "namespace" in obj["metadata"] else []


def _wait(predicate: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def deployed_operator(kubectl: Kubectl, local_cluster: Any) -> Iterator[dict[str, str]]:
    """The local overlay applied as is, except that it watches only this test's namespaces
    (so it never competes with an operator another test runs in-process)."""
    suffix = uuid.uuid4().hex[:6]
    namespaces = {"with_secret": f"t-rbac-op-{suffix}", "without_secret": f"t-rbac-op-nosecret-{suffix}"}
    for ns in namespaces.values():
        kubectl.run("create", "namespace", ns)
    # Workers' credentials live in the CR namespace; copy the local cluster's Secret there.
    secret = json.loads(kubectl.run("get", "secret", "synthloop-minio", "-n", NAMESPACE, "-o", "json").stdout)
    copy = {"apiVersion": "v1", "kind": "Secret", "type": secret.get("type", "Opaque"),
            "metadata": {"name": "synthloop-minio", "namespace": namespaces["with_secret"]},
            "data": secret["data"]}
    kubectl.run("apply", "-f", "-", stdin=json.dumps(copy))

    rendered = kubectl.run("kustomize", str(ROOT / "manifests" / "overlays" / "local")).stdout
    objs = [o for o in yaml.safe_load_all(rendered) if o]
    config = next(o for o in objs if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"].startswith("synthloop-operator-config-"))
    config["data"]["SYNTHLOOP_NAMESPACES"] = ",".join(namespaces.values())
    created = []
    for obj in objs:
        if obj["kind"] in ("Namespace", "CustomResourceDefinition"):
            continue
        exists = kubectl.run("get", obj["kind"].lower(), obj["metadata"]["name"], *_ns_args(obj),
                             "--ignore-not-found", "-o", "name").stdout.strip()
        if not exists:
            created.append(obj)
    kubectl.run("apply", "--server-side", "--force-conflicts", "--field-manager=synthloop-test-rbac",
                "-f", "-", stdin=yaml.safe_dump_all(objs))
    crds = [f"crd/{o['metadata']['name']}" for o in objs if o["kind"] == "CustomResourceDefinition"]
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", *crds)
    try:
        kubectl.run("rollout", "status", "deployment/synthloop-operator", "-n", NAMESPACE,
                    f"--timeout={OPERATOR_READY_S}s")
        pod = json.loads(kubectl.run("get", "pods", "-n", NAMESPACE, "-l",
                                     "app.kubernetes.io/name=synthloop-operator", "-o", "json").stdout)
        running = [p for p in pod["items"] if p["status"].get("phase") == "Running"]
        assert len(running) == 1, [p["metadata"]["name"] for p in pod["items"]]
        # Running is not enough: an operator that exits on start-up (bad config) restarts.
        time.sleep(5)
        name = running[0]["metadata"]["name"]
        restarts = json.loads(kubectl.run("get", "pod", name, "-n", NAMESPACE, "-o", "json").stdout)
        counts = [c.get("restartCount", 0) for c in restarts["status"].get("containerStatuses", [])]
        assert counts == [0], f"operator pod restarted {counts}:\n{_operator_logs(kubectl, name)}"
        yield {**namespaces, "pod": running[0]["metadata"]["name"], "node": running[0]["spec"]["nodeName"],
               "serviceAccount": running[0]["spec"]["serviceAccountName"]}
    finally:
        # CRs first, while the operator still runs to remove its finalizers; then the operator.
        for ns in namespaces.values():
            done = kubectl.run("delete", "synthloop", "--all", "-n", ns, "--wait=true", "--timeout=60s",
                               check=False)
            if done.returncode != 0:  # never leave a namespace stuck on a finalizer
                for ref in kubectl.run("get", "synthloop", "-n", ns, "-o", "name", check=False).stdout.split():
                    kubectl.run("patch", ref, "-n", ns, "--type=merge",
                                "-p", '{"metadata":{"finalizers":null}}', check=False)
        kubectl.run("delete", "deployment", "synthloop-operator", "-n", NAMESPACE,
                    "--ignore-not-found", "--wait=true", "--timeout=60s", check=False)
        kubectl.run("wait", "--for=delete", "pod", "-l", "app.kubernetes.io/name=synthloop-operator",
                    "-n", NAMESPACE, "--timeout=60s", check=False)
        for obj in reversed(created):
            kubectl.run("delete", obj["kind"].lower(), obj["metadata"]["name"], *_ns_args(obj),
                        "--ignore-not-found", "--wait=false", check=False)
        for ns in namespaces.values():
            kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def _operator_logs(kubectl: Kubectl, pod: str) -> str:
    logs = kubectl.run("logs", "-n", NAMESPACE, pod, "--tail=40", check=False)
    previous = kubectl.run("logs", "-n", NAMESPACE, pod, "--previous", "--tail=40", check=False)
    return f"{previous.stdout}{logs.stdout}{logs.stderr}"


def _synthround(name: str, namespace: str, generator: dict[str, Any]) -> str:
    return json.dumps({
        "apiVersion": "synthloop.io/v1alpha1", "kind": "SynthRound",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"generator": {"model": generator, "backend": "transformers"},
                 "prompts": {"math": 4}, "shards": 1,
                 "resources": {"profile": "dgx-h100", "gpusPerNode": 0}},
    })


def _argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """What Argo CD would show for this object: its kind's health check, in Lua 5.1."""
    lua51 = pytest.importorskip("lupa.lua51")
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    source = (ROOT / "manifests" / "argocd" / "health" / "synthloop.lua").read_text()
    hs = dict(lua.execute(source))
    return str(hs["status"]), str(hs["message"])


def _get(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl.run("get", "synthround", name, "-n", namespace, "-o", "json").stdout))


def _condition(kubectl: Kubectl, namespace: str, name: str, ctype: str) -> dict[str, Any] | None:
    obj = json.loads(kubectl.run("get", "synthround", name, "-n", namespace, "-o", "json").stdout)
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return None


@pytest.mark.local_only  # the local overlay targets the process node of `synthloop local`
def test_operator_deployment_runs_as_its_service_account_on_the_process_node(
    kubectl: Kubectl, deployed_operator: dict[str, str]
) -> None:
    assert deployed_operator["node"] == "local-cpu-0"
    assert deployed_operator["serviceAccount"] == SA


@pytest.mark.local_only  # the local overlay targets the process node of `synthloop local`
def test_deployed_operator_reconciles_within_its_rbac(
    kubectl: Kubectl, deployed_operator: dict[str, str]
) -> None:
    """Status writes, the Secret check by name and events all succeed as the ServiceAccount."""
    ns_ok, ns_missing = deployed_operator["with_secret"], deployed_operator["without_secret"]
    waiting = "waits-for-promotion"
    kubectl.run("apply", "-f", "-", stdin=_synthround(waiting, ns_ok, {"promoted": f"never-{uuid.uuid4().hex[:6]}"}))
    try:
        inputs = _wait(lambda: _condition(kubectl, ns_ok, waiting, "InputsReady"),
                       timeout=120, what=f"InputsReady on SynthRound {ns_ok}/{waiting}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\noperator log:\n{_operator_logs(kubectl, deployed_operator['pod'])}") from None
    assert inputs["status"] == "False" and "never-" in inputs["message"], inputs

    # Without the credentials Secret the run fails by name; a 403 would read differently.
    orphan = "no-credentials"
    kubectl.run("apply", "-f", "-", stdin=_synthround(orphan, ns_missing, {"uri": "s3://synthloop/models/x/"}))
    failed = _wait(lambda: (c := _condition(kubectl, ns_missing, orphan, "Failed")) and c["status"] == "True" and c,
                   timeout=120, what=f"Failed on SynthRound {ns_missing}/{orphan}")
    assert failed["reason"] == "SecretMissing", failed
    assert "synthloop-minio" in failed["message"]

    # The status the real operator wrote reads right in Argo CD.
    assert _argocd_health(_get(kubectl, ns_ok, waiting)) == ("Progressing", inputs["message"])
    assert _argocd_health(_get(kubectl, ns_missing, orphan)) == ("Degraded", failed["message"])

    logs = kubectl.run("logs", "-n", NAMESPACE, deployed_operator["pod"], check=False)
    assert logs.returncode == 0, logs.stderr
    denied = [line for line in logs.stdout.splitlines() if "forbidden" in line.lower() or " 403" in line]
    assert denied == [], "the operator hit RBAC denials:\n" + "\n".join(denied[:20])


def test_operator_pod_passes_restricted_pod_security(kubectl: Kubectl, namespace: str) -> None:
    """The apiserver's PodSecurity admission, enforcing `restricted`, admits the operator pod
    of every overlay (the base labels synthloop-system that way)."""
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted",
                "pod-security.kubernetes.io/enforce-version=latest")
    for overlay in ("overlays/local", "overlays/production"):
        rendered = kubectl.run("kustomize", str(ROOT / "manifests" / overlay)).stdout
        deploy = next(o for o in yaml.safe_load_all(rendered) if o and o["kind"] == "Deployment")
        template = deploy["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "operator-pss", "namespace": namespace,
                            "labels": template["metadata"]["labels"]},
               # Placement and identity are not what Pod Security judges; this namespace has
               # neither the operator's ServiceAccount nor (maybe) its PriorityClass.
               "spec": {**template["spec"], "nodeSelector": {}, "priorityClassName": None,
                        "serviceAccountName": "default"}}
        proc = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False)
        assert proc.returncode == 0, f"{overlay}: {proc.stderr}"
        assert "violate" not in proc.stderr.lower(), f"{overlay}: {proc.stderr}"
        # Taking away one restriction is refused, so the check above has teeth.
        loose = json.loads(json.dumps(pod))
        loose["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
        proc = kubectl.run("create", "--dry-run=server", "-f", "-", stdin=json.dumps(loose), check=False)
        assert proc.returncode != 0 and "allowPrivilegeEscalation" in proc.stderr, proc.stderr


# The Prometheus Operator's CRD is not among the upstream parts this machine can build, so the
# ServiceMonitor's kind is registered with an open schema: the apiserver then checks that the
# overlay's ServiceMonitor is well-formed and namespaced, not its fields.
SERVICEMONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


@pytest.fixture
def servicemonitor_kind(kubectl: Kubectl) -> Iterator[None]:
    exists = kubectl.run("get", "crd", "servicemonitors.monitoring.coreos.com", check=False).returncode == 0
    if not exists:
        kubectl.run("apply", "-f", "-", stdin=json.dumps(SERVICEMONITOR_CRD))
        kubectl.run("wait", "--for=condition=Established", "--timeout=60s",
                    "crd/servicemonitors.monitoring.coreos.com")
    yield
    if not exists:
        kubectl.run("delete", "crd", "servicemonitors.monitoring.coreos.com", "--wait=false", check=False)


def test_production_overlay_is_accepted_by_the_apiserver(kubectl: Kubectl, servicemonitor_kind: None) -> None:
    """Every object of the production overlay validates server-side (schemas, CRDs, PDB,
    PriorityClass, ServiceMonitor), without persisting anything."""
    proc = kubectl.run("apply", "--dry-run=server", "--server-side", "--field-manager=synthloop-test-rbac",
                       "--force-conflicts", "-k", str(ROOT / "manifests" / "overlays" / "production"),
                       check=False)
    assert proc.returncode == 0, proc.stderr
    applied = [line for line in proc.stdout.splitlines() if "(server dry run)" in line]
    assert any(line.startswith("deployment.apps/synthloop-operator") for line in applied), proc.stdout
    assert any(line.startswith("priorityclass.scheduling.k8s.io/synthloop-operator") for line in applied)
    assert any(line.startswith("servicemonitor.monitoring.coreos.com/synthloop-operator") for line in applied)
