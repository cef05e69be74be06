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
    WORKER_UID,
    Owner,
    Platform,
    build_job,
    build_service,
    rendezvous_port,
)
from synthloop.builders.names import OWNER_UID_LABEL, child_name, job_name
from synthloop.builders.profiles import BUILTIN, HardwareProfile, ProfileError, parse_profiles
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
    assert spec["backoffLimit"] == 0  # a gang: the operator's attempts retry it as a whole
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
    assert env["NNODES"] == "768" and env["MASTER_PORT"] == str(rendezvous_port(name))
    assert env["NODE_RANK"] == {"fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    # torchrun, a rank per GPU, static rendezvous on rank 0's Service name
    assert container["command"] == [
        "python", "-m", "synthloop.workers.runtime.launch", "--nnodes=768", "--nproc-per-node=8",
        "--max-restarts=0", "--node-rank=$(NODE_RANK)", "--master-addr=$(MASTER_ADDR)",
        "--master-port=$(MASTER_PORT)", "-m", "synthloop.workers.cli", "pretrain"]


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
    from synthloop.api.worker import SynthParams
    from synthloop.workers.synth.families.base import family_options

    cr = SynthRound.model_validate(example("synthround.yaml"))
    (plan, _) = synth_stages(cr.spec, prefix=PREFIX, inputs={})
    params = SynthParams.model_validate(plan.params)
    assert {k: o.count for k, o in family_options(params.prompts).items()} == {
        "openQA": 20000, "writing": 5000, "closedQA": 5000, "math": 20000, "python": 10000,
        "instructionFollowing": 20000, "twoTurn": 5000}
    assert params.dialogues.count == 10000 and params.reward_filter.threshold == 3.0
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
    """torchrun sets WORLD_SIZE/RANK per rank; a Job-wide value would be wrong for all but one."""
    cr, (plan,) = pretrain_768()
    env = env_of(build(plan, kind="PretrainJob", resources=cr.spec.resources))
    assert "WORLD_SIZE" not in env and "RANK" not in env
    from synthloop.workers.runtime.distributed import DistEnv

    dist = DistEnv.from_env({k: v for k, v in env.items() if isinstance(v, str)} | {"NODE_RANK": "3"})
    assert (dist.world_size, dist.rank) == (768, 3)


# -- failures, gangs, resources (issue 11) ------------------------------------------------

def _container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_every_job_fails_at_once_on_invalid_input_and_ignores_disruptions() -> None:
    from synthloop.workers.errors import EXIT_INVALID_INPUT

    cr = SynthRound.model_validate(example("synthround.yaml"))
    shards, merge = synth_stages(cr.spec, prefix=PREFIX, inputs={})
    for plan in (shards, merge):
        job = build(plan, kind="SynthRound", resources=cr.spec.resources)
        rules = job["spec"]["podFailurePolicy"]["rules"]
        assert rules == [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "In",
                                                  "values": [EXIT_INVALID_INPUT]}},
        ]
        assert job["spec"]["backoffLimit"] == 3  # shards retry one by one
        assert job["spec"]["podReplacementPolicy"] == "Failed"
        c = _container(job)
        assert (c["terminationMessagePath"], c["terminationMessagePolicy"]) == (
            "/dev/termination-log", "FallbackToLogsOnError")
        # synth keeps one process per pod: vLLM's tensor parallelism uses the node's GPUs
        assert c["command"] == ["synthloop-worker", plan.task]


def test_a_multi_node_stage_is_a_gang_any_pod_failure_fails_the_job() -> None:
    cr, (plan,) = pretrain_768()
    job = build(plan, kind="PretrainJob", resources=cr.spec.resources)
    assert job["spec"]["backoffLimit"] == 0  # attempts are the operator's
    rules = job["spec"]["podFailurePolicy"]["rules"]
    # a disrupted rank fails the attempt at once too, and the Job's condition records why
    assert rules[0]["action"] == "FailJob" and rules[0]["onPodConditions"][0]["type"] == "DisruptionTarget"
    assert rules[-1] == {"action": "FailJob", "onExitCodes": {"containerName": "worker", "operator": "NotIn",
                                                              "values": [0]}}


