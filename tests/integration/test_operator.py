"""The operator on the real local cluster: placement, chaining through MinIO, gates, restarts, failures.

Each test runs `synthloop operator` as a subprocess (the same entry point the Deployment runs)
watching only the test's namespace, with a hardware profile file whose `dgx-h100` pins pods to the
process-backed DGX node `local-dgx-0`, where the real workers run on the CPU with tiny
models; placement tests add a few KWOK DGX nodes carrying a probe taint that only their
profile tolerates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthloop.api.v1alpha1 import API_VERSION
from synthloop.artifacts.promotion import read_promotion
from synthloop.artifacts.store import ArtifactStore, open_store
from synthloop.local.fleet import create_nodes, delete_nodes, kwok_fleet
from synthloop.local.options import DGX_H100_LABELS
from tests.conftest import LocalCluster, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROBE = "synthloop.dev/probe"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
DGX_SELECTOR = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8"}
PLURALS = {"PretrainJob": "pretrainjobs", "SynthRound": "synthrounds", "RewardTrain": "rewardtrains",
           "AlignJob": "alignjobs"}


WORKER_IMAGE = os.environ.get("SYNTHLOOP_TEST_WORKER_IMAGE", "")


@pytest.fixture(autouse=True)
def _worker_image(local_cluster: LocalCluster) -> None:
    """The workers really run: locally the process node runs them from this checkout; another
    cluster needs an image of it (``make kind-test`` builds images/trainer and loads it)."""
    if not local_cluster.local and not WORKER_IMAGE:
        pytest.fail("the operator tests run the real workers in pods: on a cluster other than "
                    "`synthloop local`, set SYNTHLOOP_TEST_WORKER_IMAGE to an image built from "
                    "images/trainer that the DGX-labelled nodes can run (make kind-test does this)",
                    pytrace=False)


class Operator:
    """`synthloop operator` as a subprocess against the test cluster; restartable."""

    def __init__(self, lc: LocalCluster, namespace: str, workdir: Path) -> None:
        self.lc, self.namespace, self.workdir = lc, namespace, workdir
        # "dgx-h100" here is the DGX profile plus a pin to the process node: the operator config
        # decides what a profile means on this cluster, so CRs keep the API's default profile.
        pin = {"kubernetes.io/hostname": "local-dgx-0"} if lc.local else {}
        self.profiles: dict[str, Any] = {"dgx-h100": {
            "nodeSelector": {**pin, **DGX_SELECTOR},
            "tolerations": [GPU_TOLERATION], "gpusPerNode": 8, "shmSize": "1Gi",
        }}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.extra_env: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        path = self.workdir / "profiles.yaml"
        path.write_text(yaml.safe_dump({"default": "dgx-h100", "profiles": self.profiles}))
        return {**os.environ, **self.lc.env(), "SYNTHLOOP_PROFILES": str(path),
                "SYNTHLOOP_BUCKET": self.lc.bucket, "SYNTHLOOP_WORKER_IMAGE": WORKER_IMAGE or "synthloop/worker:dev",
                "SYNTHLOOP_IMAGE_PULL_POLICY": "Never", "SYNTHLOOP_RESYNC_SECONDS": "5",
                "SYNTHLOOP_WAIT_SECONDS": "1", **self.extra_env}

    def start(self) -> None:
        self.starts += 1
        with (self.workdir / f"operator-{self.starts}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                ["synthloop", "operator", "--liveness-port", "0", "-n", self.namespace],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT,
            )

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(self.workdir.glob("operator-*.log")))


@pytest.fixture
def operator(local_cluster: LocalCluster, namespace: str, tmp_path: Path, s3_env: dict[str, str]) -> Iterator[Operator]:
    lc = local_cluster
    lc.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    for plural in PLURALS.values():
        lc.kubectl("wait", "--for=condition=Established", f"crd/{plural}.synthloop.io", "--timeout=60s")
    lc.kube.create(f"/api/v1/namespaces/{namespace}/secrets", {
        "metadata": {"name": "synthloop-minio"},
        "stringData": {"accessKey": lc.access_key, "secretKey": lc.secret_key},
    })
    op = Operator(lc, namespace, tmp_path)
    yield op
    # Delete the CRs while the operator still runs, so a finalizer it set is also removed.
    if op.proc is not None:
        for plural in PLURALS.values():
            lc.kubectl("delete", plural, "--all", "-n", namespace, "--timeout=30s", check=False)
    op.stop()


def apply(lc: LocalCluster, namespace: str, *docs: dict[str, Any]) -> None:
    body = {"apiVersion": "v1", "kind": "List", "items": list(docs)}
    lc.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def cr(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


def get_cr(lc: LocalCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = lc.kube.get(f"/apis/synthloop.io/v1alpha1/namespaces/{namespace}/{PLURALS[kind]}/{name}")
    return body


def condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def wait_phase(lc: LocalCluster, op: Operator, namespace: str, kind: str, name: str, phases: set[str],
               timeout: float) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = get_cr(lc, namespace, kind, name)
        phase = (body.get("status") or {}).get("phase")
        if phase == "Failed" and "Failed" not in phases:
            raise AssertionError(f"{kind} {name} failed: {condition(body, 'Failed')}\n{op.logs()}")
        return body if phase in phases else None

    try:
        result: dict[str, Any] = wait_for(reached, timeout=timeout, interval=1.0, what=f"{kind} {name} in {phases}")
    except AssertionError as exc:
        body = get_cr(lc, namespace, kind, name)
        raise AssertionError(f"{exc}; status: {json.dumps(body.get('status'), indent=1)}\n{op.logs()}") from None
    return result


def jobs(lc: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = lc.kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
    return items


def pods(lc: LocalCluster, namespace: str, job: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = lc.kube.get(f"/api/v1/namespaces/{namespace}/pods",
                                              labelSelector=f"synthloop.io/job={job}")["items"]
    return items


# -- artifacts the tests start from --------------------------------------------------------

def tiny_model(store: ArtifactStore, uri: str, tmp: Path) -> str:
    from synthloop.models.build import make_tiny_model

    store.upload_dir(make_tiny_model(tmp / "tiny", preset="tiny-test", seed=0), uri)
    return uri


def helpsteer_rows(n: int = 24) -> bytes:
    rows = []
    for i in range(n):
        a, b = i % 7 + 2, i % 5 + 3
        good = i % 2 == 0
        rows.append({"prompt": f"What is {a} + {b}?", "response": str(a + b) if good else "I like turtles.",
                     "helpfulness": 4 if good else 0, "correctness": 4 if good else 0, "coherence": 3,
                     "complexity": 1, "verbosity": 1})
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def align_data(store: ArtifactStore, prefix: str) -> str:
    sft = [{"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                         {"role": "assistant", "content": f"The answer is {2 * i}."}]} for i in range(12)]
    pref = [{"prompt": [{"role": "user", "content": f"What is {i} + 1?"}], "chosen": f"The answer is {i + 1}.",
             "rejected": "No.", "chosen_reward": 3.5, "rejected_reward": 0.5} for i in range(12)]
    store.put_bytes(prefix + "sft.jsonl", "".join(json.dumps(r) + "\n" for r in sft).encode())
    store.put_bytes(prefix + "preference.jsonl", "".join(json.dumps(r) + "\n" for r in pref).encode())
    return prefix


@pytest.fixture
def base(local_cluster: LocalCluster, namespace: str, s3_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A tiny model, HelpSteer2-style ratings and SFT/preference data under the test's own prefix."""
    store = open_store()
    root = f"s3://{local_cluster.bucket}/{namespace}/inputs/"
    store.put_bytes(root + "helpsteer2.jsonl", helpsteer_rows())
    return {"model": tiny_model(store, root + "tiny/", tmp_path), "ratings": root + "helpsteer2.jsonl",
            "data": align_data(store, root + "data/")}


