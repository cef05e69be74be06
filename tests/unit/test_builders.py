"""Builders: CR model -> Job/Service manifests, checked field by field (no cluster needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthloop.api.v1alpha1 import AlignJob, PretrainJob, RewardTrain, SynthRound
from synthloop.api.worker import WorkerConfig
from synthloop.builders.jobs import (
    JOB_LABEL,
    KUEUE_QUEUE_LABEL,
    Owner,
    Platform,
    build_job,
    build_service,
)
from synthloop.builders.names import OWNER_UID_LABEL, child_name, job_name
from synthloop.builders.profiles import BUILTIN, ProfileError, parse_profiles
from synthloop.builders.stages import (
    StagePlan,
    align_stages,
    eval_stage,
    job_request,
    pretrain_stages,
    reward_stages,
    synth_stages,
)

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
PREFIX = "s3://synthloop/ns/kind/name/uid-1/"
PLATFORM = Platform(image="worker:test", s3_endpoint="minio:9000", s3_secret="synthloop-minio")


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return doc


def owner(kind: str, name: str = "run") -> Owner:
    return Owner(kind=kind, name=name, namespace="team-a", uid="0f0f-uid")


def build(plan: StagePlan, *, kind: str, resources: Any, profile: Any = None, name: str | None = None) -> dict[str, Any]:
    own = owner(kind)
    req = job_request(plan, owner=own, job_name=name or job_name(own.name, plan.stage), spec_hash="abc",
                      image="worker:test", backoff_limit=3, resources=resources)
    return build_job(own, PLATFORM, profile or BUILTIN.get(None), req)


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def pretrain_768() -> tuple[PretrainJob, list[StagePlan]]:
    cr = PretrainJob.model_validate(example("pretrainjob.yaml"))
    return cr, pretrain_stages(cr.spec, prefix=PREFIX, inputs={})


def test_pretrain_job_schedules_one_pod_per_dgx_node_with_gpus_shm_and_ranks() -> None:
    cr, (plan,) = pretrain_768()
    job = build(plan, kind="PretrainJob", resources=cr.spec.resources)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 768, 768)
    assert spec["backoffLimit"] == 3
    pod = spec["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    exprs = {e["key"]: (e["operator"], e["values"]) for e in terms[0]["matchExpressions"]}
    assert exprs == {
        "nvidia.com/gpu.product": ("In", ["NVIDIA-H100-80GB-HBM3"]),
        "nvidia.com/gpu.count": ("In", ["8"]),
    }
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"] == {JOB_LABEL: job["metadata"]["name"]}
    assert spec["template"]["metadata"]["labels"][JOB_LABEL] == job["metadata"]["name"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert container["resources"]["requests"]["nvidia.com/gpu"] == "8"
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    env = env_of(job)
    name = job["metadata"]["name"]
    assert env["MASTER_ADDR"] == f"{name}-0.{name}"
    assert pod["subdomain"] == name
    assert env["NNODES"] == "768" and env["MASTER_PORT"] == "29500"
    assert env["NODE_RANK"] == {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    assert container["command"] == ["synthloop-worker", "pretrain"]


def test_rdma_adds_the_resource_nccl_ib_env_and_only_then_ipc_lock() -> None:
    cr, (plan,) = pretrain_768()
    assert cr.spec.resources.rdma
    job = build(plan, kind="PretrainJob", resources=cr.spec.resources)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["rdma/rdma_shared_device_a"] == "1"
    env = env_of(job)
    assert env["NCCL_IB_DISABLE"] == "0" and env["NCCL_IB_HCA"] == "mlx5"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    plain = build(plan, kind="PretrainJob", resources=cr.spec.resources.model_copy(update={"rdma": False}))
    (c2,) = plain["spec"]["template"]["spec"]["containers"]
    assert "rdma/rdma_shared_device_a" not in c2["resources"]["limits"]
    assert "NCCL_IB_HCA" not in env_of(plain)
    assert c2["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                     "seccompProfile": {"type": "RuntimeDefault"}}
    pod = plain["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_kueue_queue_label_and_suspend_only_with_a_queue_and_priority_class() -> None:
    cr, (plan,) = pretrain_768()
    job = build(plan, kind="PretrainJob", resources=cr.spec.resources)
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "pretraining"
    assert job["spec"]["suspend"] is True
    res = cr.spec.resources.model_copy(update={"queue": None, "priority_class_name": "training-high"})
    job = build(plan, kind="PretrainJob", resources=res)
    assert KUEUE_QUEUE_LABEL not in job["metadata"]["labels"]
    assert "suspend" not in job["spec"]
    assert job["spec"]["template"]["spec"]["priorityClassName"] == "training-high"


def test_owner_reference_labels_and_s3_credentials_from_the_secret() -> None:
    cr, (plan,) = pretrain_768()
    job = build(plan, kind="PretrainJob", resources=cr.spec.resources)
    (ref,) = job["metadata"]["ownerReferences"]
    assert ref == {"apiVersion": "synthloop.io/v1alpha1", "kind": "PretrainJob", "name": "run",
                   "uid": "0f0f-uid", "controller": True, "blockOwnerDeletion": True}
    assert job["metadata"]["labels"][OWNER_UID_LABEL] == "0f0f-uid"
    env = env_of(job)
    assert env["AWS_ACCESS_KEY_ID"] == {"secretKeyRef": {"name": "synthloop-minio", "key": "accessKey"}}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"secretKeyRef": {"name": "synthloop-minio", "key": "secretKey"}}
    assert env["SYNTHLOOP_S3_ENDPOINT"] == "minio:9000"
    # No credential value is ever written into a manifest.
    assert "secretKey\":" not in json.dumps(job).replace("\"key\": \"secretKey\"", "")


def test_headless_service_resolves_rank_names() -> None:
    cr, (plan,) = pretrain_768()
    own = owner("PretrainJob")
    req = job_request(plan, owner=own, job_name="run-pretrain", spec_hash="x", image="i", backoff_limit=1,
                      resources=cr.spec.resources)
    svc = build_service(own, req)
    assert svc["metadata"]["name"] == "run-pretrain"
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == {JOB_LABEL: "run-pretrain", "batch.kubernetes.io/job-completion-index": "0"}


def test_single_node_training_needs_no_rendezvous_service() -> None:
    cr = RewardTrain.model_validate(example("rewardtrain.yaml"))
    res = cr.spec.resources.model_copy(update={"nodes": 1})
    (plan,) = reward_stages(cr.spec.model_copy(update={"resources": res}), prefix=PREFIX,
                            inputs={"model": "s3://b/m/", "data": "s3://b/d.jsonl"})
    assert not plan.rendezvous
    env = env_of(build(plan, kind="RewardTrain", resources=res))
    assert env["MASTER_ADDR"] == "127.0.0.1" and env["NNODES"] == "1"


def test_names_are_deterministic_and_shortened_with_a_hash() -> None:
    assert child_name("round-1", "synth") == "round-1-synth"
    assert child_name("align-1", "sft", 0) == "align-1-sft-0"
    long_a, long_b = "a" * 60 + "-x", "a" * 60 + "-y"
    na, nb = job_name(long_a, "eval"), job_name(long_b, "eval")
    assert na != nb and len(na) <= 52 and len(nb) <= 52
    assert na == job_name(long_a, "eval")
    assert len(child_name("b" * 70, "merge")) == 63


def test_worker_config_json_validates_and_leaves_per_pod_fields_out() -> None:
    cr = SynthRound.model_validate(example("synthround.yaml"))
    plans = synth_stages(cr.spec, prefix=PREFIX, inputs={"model": "s3://synthloop/models/mixtral/",
                                                          "reward_model": "s3://synthloop/rm/"})
    job = build(plans[0], kind="SynthRound", resources=cr.spec.resources)
    raw = env_of(job)["SYNTHLOOP_WORKER_CONFIG"]
    data = json.loads(raw)
    assert "shard_index" not in data and "workdir" not in data
    config = WorkerConfig.model_validate(data)
    assert config.task == "synth" and config.num_shards == 16
    assert config.output == PREFIX + "synth/"
    assert config.inputs == {"model": "s3://synthloop/models/mixtral/", "reward_model": "s3://synthloop/rm/"}
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (16, 16)
    merge = plans[1]
    assert (merge.task, merge.output, merge.manifests) == ("synth-merge", PREFIX + "synth/", (PREFIX + "synth/",))
    assert plans[0].manifests[3] == PREFIX + "synth/shards/00003/"


def test_synth_params_validate_with_the_synth_worker_model() -> None:
    from synthloop.workers.synth.params import SynthParams

    cr = SynthRound.model_validate(example("synthround.yaml"))
    (plan, _) = synth_stages(cr.spec, prefix=PREFIX, inputs={})
    params = SynthParams.model_validate(plan.params)
    assert params.family_counts() == {"openQA": 20000, "writing": 5000, "closedQA": 5000, "math": 20000,
                                      "python": 10000, "instructionFollowing": 20000, "twoTurn": 5000}
    assert params.dialogues.count == 10000 and params.reward_model.threshold == 3.0
    assert params.generator.backend == "vllm" and params.generator.tensor_parallel == 8
    assert params.shards == 16


def test_training_params_validate_with_each_worker_model() -> None:
    from synthloop.api.v1alpha1.reward import AttributeWeights
    from synthloop.api.worker import AlignParams, EvalParams, PretrainParams, RewardParams

    _, (pre,) = pretrain_768()
    p = PretrainParams.model_validate(pre.params)
    assert [ph.name for ph in p.phases] == ["pretrain", "continued-1", "continued-2"]
    assert p.parallelism.tensor == 8 and p.model.preset == "nemotron4-340b"

    rw = RewardTrain.model_validate(example("rewardtrain.yaml"))
    (rplan,) = reward_stages(rw.spec, prefix=PREFIX, inputs={"model": "m", "data": "d", "preference": "p"})
    assert RewardParams.model_validate(rplan.params).weights.correctness == 0.74
    assert rplan.inputs == {"model": "m", "data": "d", "preference": "p"}
    ev = eval_stage(rw.spec.evaluation, prefix=PREFIX, stage="eval", model="s3://x/model/",
                    inputs={"preference": "s3://b/pairs.jsonl"}, gpus=8,
                    reward_weights=AttributeWeights(helpfulness=1.0))
    evp = EvalParams.model_validate(ev.params)
    assert evp.suites[0].tasks == ["s3://b/pairs.jsonl"]  # the held-out pairs fill preferenceAccuracy

    aj = AlignJob.model_validate(example("alignjob.yaml"))
    inputs = {"model": "s3://b/base/", "data": "s3://b/round/", "sft": "s3://b/round/sft.jsonl",
              "preference": "s3://b/round/preference.jsonl", "reward_model": "s3://b/rm/"}
    plans = align_stages(aj.spec, prefix=PREFIX, inputs=inputs)
    assert [p.stage for p in plans] == ["sft-0", "dpo-1", "rpo-2"]
    for plan in plans:
        assert [s.type for s in AlignParams.model_validate(plan.params).stages] == [plan.stage.split("-")[0]]
    # Stage i starts from stage i-1's model; the first from the base.
    assert plans[0].inputs["model"] == "s3://b/base/"
    assert plans[1].inputs["model"] == PREFIX + "sft-0/model/"
    assert plans[2].inputs["model"] == PREFIX + "dpo-1/model/"
    assert all(p.resume and p.pods == 64 and p.rendezvous for p in plans)
    own = owner("AlignJob")
    req = job_request(plans[2], owner=own, job_name="x", spec_hash="h", image="i", backoff_limit=2,
                      resources=aj.spec.resources)
    assert req.config.resume_from == PREFIX + "rpo-2/checkpoints/"
    EvalParams.model_validate(eval_stage(aj.spec.evaluation, prefix=PREFIX, stage="eval", model="m",
                                         inputs=inputs, gpus=8).params)


def test_profile_file_with_extra_node_selector_pins_pods() -> None:
    text = """