def test_single_node_training_runs_standalone_torchrun_and_keeps_pod_retries() -> None:
    cr = RewardTrain.model_validate(example("rewardtrain.yaml"))
    res = cr.spec.resources.model_copy(update={"nodes": 1, "gpus_per_node": 4})
    (plan,) = reward_stages(cr.spec.model_copy(update={"resources": res}), prefix=PREFIX,
                            inputs={"model": "s3://b/m/", "data": "s3://b/d.jsonl"})
    job = build(plan, kind="RewardTrain", resources=res)
    assert _container(job)["command"] == [
        "python", "-m", "synthloop.workers.runtime.launch", "--nnodes=1", "--nproc-per-node=4",
        "--max-restarts=0", "--standalone", "-m", "synthloop.workers.cli", "reward-train"]
    assert job["spec"]["backoffLimit"] == 3
    assert len(job["spec"]["podFailurePolicy"]["rules"]) == 2


def test_eval_runs_a_rank_per_gpu_under_torchrun() -> None:
    """Data-parallel eval: the eval worker shards its items across the ranks torchrun starts."""
    cr = AlignJob.model_validate(example("alignjob.yaml"))
    plan = eval_stage(cr.spec.evaluation, prefix=PREFIX, stage="eval", model="s3://b/m/", inputs={}, gpus=8)
    job = build(plan, kind="AlignJob", resources=cr.spec.resources)
    assert _container(job)["command"] == [
        "python", "-m", "synthloop.workers.runtime.launch", "--nnodes=1", "--nproc-per-node=8",
        "--max-restarts=0", "--standalone", "-m", "synthloop.workers.cli", "eval"]


def test_rendezvous_ports_are_per_job_and_in_range() -> None:
    from synthloop.builders.jobs import RENDEZVOUS_PORTS

    ports = {rendezvous_port(f"run-{i}-pretrain") for i in range(50)}
    assert len(ports) > 45 and all(RENDEZVOUS_PORTS[0] <= p < RENDEZVOUS_PORTS[1] for p in ports)
    assert rendezvous_port("a-pretrain") == rendezvous_port("a-pretrain")


def test_gpu_pods_are_guaranteed_and_the_merge_avoids_gpu_nodes() -> None:
    cr, (plan,) = pretrain_768()
    c = _container(build(plan, kind="PretrainJob", resources=cr.spec.resources))
    res = c["resources"]
    assert res["requests"] == res["limits"]  # Guaranteed QoS: every resource with limit = request
    assert (res["limits"]["cpu"], res["limits"]["memory"], res["limits"]["nvidia.com/gpu"]) == ("208", "1800Gi", "8")
    sr = SynthRound.model_validate(example("synthround.yaml"))
    _, merge = synth_stages(sr.spec, prefix=PREFIX, inputs={})
    job = build(merge, kind="SynthRound", resources=sr.spec.resources)
    pod = job["spec"]["template"]["spec"]
    c = _container(job)
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert c["resources"]["limits"] == {"cpu": "4", "memory": "16Gi"} == c["resources"]["requests"]
    assert pod["tolerations"] == []
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    # a node lacking any one of the DGX labels qualifies; a DGX node has them all and does not
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.count", "operator": "NotIn", "values": ["8"]}]},
                     {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "NotIn",
                                            "values": ["NVIDIA-H100-80GB-HBM3"]}]}]
    assert "nodeSelector" not in pod  # any non-GPU node, unless the profile names a CPU pool


def test_a_profile_can_name_the_cpu_pool_of_pods_without_gpus() -> None:
    profile = HardwareProfile.model_validate({"nodeSelector": {"nvidia.com/gpu.count": "8"},
                                              "noGpu": {"nodeSelector": {"pool": "cpu"}}})
    sr = SynthRound.model_validate(example("synthround.yaml"))
    shards, merge = synth_stages(sr.spec, prefix=PREFIX, inputs={})
    merge_pod = build(merge, kind="SynthRound", resources=sr.spec.resources, profile=profile)
    assert merge_pod["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "cpu"}
    shard_pod = build(shards, kind="SynthRound", resources=sr.spec.resources, profile=profile)
    assert "nodeSelector" not in shard_pod["spec"]["template"]["spec"]  # GPU pods follow the profile


def test_pods_run_as_the_worker_uid() -> None:
    cr, (plan,) = pretrain_768()
    pod = build(plan, kind="PretrainJob", resources=cr.spec.resources)["spec"]["template"]["spec"]
    sc = pod["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]) == (WORKER_UID,) * 3
