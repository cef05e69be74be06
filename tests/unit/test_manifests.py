"""The kustomize base and overlays, rendered by the real `kubectl kustomize`, and the Argo CD objects.

These are the checks a reviewer would make by eye: RBAC no wider than the operator needs, a
Deployment that passes the restricted Pod Security profile, probes on kopf's health endpoint,
config that points at objects that exist in the same render, and overlays that change only
what they claim to change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
NAMESPACE = "synthloop-system"
SA = "synthloop-operator"
CR_PLURALS = ("pretrainjobs", "synthrounds", "rewardtrains", "alignjobs")
CR_KINDS = ("PretrainJob", "SynthRound", "RewardTrain", "AlignJob")
CLUSTER_SCOPED = {
    "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
}

Obj = dict[str, Any]


def find_kubectl() -> str | None:
    """The project's pinned kubectl (built by `synthloop local build`) first, then PATH."""
    home = Path(os.environ.get("SYNTHLOOP_HOME", Path.home() / ".synthloop"))
    for candidate in (home / "bin" / "kubectl",):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("kubectl")


@cache
def render(path: str) -> tuple[Obj, ...]:
    kubectl = find_kubectl()
    if kubectl is None:
        message = "kubectl not found (run `synthloop local build` or put kubectl on PATH)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    proc = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS / path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize manifests/{path} failed:\n{proc.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def one(objs: tuple[Obj, ...], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def container(objs: tuple[Obj, ...]) -> Obj:
    spec = one(objs, "Deployment", "synthloop-operator")["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["operator"]
    return dict(spec["containers"][0])


def operator_config(objs: tuple[Obj, ...]) -> dict[str, str]:
    """The ConfigMap the Deployment's envFrom names (hash-suffixed by kustomize)."""
    name = container(objs)["envFrom"][0]["configMapRef"]["name"]
    assert name.startswith("synthloop-operator-config-"), name
    return dict(one(objs, "ConfigMap", name)["data"])


def env_of(c: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in c.get("env", [])}


def rules_table(rules: list[Obj]) -> dict[tuple[str, str, tuple[str, ...]], set[str]]:
    """(apiGroup, resource, resourceNames) -> verbs; one entry per combination a rule grants."""
    table: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for rule in rules:
        names = tuple(rule.get("resourceNames", ()))
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource, names), set()).update(rule["verbs"])
    return table


def pod_labels(deploy: Obj) -> dict[str, str]:
    return dict(deploy["spec"]["template"]["metadata"]["labels"])


OVERLAYS = ("base", "overlays/local", "overlays/production")