default: local
profiles:
  local:
    nodeSelector: {kubernetes.io/hostname: local-dgx-0, nvidia.com/gpu.count: "8"}
    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
    gpusPerNode: 8
    shmSize: 1Gi
"""
    profiles = parse_profiles(text)
    cr, (plan,) = pretrain_768()
    job = build(plan, kind="PretrainJob", resources=cr.spec.resources, profile=profiles.get("local"))
    terms = job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
    assert {"key": "kubernetes.io/hostname", "operator": "In", "values": ["local-dgx-0"]} in terms
    with pytest.raises(KeyError, match="'dgx-h100' is not configured"):
        profiles.get("dgx-h100")
    with pytest.raises(ProfileError, match="default profile 'nope'"):
        parse_profiles("default: nope\nprofiles: {a: {}}\n")
    with pytest.raises(ProfileError, match="gpusPerNode"):
        parse_profiles("default: a\nprofiles: {a: {gpusPerNode: -1}}\n")


def test_manifests_profiles_file_parses_to_the_builtin() -> None:
    profiles = parse_profiles((ROOT / "manifests" / "base" / "profiles.yaml").read_text())
    assert profiles.get(None).model_dump() == BUILTIN.get("dgx-h100").model_dump()


def test_world_size_is_left_to_the_launcher() -> None:
    """A pod runs one process (synthloop-worker); WORLD_SIZE=8 would make it wait for 7 ranks."""
    cr, (plan,) = pretrain_768()
    env = env_of(build(plan, kind="PretrainJob", resources=cr.spec.resources))
    assert "WORLD_SIZE" not in env and "RANK" not in env
    from synthloop.workers.training.distributed import DistEnv

    dist = DistEnv.from_env({k: v for k, v in env.items() if isinstance(v, str)} | {"NODE_RANK": "3"})
    assert (dist.world_size, dist.rank) == (768, 3)
