"""Namespaces are boundaries, on the real apiserver and MinIO, with the operator installed the way
rbac.yaml recommends for a fixed list of namespaces: a ServiceAccount with one RoleBinding per
watched namespace and no ClusterRoleBinding.

Two teams promote a model under the same name. Each keeps its own pointer; neither can use the
other's (the condition says why), and a third namespace the operator was not given is never
touched. The operator's /metrics (same server as /healthz) is scraped: the resync ran, without
an error, under RoleBindings only. Then one team's promoted weights are corrupted in MinIO
(4096 bytes flipped, same size, metadata intact) and a consumer of them fails with the
worker's checksum error in its Failed condition.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthloop.artifacts.promotion import read_promotion
from synthloop.artifacts.store import open_store
from synthloop.controllers.handlers import RELIST_EVERY
from tests.conftest import LocalCluster, wait_for
from tests.integration.test_operator import (
    DGX_SELECTOR,
    GPU_TOLERATION,
    PLURALS,
    ROOT,
    WORKER_IMAGE,
    condition,
    cr,
    get_cr,
    helpsteer_rows,
    tiny_model,
)

pytestmark = pytest.mark.integration
PROMO = "shared-rm"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Install:
    """The operator's ClusterRoles bound by RoleBindings in the watched namespaces only."""

    def __init__(self, lc: LocalCluster, suffix: str, watched: list[str], tmp: Path) -> None:
        self.lc, self.suffix, self.watched, self.tmp = lc, suffix, watched, tmp
        self.system = f"t-op-{suffix}"
        self.sa = "synthloop-operator"
        self.roles: list[str] = []

    def apply(self) -> None:
        rendered = self.lc.kubectl("kustomize", str(ROOT / "manifests" / "base")).stdout
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        items: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.system}},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": self.sa, "namespace": self.system}},
        ]
        for doc in docs:
            if doc["kind"] != "ClusterRole":
                continue
            name = f"{doc['metadata']['name']}-{self.suffix}"
            self.roles.append(name)
            items.append({**doc, "metadata": {"name": name}})
            for ns in self.watched:
                items.append({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": ns},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                    "subjects": [{"kind": "ServiceAccount", "name": self.sa, "namespace": self.system}],
                })
        self.lc.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def kubeconfig(self) -> Path:
        """A kubeconfig that authenticates as the ServiceAccount only (a TokenRequest token)."""
        token = self.lc.kubectl("create", "token", self.sa, "-n", self.system, "--duration=30m").stdout.strip()
        admin = yaml.safe_load(Path(self.lc.kubeconfig).read_text())
        cluster = admin["clusters"][0]
        path = self.tmp / "operator.kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
            "current-context": "sa",
        }))
        return path

    def delete(self) -> None:
        self.lc.kubectl("delete", "namespace", self.system, "--wait=false", check=False)
        for name in self.roles:
            self.lc.kubectl("delete", "clusterrole", name, check=False)