@pytest.mark.parametrize("path", OVERLAYS)
def test_every_namespaced_object_lands_in_synthloop_system(path: str) -> None:
    objs = render(path)
    for obj in objs:
        ns = obj["metadata"].get("namespace")
        if obj["kind"] in CLUSTER_SCOPED:
            assert ns is None, f"{obj['kind']} {obj['metadata']['name']} is cluster-scoped"
        else:
            assert ns == NAMESPACE, f"{obj['kind']} {obj['metadata']['name']} in {ns}"
    crds = {o["spec"]["names"]["kind"] for o in objs if o["kind"] == "CustomResourceDefinition"}
    assert crds == set(CR_KINDS), "the base must ship the four generated CRDs from crds/"
    namespace = one(objs, "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_cluster_role_grants_exactly_what_the_operator_does() -> None:
    objs = render("base")
    role = one(objs, "ClusterRole", "synthloop-operator")
    expected: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for plural in CR_PLURALS:
        expected[("synthloop.io", plural, ())] = {"get", "list", "watch", "patch", "update"}
        expected[("synthloop.io", f"{plural}/status", ())] = {"get", "patch", "update"}
        expected[("synthloop.io", f"{plural}/finalizers", ())] = {"update"}
    expected[("batch", "jobs", ())] = {"get", "list", "watch", "create", "patch", "delete"}
    expected[("", "services", ())] = {"get", "list", "watch", "create", "patch", "delete"}
    expected[("", "pods", ())] = {"get", "list", "watch"}
    expected[("", "pods/log", ())] = {"get"}
    expected[("", "events", ())] = {"create", "patch"}
    expected[("events.k8s.io", "events", ())] = {"create", "patch"}
    expected[("apiextensions.k8s.io", "customresourcedefinitions", ())] = {"get", "list", "watch"}
    expected[("", "namespaces", ())] = {"list", "watch"}
    # Kueue's pending reason and admission go into the CR's Running condition
    expected[("kueue.x-k8s.io", "workloads", ())] = {"get", "list", "watch"}
    assert rules_table(role["rules"]) == expected


@pytest.mark.parametrize("path", OVERLAYS)
def test_no_wildcards_and_secrets_only_by_name(path: str) -> None:
    objs = render(path)
    secret_name = operator_config(objs)["SYNTHLOOP_S3_SECRET"]
    roles = [o for o in objs if o["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        for (group, resource, names), verbs in rules_table(role["rules"]).items():
            where = f"{role['kind']} {role['metadata']['name']}: {group or 'core'}/{resource}"
            assert "*" not in (group, resource) and "*" not in verbs, f"{where} uses a wildcard"
            assert not verbs & {"escalate", "bind", "impersonate"}, where
            if resource == "secrets":
                assert names == (secret_name,), f"{where} must name only {secret_name}"
                assert verbs == {"get"}, f"{where} may only get"
            if resource in ("pods", "pods/exec", "pods/attach", "nodes"):
                assert not verbs & {"create", "update", "patch", "delete"}, where
    kueue = rules_table([r for role in roles for r in role["rules"] if "kueue.x-k8s.io" in r["apiGroups"]])
    assert kueue == {("kueue.x-k8s.io", "workloads", ()): {"get", "list", "watch"}}, \
        "the operator reads Workloads and nothing more of Kueue"


def test_bindings_tie_each_role_to_the_operator_service_account() -> None:
    objs = render("base")
    one(objs, "ServiceAccount", SA)
    bindings = [o for o in objs if o["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    bound = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings}
    roles = {(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] in ("ClusterRole", "Role")}
    assert bound == roles, "every role is bound, and every binding names a role in the render"
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": NAMESPACE}]
    # The namespaced Role stays namespaced: the profiles ConfigMap is read only here.
    role = one(objs, "Role", "synthloop-operator")
    assert ("", "configmaps", ()) in rules_table(role["rules"])
    cluster = rules_table(one(objs, "ClusterRole", "synthloop-operator")["rules"])
    assert not any(resource == "configmaps" for _, resource, _ in cluster)


@pytest.mark.parametrize("path", OVERLAYS)
def test_deployment_is_restricted_and_probed(path: str) -> None:
    objs = render(path)
    deploy = one(objs, "Deployment", "synthloop-operator")
    spec = deploy["spec"]
    assert spec["replicas"] == 1, "kopf --standalone: exactly one replica"
    assert spec["strategy"] == {"type": "Recreate"}, "never two operators during a rollout"
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == SA
    assert pod.get("hostNetwork") is not True and pod.get("hostPID") is not True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(objs)
    assert c["command"] == ["synthloop", "operator"]
    image, _, tag = c["image"].rpartition(":")
    assert image == "ghcr.io/synthloop/operator" and tag == "0.1.0"
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "privileged" not in sc or sc["privileged"] is False
    # Probes hit kopf's liveness endpoint, which `synthloop operator` serves on 8080.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080}
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        assert ports.get(get["port"], get["port"]) == 8080, probe
    # A read-only root needs a writable /tmp.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    res = c["resources"]
    for key in ("cpu", "memory"):
        assert key in res["requests"] and key in res["limits"], key


def _quantity(value: str) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


@pytest.mark.parametrize("path", OVERLAYS)
def test_requests_fit_within_limits(path: str) -> None:
    res = container(render(path))["resources"]
    for key in ("cpu", "memory"):
        assert _quantity(res["requests"][key]) <= _quantity(res["limits"][key]), key


@pytest.mark.parametrize("path", OVERLAYS)
def test_config_and_profiles_point_at_what_the_render_contains(path: str) -> None:
    objs = render(path)
    config = operator_config(objs)
    assert config["SYNTHLOOP_BUCKET"] == "synthloop"
    assert config["SYNTHLOOP_S3_SECRET"] == "synthloop-minio"
    assert config["SYNTHLOOP_NAMESPACES"] == "", "empty watches every namespace"
    assert config["SYNTHLOOP_S3_SECURE"] in ("0", "1")
    c = container(objs)
    env = env_of(c)
    # The operator's own credentials come from the same Secret the workers use.
    for var, key in (("AWS_ACCESS_KEY_ID", "accessKey"), ("AWS_SECRET_ACCESS_KEY", "secretKey")):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": config["SYNTHLOOP_S3_SECRET"], "key": key}, var
    assert not any("value" in e and "KEY" in name for name, e in env.items()), "no literal credentials"
    # SYNTHLOOP_PROFILES names a file inside the mounted profiles ConfigMap.
    profiles_path = Path(config["SYNTHLOOP_PROFILES"])
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    mount = mounts[str(profiles_path.parent)]
    pod = one(objs, "Deployment", "synthloop-operator")["spec"]["template"]["spec"]
    volume = {v["name"]: v for v in pod["volumes"]}[mount["name"]]
    profiles_cm = one(objs, "ConfigMap", volume["configMap"]["name"])
    profiles = yaml.safe_load(profiles_cm["data"][profiles_path.name])
    dgx = profiles["profiles"][profiles["default"]]
    assert profiles["default"] == "dgx-h100"
    assert dgx["nodeSelector"] == {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in dgx["tolerations"]
    assert (dgx["gpuResource"], dgx["gpusPerNode"]) == ("nvidia.com/gpu", 8)
    assert dgx["shmSize"] == "64Gi"
    assert (dgx["rdma"]["resource"], dgx["rdma"]["count"]) == ("rdma/rdma_shared_device_a", 1)
    assert {"NCCL_SOCKET_IFNAME"} <= set(dgx["env"]) and {"NCCL_IB_HCA"} <= set(dgx["rdma"]["env"])
    assert all(isinstance(v, str) for v in [*dgx["env"].values(), *dgx["rdma"]["env"].values()])


@pytest.mark.parametrize("path", OVERLAYS)
def test_metrics_service_selects_the_operator_pod(path: str) -> None:
    objs = render(path)
    svc = one(objs, "Service", "synthloop-operator-metrics")
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]
    labels = one(objs, "Deployment", "synthloop-operator")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()


def test_local_overlay_runs_on_the_process_node_with_the_local_endpoint() -> None:
    objs = render("overlays/local")
    pod = one(objs, "Deployment", "synthloop-operator")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "local-cpu-0"}
    c = container(objs)
    assert c["imagePullPolicy"] == "Never"
    endpoint = env_of(c)["SYNTHLOOP_S3_ENDPOINT"]["valueFrom"]["secretKeyRef"]
    assert endpoint == {"name": operator_config(objs)["SYNTHLOOP_S3_SECRET"], "key": "endpoint"}
    # Only placement, pull policy and the endpoint differ from the base (envFrom names the
    # merged ConfigMap, whose hash differs).
    base = container(render("base"))
    changed = ("imagePullPolicy", "env", "envFrom")
    assert {k: v for k, v in c.items() if k not in changed} == {
        k: v for k, v in base.items() if k not in changed}
    assert env_of(base).items() <= env_of(c).items()


def test_production_overlay_is_sized_protected_and_points_at_real_minio() -> None:
    objs = render("overlays/production")
    assert operator_config(objs)["SYNTHLOOP_S3_ENDPOINT"] == "minio.minio.svc:9000"
    deploy = one(objs, "Deployment", "synthloop-operator")
    pod = deploy["spec"]["template"]["spec"]
    priority = one(objs, "PriorityClass", pod["priorityClassName"])
    assert priority["value"] < 1_000_000_000, "below the system-* classes"
    assert priority.get("globalDefault", False) is False
    pdb = one(objs, "PodDisruptionBudget", "synthloop-operator")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels(deploy).items()
    assert pdb["spec"].get("maxUnavailable") == 1, "a singleton PDB must not block drains"
    base, prod = container(render("base"))["resources"], container(objs)["resources"]
    for section in ("requests", "limits"):
        for key in ("cpu", "memory"):
            assert _quantity(prod[section][key]) > _quantity(base[section][key]), (section, key)
    for crd in (o for o in objs if o["kind"] == "CustomResourceDefinition"):
        options = crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"]
        assert set(options.split(",")) == {"Prune=false", "Delete=false"}, crd["metadata"]["name"]


def test_argocd_project_admits_everything_the_applications_sync() -> None:
    objs = render("argocd")
    project = one(objs, "AppProject", "synthloop")["spec"]
    cluster_ok = {(g["group"], g["kind"]) for g in project["clusterResourceWhitelist"]}
    ns_ok = {(g["group"], g["kind"]) for g in project["namespaceResourceWhitelist"]}
    for obj in render("overlays/production"):
        group = obj["apiVersion"].rpartition("/")[0] if "/" in obj["apiVersion"] else ""
        allowed = cluster_ok if obj["kind"] in CLUSTER_SCOPED else ns_ok
        assert (group, obj["kind"]) in allowed, f"{group}/{obj['kind']} not whitelisted"
    for kind in CR_KINDS:
        assert ("synthloop.io", kind) in ns_ok
    assert not any(kind == "Secret" for _, kind in ns_ok), "credentials are never synced from git"
    destinations = {(d["server"], d["namespace"]) for d in project["destinations"]}
    apps = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "Application"}
    assert set(apps) == {"synthloop-operator", "synthloop-loop"}
    cm = one(objs, "ConfigMap", "argocd-cm")
    assert len([k for k in cm["data"] if k.startswith("resource.customizations.health.synthloop.io_")]) == 4
    for name, app in apps.items():
        assert app["project"] == "synthloop", name
        assert app["source"]["repoURL"] in project["sourceRepos"], name
        dest = app["destination"]
        assert (dest["server"], dest["namespace"]) in destinations, name
    assert apps["synthloop-operator"]["source"]["path"] == "manifests/overlays/production"
    assert (MANIFESTS / "overlays" / "production" / "kustomization.yaml").is_file()
    loop = apps["synthloop-loop"]
    assert loop["source"]["path"] == "examples/loop"
    assert loop["syncPolicy"]["automated"]["prune"] is False
    assert "SkipDryRunOnMissingResource=true" in loop["syncPolicy"]["syncOptions"]
    for obj in objs:
        finalizers = obj["metadata"].get("finalizers", [])
        assert "resources-finalizer.argocd.argoproj.io" not in finalizers, obj["metadata"]["name"]


def test_the_loop_application_points_at_a_folder_of_crs() -> None:
    """examples/loop is the lead's; Argo CD syncs it as plain manifests (or a kustomization)."""
    loop = ROOT / "examples" / "loop"
    assert loop.is_dir(), "examples/loop is missing: the synthloop-loop Application syncs it"
    docs = [d for f in sorted(loop.rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {d["kind"] for d in docs if d.get("apiVersion", "").startswith("synthloop.io/")}
    assert kinds, "examples/loop holds no synthloop CRs"
    for doc in docs:
        if doc.get("apiVersion", "").startswith("synthloop.io/"):
            assert "namespace" not in doc["metadata"], "the Application's destination sets it"


@pytest.mark.parametrize("path", OVERLAYS)
def test_the_operator_reads_the_rendered_config_as_intended(path: str, tmp_path: Path) -> None:
    """The ConfigMap and profiles file go through the operator's own loader, as in the pod."""
    from synthloop.builders.profiles import BUILTIN
    from synthloop.controllers.config import load_config

    objs = render(path)
    config = operator_config(objs)
    c = container(objs)
    pod = one(objs, "Deployment", "synthloop-operator")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    profiles_file = tmp_path / "profiles.yaml"
    profiles_file.write_text(one(objs, "ConfigMap", volume["configMap"]["name"])["data"]["profiles.yaml"])
    env = {**config, "SYNTHLOOP_PROFILES": str(profiles_file), "SYNTHLOOP_OPERATOR_NAMESPACE": NAMESPACE}
    loaded = load_config(env)
    assert loaded.profiles == BUILTIN, "manifests/base/profiles.yaml and the built-in profile agree"
    assert loaded.bucket == "synthloop" and loaded.s3_secret == "synthloop-minio"
    assert loaded.namespaces == ()
    assert loaded.image_for("AlignJob") == "ghcr.io/synthloop/trainer:0.1.0"
    assert loaded.image_for("SynthRound") == "ghcr.io/synthloop/synth:0.1.0"
    assert loaded.image_pull_policy == ("Never" if path.endswith("local") else "IfNotPresent")
    if "SYNTHLOOP_S3_ENDPOINT" not in env_of(c):
        assert loaded.s3_endpoint == "minio.minio.svc:9000"
    # The images the operator launches are the ones images/ builds.
    for name in ("trainer", "synth"):
        assert (ROOT / "images" / name / "Dockerfile").is_file()