# -- placement -----------------------------------------------------------------------------

@pytest.fixture
def kwok_dgx(local_cluster: LocalCluster, operator: Operator) -> Iterator[list[str]]:
    """Eight KWOK DGX nodes (room for every pod at once) only the `kwok` profile tolerates; pods there only pretend."""
    probe = uuid.uuid4().hex[:6]
    taint = {"key": PROBE, "value": probe, "effect": "NoSchedule"}
    fleet = kwok_fleet(dgx=8, cpu=0, gpu_labels=DGX_H100_LABELS, prefix=f"op-{probe}",
                       extra_labels={PROBE: probe}, extra_taints=[taint])
    names = [n["metadata"]["name"] for n in fleet]
    create_nodes(local_cluster.kube, fleet)
    operator.profiles["kwok"] = {
        "nodeSelector": {PROBE: probe, **DGX_SELECTOR},
        "tolerations": [GPU_TOLERATION, {"key": PROBE, "operator": "Equal", "value": probe, "effect": "NoSchedule"}],
        "gpusPerNode": 8, "shmSize": "64Gi",
    }
    try:
        yield names
    finally:
        delete_nodes(local_cluster.kube, names)


@pytest.mark.local_only  # KWOK nodes / the local overlay
def test_pods_of_every_kind_land_on_dgx_nodes_with_gpus_env_shm_and_ranks(
    local_cluster: LocalCluster, namespace: str, operator: Operator, kwok_dgx: list[str], base: dict[str, str]
) -> None:
    lc = local_cluster
    kwok = {"profile": "kwok"}
    apply(lc, namespace,
          cr("PretrainJob", "pt", {"model": {"preset": "tiny-test"}, "backoffLimit": 0,
                                   "phases": [{"name": "p", "steps": 2, "blend": [{"source": "english", "weight": 1}]}],
                                   "resources": {**kwok, "nodes": 2}}),
          cr("SynthRound", "sr", {"generator": {"model": {"uri": base["model"]}, "backend": "transformers"},
                                  "prompts": {"math": 2}, "shards": 3, "backoffLimit": 0, "resources": kwok}),
          cr("RewardTrain", "rw", {"baseModel": {"uri": base["model"]}, "data": {"uri": base["ratings"]},
                                   "backoffLimit": 0, "resources": kwok}),
          cr("AlignJob", "aj", {"baseModel": {"uri": base["model"]}, "data": {"uri": base["data"]},
                                "stages": [{"type": "sft"}], "backoffLimit": 0, "resources": {**kwok, "nodes": 2}}))
    operator.start()
    expected = {"pt-pretrain": 2, "sr-synth": 3, "rw-reward-train": 1, "aj-sft-0": 2}
    for job, count in expected.items():
        got = wait_for(lambda j=job, c=count: (ps := pods(lc, namespace, j)) and len(ps) == c
                       and all(p["spec"].get("nodeName") for p in ps) and ps,
                       timeout=90, what=f"{count} bound pod(s) of {job}\n{operator.logs()}")
        assert len({p["spec"]["nodeName"] for p in got}) == count, "one pod per node"
        for pod in got:
            spec = pod["spec"]
            assert spec["nodeName"] in kwok_dgx
            (c,) = spec["containers"]
            assert c["resources"]["limits"]["nvidia.com/gpu"] == "8"
            assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
            assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}} in spec["volumes"]
            env = {e["name"]: e for e in c["env"]}
            assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "synthloop-minio"
            assert json.loads(env["SYNTHLOOP_WORKER_CONFIG"]["value"])["namespace"] == namespace
    # The multi-node job: consecutive ranks, and pod 0's name under the headless Service.
    ranks = sorted(int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
                   for p in pods(lc, namespace, "pt-pretrain"))
    assert ranks == [0, 1]
    (pod0,) = [p for p in pods(lc, namespace, "pt-pretrain")
               if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0"]
    assert (pod0["spec"]["hostname"], pod0["spec"]["subdomain"]) == ("pt-pretrain-0", "pt-pretrain")
    env = {e["name"]: e.get("value") for e in pod0["spec"]["containers"][0]["env"]}
    assert (env["MASTER_ADDR"], env["NNODES"]) == ("pt-pretrain-0.pt-pretrain", "2")
    svc = lc.kube.get(f"/api/v1/namespaces/{namespace}/services/pt-pretrain")
    assert svc["spec"]["clusterIP"] == "None"
    # The Service selects rank 0 only, by the label the Job controller puts on Indexed Job pods.
    assert svc["spec"]["selector"] == {"synthloop.io/job": "pt-pretrain", "batch.kubernetes.io/job-completion-index": "0"}
    assert pod0["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "0"
    # KWOK pods "succeed" without running anything: no manifest, so the run is not trusted.
    body = wait_phase(lc, operator, namespace, "RewardTrain", "rw", {"Failed"}, timeout=120)
    failed = condition(body, "Failed")
    assert failed["reason"] == "ManifestInvalid" and "manifest.json does not exist" in failed["message"]


# -- chaining, gates, promotion ------------------------------------------------------------

def test_reward_synth_and_align_applied_together_run_in_order_and_promote(
    local_cluster: LocalCluster, namespace: str, operator: Operator, base: dict[str, str]
) -> None:
    lc = local_cluster
    promo = f"interm-{namespace[-6:]}"
    apply(lc, namespace,
          cr("AlignJob", "align-1", {
              "baseModel": {"uri": base["model"]}, "data": {"fromRef": {"kind": "SynthRound", "name": "round-1"}},
              "rewardModel": {"fromRef": {"kind": "RewardTrain", "name": "reward-1"}},
              "stages": [{"type": "sft", "globalBatchSize": 4}, {"type": "dpo", "beta": 0.1, "globalBatchSize": 4}],
              "evaluation": {"suites": [{"type": "ifeval", "limit": 4}],
                             "gates": [{"metric": "ifeval.prompt_loose", "min": 0.0}]},
              "promotion": {"name": promo}, "backoffLimit": 0}),
          cr("SynthRound", "round-1", {
              "generator": {"model": {"uri": base["model"]}, "backend": "transformers", "maxTokens": 16,
                            "batchSize": 8},
              "prompts": {"math": 6}, "preference": {"responsesPerPrompt": 2, "includeReference": True},
              "rewardModel": {"fromRef": {"kind": "RewardTrain", "name": "reward-1"}}, "backoffLimit": 0}),
          cr("RewardTrain", "reward-1", {
              "baseModel": {"uri": base["model"]}, "data": {"uri": base["ratings"]},
              "training": {"epochs": 1, "globalBatchSize": 8}, "backoffLimit": 0}))
    operator.start()
    body = wait_phase(lc, operator, namespace, "AlignJob", "align-1", {"WaitingForInputs"}, timeout=60)
    assert "waiting for SynthRound round-1" in condition(body, "InputsReady")["message"]
    wait_phase(lc, operator, namespace, "RewardTrain", "reward-1", {"Succeeded"}, timeout=240)
    round1 = wait_phase(lc, operator, namespace, "SynthRound", "round-1", {"Succeeded"}, timeout=300)
    outputs = {o["name"]: o for o in round1["status"]["outputs"]}
    assert outputs["sft"]["uri"].endswith("/synth/sft.jsonl") and len(outputs["sft"]["sha256"]) == 64
    align = wait_phase(lc, operator, namespace, "AlignJob", "align-1", {"Promoted", "Rejected"}, timeout=420)
    assert align["status"]["phase"] == "Promoted", condition(align, "Promoted")
    assert condition(align, "Promoted")["status"] == "True"
    lc.kubectl("wait", "-n", namespace, "--for=condition=Promoted", "alignjob/align-1", "--timeout=10s")
    pointer = read_promotion(open_store(), bucket=lc.bucket, namespace=namespace, name=promo)
    assert pointer is not None and pointer.model_uri.endswith("/dpo-1/model/")
    assert "ifeval.prompt_loose" in pointer.metrics
    # Order through MinIO: each consumer's first Job was made after its producer's run finished
    # (its manifest verified), not merely after it was applied.
    by_name = {j["metadata"]["name"]: j for j in jobs(lc, namespace)}
    assert set(by_name) == {"reward-1-reward-train", "round-1-synth", "round-1-merge", "align-1-sft-0",
                            "align-1-dpo-1", "align-1-eval"}
    reward = get_cr(lc, namespace, "RewardTrain", "reward-1")
    assert reward["status"]["finishedAt"] <= by_name["round-1-synth"]["metadata"]["creationTimestamp"]
    assert round1["status"]["finishedAt"] <= by_name["align-1-sft-0"]["metadata"]["creationTimestamp"]
    assert align["status"]["inputs"] and {i["name"] for i in align["status"]["inputs"]} >= {"model", "data", "reward_model"}
    cfg = json.loads(next(e["value"] for e in by_name["align-1-dpo-1"]["spec"]["template"]["spec"]["containers"][0]["env"]
                          if e["name"] == "SYNTHLOOP_WORKER_CONFIG"))
    assert cfg["inputs"]["model"].endswith("/sft-0/model/") and cfg["inputs"]["preference"] == outputs["preference"]["uri"]
    events = lc.kube.get(f"/api/v1/namespaces/{namespace}/events",
                         fieldSelector="involvedObject.name=align-1")["items"]
    assert "Promoted" in {e["reason"] for e in events}


def test_a_failed_gate_rejects_and_the_next_round_never_starts(
    local_cluster: LocalCluster, namespace: str, operator: Operator, base: dict[str, str]
) -> None:
    lc = local_cluster
    promo = f"never-{namespace[-6:]}"
    apply(lc, namespace,
          cr("AlignJob", "align-1", {
              "baseModel": {"uri": base["model"]}, "data": {"uri": base["data"]},
              "stages": [{"type": "sft", "globalBatchSize": 4}],
              "evaluation": {"suites": [{"type": "ifeval", "limit": 4}],
                             "gates": [{"metric": "ifeval.prompt_loose", "min": 1.5}]},
              "promotion": {"name": promo}, "backoffLimit": 0}),
          cr("SynthRound", "round-2", {"generator": {"model": {"promoted": promo}, "backend": "transformers"},
                                       "prompts": {"math": 2}}))
    operator.start()
    align = wait_phase(lc, operator, namespace, "AlignJob", "align-1", {"Promoted", "Rejected"}, timeout=300)
    promoted = condition(align, "Promoted")
    assert align["status"]["phase"] == "Rejected"
    assert (promoted["status"], promoted["reason"]) == ("False", "GateFailed")
    assert promoted["message"].startswith("ifeval.prompt_loose = ") and promoted["message"].endswith(", needs >= 1.5")
    assert read_promotion(open_store(), bucket=lc.bucket, namespace=namespace, name=promo) is None
    # round-2 notices the rejection on its next pass (an event or the resync), so poll for it.
    expected = f"waiting for promotion {promo} (AlignJob align-1 is Rejected: ifeval.prompt_loose = "
    deadline = time.monotonic() + 90
    while True:
        round2 = get_cr(lc, namespace, "SynthRound", "round-2")
        message = condition(round2, "InputsReady")["message"]
        if message.startswith(expected) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert round2["status"]["phase"] == "WaitingForInputs"
    assert message.startswith(expected), message
    assert not [j for j in jobs(lc, namespace) if j["metadata"]["name"].startswith("round-2")]


# -- failure handling ----------------------------------------------------------------------

def test_killing_the_operator_mid_run_finishes_with_no_duplicate_jobs(
    local_cluster: LocalCluster, namespace: str, operator: Operator, base: dict[str, str]
) -> None:
    lc = local_cluster
    apply(lc, namespace, cr("AlignJob", "a", {
        "baseModel": {"uri": base["model"]}, "data": {"uri": base["data"]},
        "stages": [{"type": "sft", "globalBatchSize": 4}, {"type": "dpo", "beta": 0.1, "globalBatchSize": 4}],
        "backoffLimit": 0}))
    operator.start()
    first = wait_for(lambda: {j["metadata"]["name"]: j["metadata"]["uid"] for j in jobs(lc, namespace)},
                     timeout=60, what=f"the first Job\n{operator.logs()}")
    started = get_cr(lc, namespace, "AlignJob", "a")["status"]["startedAt"]
    operator.stop(kill=True)
    time.sleep(2)
    operator.start()
    done = wait_phase(lc, operator, namespace, "AlignJob", "a", {"Succeeded"}, timeout=300)
    names = [j["metadata"]["name"] for j in jobs(lc, namespace)]
    assert sorted(names) == ["a-dpo-1", "a-sft-0"]
    now = {j["metadata"]["name"]: j["metadata"]["uid"] for j in jobs(lc, namespace)}
    assert all(now[n] == uid for n, uid in first.items()), "a Job was recreated"
    assert done["status"]["startedAt"] == started


def test_a_worker_pod_that_fails_once_is_retried_and_the_run_succeeds(
    local_cluster: LocalCluster, namespace: str, operator: Operator, tmp_path: Path, s3_env: dict[str, str]
) -> None:
    lc = local_cluster
    store = open_store()
    gen = f"s3://{lc.bucket}/{namespace}/inputs/late-model/"
    store.put_bytes(gen + "config.json", b"{}")  # exists, but is no model yet: the first pod fails
    apply(lc, namespace, cr("SynthRound", "r", {
        "generator": {"model": {"uri": gen}, "backend": "transformers", "maxTokens": 8},
        "prompts": {"math": 2}, "backoffLimit": 2}))
    operator.start()
    wait_for(lambda: any((j.get("status") or {}).get("failed", 0) >= 1 for j in jobs(lc, namespace)),
             timeout=120, what=f"a failed pod\n{operator.logs()}")
    store.delete(gen + "config.json")
    tiny_model(store, gen, tmp_path)
    body = wait_phase(lc, operator, namespace, "SynthRound", "r", {"Succeeded"}, timeout=300)
    assert body["status"]["attempts"] >= 3  # failed shard pod + its retry + the merge
    # The manifest counts, not the pod's exit: the Job controller records the success a moment later.
    synth = wait_for(lambda: next((j for j in jobs(lc, namespace) if j["metadata"]["name"] == "r-synth"
                                   and j["status"].get("succeeded") == 1), None), timeout=60, what="r-synth Complete")
    assert synth["status"]["failed"] >= 1


# -- invalid specs -------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "invalid").glob("*.yaml")), ids=lambda p: p.name)
def test_every_invalid_example_is_rejected_by_the_apiserver(
    local_cluster: LocalCluster, namespace: str, operator: Operator, path: Path
) -> None:
    proc = local_cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert proc.returncode != 0, f"{path.name} was accepted"
    wanted = [line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
              if line.startswith("# expect:")]
    assert wanted, f"{path.name} has no '# expect:' line"
    message = proc.stderr.lower()  # compared as the offline check compares (tests/unit/test_api.py)
    for text in wanted:  # each expectation, from the apiserver's own message
        assert text.lower() in message, f"{path.name}: {text!r} is not in the apiserver's message:\n{proc.stderr}"


def test_semantic_errors_end_in_failed_with_their_reason(
    local_cluster: LocalCluster, namespace: str, operator: Operator, base: dict[str, str]
) -> None:
    lc = local_cluster
    operator.extra_env["SYNTHLOOP_REF_GRACE_SECONDS"] = "0"
    stage = [{"type": "sft"}]
    apply(lc, namespace,
          cr("AlignJob", "missing-ref", {"baseModel": {"fromRef": {"kind": "PretrainJob", "name": "nope"}},
                                         "data": {"uri": base["data"]}, "stages": stage}),
          cr("AlignJob", "cycle-a", {"baseModel": {"fromRef": {"kind": "AlignJob", "name": "cycle-b"}},
                                     "data": {"uri": base["data"]}, "stages": stage}),
          cr("AlignJob", "cycle-b", {"baseModel": {"fromRef": {"kind": "AlignJob", "name": "cycle-a"}},
                                     "data": {"uri": base["data"]}, "stages": stage}),
          cr("AlignJob", "bad-profile", {"baseModel": {"uri": base["model"]}, "data": {"uri": base["data"]},
                                         "stages": stage, "resources": {"profile": "gb200-nvl72"}}))
    operator.start()
    expect = {"missing-ref": ("RefNotFound", "PretrainJob nope does not exist"),
              "cycle-a": ("RefCycle", "AlignJob/cycle-a -> AlignJob/cycle-b -> AlignJob/cycle-a"),
              "bad-profile": ("ProfileMissing", "'gb200-nvl72' is not configured")}
    for name, (reason, text) in expect.items():
        body = wait_phase(lc, operator, namespace, "AlignJob", name, {"Failed"}, timeout=60)
        failed = condition(body, "Failed")
        assert failed["reason"] == reason and text in failed["message"], failed
    lc.kube.delete(f"/api/v1/namespaces/{namespace}/secrets/synthloop-minio")
    apply(lc, namespace, cr("AlignJob", "no-secret", {"baseModel": {"uri": base["model"]},
                                                      "data": {"uri": base["data"]}, "stages": stage}))
    body = wait_phase(lc, operator, namespace, "AlignJob", "no-secret", {"Failed"}, timeout=60)
    assert condition(body, "Failed")["reason"] == "SecretMissing"
    # No retry loop: the status stays put and no Job was ever made.
    rv = get_cr(lc, namespace, "AlignJob", "no-secret")["metadata"]["resourceVersion"]
    time.sleep(8)
    assert get_cr(lc, namespace, "AlignJob", "no-secret")["metadata"]["resourceVersion"] == rv
    assert not jobs(lc, namespace)


# -- the operator as its Deployment ----------------------------------------------------------

@pytest.mark.local_only  # KWOK nodes / the local overlay
def test_the_deployment_from_the_local_overlay_runs_a_round_as_its_service_account(
    local_cluster: LocalCluster, namespace: str, operator: Operator, base: dict[str, str]
) -> None:
    """`manifests/overlays/local` on the process node local-cpu-0: RBAC, Secret and profiles for real.

    The rendered overlay is applied as is, except that the operator watches only this test's
    namespace (SYNTHLOOP_NAMESPACES), so it never touches other tests' objects.
    """
    lc = local_cluster
    rendered = lc.kubectl("kustomize", str(ROOT / "manifests" / "overlays" / "local")).stdout
    # The CRDs are applied by the fixture (PyYAML would turn kustomize's `1e-05` into a string).
    docs = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] != "CustomResourceDefinition"]
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("synthloop-operator-config"):
            doc["data"]["SYNTHLOOP_NAMESPACES"] = namespace
            doc["data"]["SYNTHLOOP_RESYNC_SECONDS"] = "5"
            doc["data"]["SYNTHLOOP_WAIT_SECONDS"] = "1"
    lc.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
               input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    try:
        lc.kubectl("rollout", "status", "-n", "synthloop-system", "deployment/synthloop-operator", "--timeout=120s",
                   timeout=150)
        (pod,) = [p for p in lc.kube.get("/api/v1/namespaces/synthloop-system/pods",
                                         labelSelector="app.kubernetes.io/name=synthloop-operator")["items"]
                  if p["metadata"].get("deletionTimestamp") is None]
        assert pod["spec"]["nodeName"] == "local-cpu-0"
        assert pod["spec"]["serviceAccountName"] == "synthloop-operator"
        apply(lc, namespace, cr("SynthRound", "deployed", {
            "generator": {"model": {"uri": base["model"]}, "backend": "transformers", "maxTokens": 8},
            "prompts": {"math": 2}, "backoffLimit": 0}))
        body = wait_phase(lc, operator, namespace, "SynthRound", "deployed", {"Succeeded"}, timeout=240)
        assert {o["name"] for o in body["status"]["outputs"]} >= {"data", "sft", "preference"}
        events = lc.kube.get(f"/api/v1/namespaces/{namespace}/events",
                             fieldSelector="involvedObject.name=deployed")["items"]
        assert {e["reason"] for e in events} >= {"JobCreated", "Succeeded"}
    finally:
        lc.kubectl("delete", "synthrounds", "--all", "-n", namespace, "--timeout=30s", check=False)
        lc.kubectl("delete", "deployment/synthloop-operator", "-n", "synthloop-system", "--timeout=60s", check=False)