@pytest.fixture
def teams(local_cluster: LocalCluster, s3_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, Any]]:
    lc = local_cluster
    suffix = uuid.uuid4().hex[:6]
    names = {t: f"t-team-{t}-{suffix}" for t in ("a", "b", "c")}
    lc.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    for plural in PLURALS.values():
        lc.kubectl("wait", "--for=condition=Established", f"crd/{plural}.synthloop.io", "--timeout=60s")
    for ns in names.values():
        lc.kube.create("/api/v1/namespaces", {"metadata": {"name": ns, "labels": {"synthloop.dev/test": "true"}}})
        lc.kube.create(f"/api/v1/namespaces/{ns}/secrets", {
            "metadata": {"name": "synthloop-minio"},
            "stringData": {"accessKey": lc.access_key, "secretKey": lc.secret_key}})
        wait_for(lambda ns=ns: lc.kube.get_or_none(f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
                 timeout=60, what=f"ServiceAccount {ns}/default")
    install = Install(lc, suffix, [names["a"], names["b"]], tmp_path)
    install.apply()
    store = open_store()
    root = f"s3://{lc.bucket}/{names['a']}/inputs/"
    store.put_bytes(root + "helpsteer2.jsonl", helpsteer_rows())
    inputs = {"model": tiny_model(store, root + "tiny/", tmp_path), "ratings": root + "helpsteer2.jsonl"}
    proc: subprocess.Popen[bytes] | None = None
    port = _free_port()
    log_path = tmp_path / "operator.log"
    profiles = tmp_path / "profiles.yaml"
    pin = {"kubernetes.io/hostname": "local-dgx-0"} if lc.local else {}
    profiles.write_text(yaml.safe_dump({"default": "dgx-h100", "profiles": {"dgx-h100": {
        "nodeSelector": {**pin, **DGX_SELECTOR}, "tolerations": [GPU_TOLERATION], "gpusPerNode": 8,
        "shmSize": "1Gi"}}}))
    env = {**os.environ, **lc.env(), "KUBECONFIG": str(install.kubeconfig()), "SYNTHLOOP_PROFILES": str(profiles),
           "SYNTHLOOP_BUCKET": lc.bucket, "SYNTHLOOP_WORKER_IMAGE": WORKER_IMAGE or "synthloop/worker:dev",
           "SYNTHLOOP_IMAGE_PULL_POLICY": "Never", "SYNTHLOOP_RESYNC_SECONDS": "3", "SYNTHLOOP_WAIT_SECONDS": "1",
           # the namespaces come from the config (SYNTHLOOP_NAMESPACES), not the command line
           "SYNTHLOOP_NAMESPACES": f"{names['a']},{names['b']}"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(["synthloop", "operator", "--liveness-port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        yield {"ns": names, "inputs": inputs, "port": port, "log": log_path, "proc": proc}
    finally:
        for ns in names.values():
            for plural in PLURALS.values():
                lc.kubectl("delete", plural, "--all", "-n", ns, "--timeout=30s", check=False)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for ns in names.values():
            lc.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        install.delete()


def scrape(port: int) -> dict[str, float]:
    """``name{labels}`` -> value of every sample on /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, val = line.rpartition(" ")
            samples[key] = float(val)
    return samples


def wait_phase(lc: LocalCluster, t: dict[str, Any], ns: str, kind: str, name: str, phases: set[str],
               timeout: float) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = get_cr(lc, ns, kind, name)
        return body if (body.get("status") or {}).get("phase") in phases else None

    try:
        found: dict[str, Any] = wait_for(reached, timeout=timeout, interval=1.0, what=f"{kind} {ns}/{name} in {phases}")
    except AssertionError as exc:
        body = get_cr(lc, ns, kind, name)
        raise AssertionError(f"{exc}; status: {json.dumps(body.get('status'), indent=1)}\n"
                             f"{t['log'].read_text(errors='replace')[-6000:]}") from None
    return found


def reward(inputs: dict[str, str], **extra: Any) -> dict[str, Any]:
    # One GPU each: the shared process node's eight are enough for both teams and other tests.
    return {"baseModel": {"uri": inputs["model"]}, "data": {"uri": inputs["ratings"]},
            "training": {"epochs": 1, "globalBatchSize": 8}, "backoffLimit": 0,
            "resources": {"gpusPerNode": 1}, **extra}


def apply(lc: LocalCluster, ns: str, doc: dict[str, Any]) -> None:
    lc.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(doc))


def test_two_teams_promotions_are_separate_and_a_corrupted_model_is_refused(
    local_cluster: LocalCluster, teams: dict[str, Any]
) -> None:
    lc, t = local_cluster, teams
    a, b, c = t["ns"]["a"], t["ns"]["b"], t["ns"]["c"]
    # Both teams promote a model under the same name; a third namespace is not the operator's.
    for ns in (a, b, c):
        apply(lc, ns, cr("RewardTrain", "rw", reward(t["inputs"], promotion={"name": PROMO})))
    for ns in (a, b):
        body = wait_phase(lc, t, ns, "RewardTrain", "rw", {"Promoted", "Failed"}, timeout=420)
        assert body["status"]["phase"] == "Promoted", condition(body, "Failed")
    store = open_store()
    pa = read_promotion(store, bucket=lc.bucket, namespace=a, name=PROMO)
    pb = read_promotion(store, bucket=lc.bucket, namespace=b, name=PROMO)
    assert pa is not None and pb is not None
    assert pa.source.startswith(f"{a}/RewardTrain/rw/") and pa.model_uri.startswith(f"s3://{lc.bucket}/{a}/")
    assert pb.source.startswith(f"{b}/RewardTrain/rw/") and pb.model_uri.startswith(f"s3://{lc.bucket}/{b}/")
    assert len(pa.model_sha256) == 64 and pa.shared_with == []

    # B names A's promotion: refused, saying by whom and how it could be shared.
    apply(lc, b, cr("RewardTrain", "steal", reward(t["inputs"], baseModel={"promoted": f"{a}/{PROMO}"})))
    body = wait_phase(lc, t, b, "RewardTrain", "steal", {"WaitingForInputs"}, timeout=60)
    ready = condition(body, "InputsReady")
    assert ready["reason"] == "PromotionNotShared", ready
    assert f"promotion {a}/{PROMO} is not shared with namespace {b}" in ready["message"]
    assert f"must list {b} in spec.promotion.shareWith" in ready["message"]

    # The resync ran under RoleBindings only, without a refused list; the third namespace was never touched.
    def resynced() -> dict[str, float] | None:
        samples = scrape(t["port"])
        return samples if samples.get('synthloop_resyncs_total{result="ok"}', 0) > RELIST_EVERY else None

    # Rounds past the first LIST that refills the cache (every RELIST_EVERY rounds of 3 s).
    samples = wait_for(resynced, timeout=120, interval=2.0, what=f"{RELIST_EVERY + 1} resync rounds")
    assert samples.get('synthloop_resyncs_total{result="error"}', 0) == 0, t["log"].read_text()[-4000:]
    assert "status" not in get_cr(lc, c, "RewardTrain", "rw")
    assert not lc.kube.get(f"/apis/batch/v1/namespaces/{c}/jobs")["items"]
    assert samples[f'synthloop_resources{{kind="RewardTrain",namespace="{a}",phase="Promoted"}}'] == 1
    assert samples['synthloop_jobs_created_total{kind="RewardTrain",stage="reward-train"}'] >= 2
    assert samples['synthloop_reconcile_duration_seconds_count{kind="RewardTrain",outcome="done"}'] >= 2
    assert not any(k.startswith("synthloop_resources") and c in k for k in samples)
    with urllib.request.urlopen(f"http://127.0.0.1:{t['port']}/healthz", timeout=10) as resp:
        assert resp.status == 200

    # Corrupt B's promoted weights in place: 4096 bytes flipped, same size, recorded sha256 kept.
    from minio import Minio

    weights = pb.model_uri + "model.safetensors"
    key = weights.removeprefix(f"s3://{lc.bucket}/")
    client = Minio(lc.s3_endpoint.removeprefix("http://"), access_key=lc.access_key, secret_key=lc.secret_key,
                   secure=False)
    meta = client.stat_object(lc.bucket, key).metadata
    recorded = meta.get("x-amz-meta-sha256")
    assert recorded == pb.model_sha256
    resp = client.get_object(lc.bucket, key)
    raw = bytearray(resp.read())
    resp.close()
    resp.release_conn()
    raw[1024:5120] = bytes(x ^ 0xFF for x in raw[1024:5120])
    client.put_object(lc.bucket, key, io.BytesIO(bytes(raw)), len(raw), metadata={"sha256": recorded})
    assert store.head(weights).size == len(raw) and store.head(weights).sha256 == recorded

    apply(lc, b, cr("RewardTrain", "consumer", reward(t["inputs"], baseModel={"promoted": PROMO})))
    body = wait_phase(lc, t, b, "RewardTrain", "consumer", {"Failed", "Succeeded"}, timeout=300)
    assert body["status"]["phase"] == "Failed", body["status"]
    inputs = {i["name"]: i for i in body["status"]["inputs"]}
    assert inputs["model"]["uri"] == pb.model_uri  # B's own model, not A's
    failed = condition(body, "Failed")
    assert "model.safetensors: sha256" in failed["message"], failed
    assert "does not match" in failed["message"] and "its producer recorded" in failed["message"], failed