def test_deleting_a_cr_removes_its_jobs_and_keeps_artifacts_unless_told_otherwise(
    local_cluster: LocalCluster, namespace: str, operator: Operator, base: dict[str, str]
) -> None:
    lc = local_cluster
    store = open_store()
    apply(lc, namespace,
          cr("SynthRound", "keep", {"generator": {"model": {"uri": base["model"]}, "backend": "transformers",
                                                  "maxTokens": 8}, "prompts": {"math": 2}}),
          cr("SynthRound", "drop", {"generator": {"model": {"promoted": f"never-{namespace[-6:]}"},
                                                  "backend": "transformers"}, "prompts": {"math": 2},
                                    "keepArtifacts": False}))
    operator.start()
    wait_for(lambda: [j for j in jobs(lc, namespace) if j["metadata"]["name"] == "keep-synth"], timeout=60,
             what=f"Job keep-synth\n{operator.logs()}")
    drop = wait_phase(lc, operator, namespace, "SynthRound", "drop", {"WaitingForInputs"}, timeout=60)
    assert "synthloop.io/artifacts" in drop["metadata"].get("finalizers", [])
    keep = get_cr(lc, namespace, "SynthRound", "keep")
    assert "synthloop.io/artifacts" not in keep["metadata"].get("finalizers", [])
    prefixes = {name: f"s3://{lc.bucket}/{namespace}/synthround/{name}/{get_cr(lc, namespace, 'SynthRound', name)['metadata']['uid']}/"
                for name in ("keep", "drop")}
    for prefix in prefixes.values():
        store.put_bytes(prefix + "synth/notes.txt", b"artifact")
    lc.kubectl("delete", "synthround", "keep", "drop", "-n", namespace, "--timeout=60s")
    wait_for(lambda: not jobs(lc, namespace), timeout=60, what="keep-synth garbage-collected")
    assert store.list(prefixes["drop"]) == []
    assert store.list(prefixes["keep"]) == [prefixes["keep"] + "synth/notes.txt"]
