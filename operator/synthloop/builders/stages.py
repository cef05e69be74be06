"""The stages of each kind, in order: what each Job runs, reads and writes.

A run is a short pipeline of Jobs under one run prefix. Each stage writes under
``<prefix>/<stage>/`` and is done only when the manifests listed here verify, so the plan is
also what the operator checks. Inputs arrive resolved (role -> URI); stage outputs that feed
the next stage are known in advance (``<stage>/model/``), which keeps planning pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synthloop.api.v1alpha1.align import AlignJobSpec
from synthloop.api.v1alpha1.common import Evaluation, Resources
from synthloop.api.v1alpha1.pod import PodTemplate
from synthloop.api.v1alpha1.pretrain import PretrainJobSpec
from synthloop.api.v1alpha1.reward import AttributeWeights, RewardTrainSpec
from synthloop.api.v1alpha1.synth import SynthRoundSpec
from synthloop.api.worker import (
    AlignParams,
    EvalParams,
    PretrainParams,
    RewardParams,
    SynthParams,
    WorkerConfig,
)
from synthloop.artifacts.uris import join
from synthloop.builders.jobs import JobRequest, Owner

#: Tasks whose progress counts optimizer steps (rank 0 speaks for the gang).
TRAINING_TASKS = frozenset({"pretrain", "reward-train", "align"})
#: Tasks launched under torchrun with a rank per GPU: training, and eval (data parallel over
#: items). Synth keeps one process per pod, since vLLM's tensor parallelism takes the node's GPUs.
RANKED_TASKS = TRAINING_TASKS | {"eval"}


@dataclass(frozen=True)
class StagePlan:
    """One Job of a run."""

    stage: str  # status.stage and the job-name part: synth, merge, pretrain, sft-0, eval...
    task: str  # synthloop-worker task
    output: str  # the worker's output prefix
    manifests: tuple[str, ...]  # prefixes whose manifest.json must verify for the stage to be done
    inputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    pods: int = 1  # completions = parallelism (shards, or nodes)
    num_shards: int = 1
    rendezvous: bool = False
    gpus_per_pod: int = 8
    resume: bool = False

    @property
    def model_uri(self) -> str:
        """Where a training stage leaves its model (a Hugging Face-style directory)."""
        return join(self.output, "model") + "/"


def stage_prefix(prefix: str, stage: str) -> str:
    return join(prefix, stage) + "/"


def _only(inputs: dict[str, str], *roles: str) -> dict[str, str]:
    return {r: inputs[r] for r in roles if r in inputs}


def synth_stages(spec: SynthRoundSpec, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
    """Shards (an Indexed Job, one pod per shard), then the merge, sharing one output prefix.

    Shard ``i`` writes ``<out>/shards/<i:05d>/`` and the merge writes ``<out>/``: the merge
    reads the shards' directory, so both stages are given the same output.
    """
    out = stage_prefix(prefix, "synth")
    params = SynthParams.of(spec).wire()
    gpus = spec.resources.gpus_per_node
    ins = _only(inputs, "model", "reward_model", "documents")
    shard_manifests = tuple(join(out, "shards", f"{i:05d}") + "/" for i in range(spec.shards))
    return [
        StagePlan(stage="synth", task="synth", output=out, manifests=shard_manifests, inputs=ins,
                  params=params, pods=spec.shards, num_shards=spec.shards, gpus_per_pod=gpus),
        StagePlan(stage="merge", task="synth-merge", output=out, manifests=(out,), inputs=ins,
                  params=params, pods=1, num_shards=spec.shards, gpus_per_pod=0),
    ]


def _training(stage: str, task: str, *, prefix: str, inputs: dict[str, str], params: dict[str, Any],
              nodes: int, gpus: int, resume: bool) -> StagePlan:
    out = stage_prefix(prefix, stage)
    return StagePlan(stage=stage, task=task, output=out, manifests=(out,), inputs=inputs, params=params,
                     pods=nodes, rendezvous=nodes > 1, gpus_per_pod=gpus, resume=resume)


def pretrain_stages(spec: PretrainJobSpec, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
    res = spec.resources
    return [_training("pretrain", "pretrain", prefix=prefix, inputs=_only(inputs, "tokenizer", "data"),
                      params=PretrainParams.of(spec).wire(), nodes=res.nodes, gpus=res.gpus_per_node,
                      resume=spec.checkpoint.resume)]


def reward_stages(spec: RewardTrainSpec, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
    res = spec.resources
    return [_training("reward-train", "reward-train", prefix=prefix,
                      inputs=_only(inputs, "model", "data", "preference"),
                      params=RewardParams.of(spec).wire(), nodes=res.nodes, gpus=res.gpus_per_node, resume=True)]


def align_stages(spec: AlignJobSpec, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
    """One Job per stage; stage i starts from stage i-1's model (RPO iterations are the worker's)."""
    res = spec.resources
    plans: list[StagePlan] = []
    model = inputs.get("model", "")
    for i, stage in enumerate(spec.stages):
        ins = _only(inputs, "data", "sft", "preference", "reward_model")
        ins["model"] = model
        if "model" in inputs:
            ins["base_model"] = inputs["model"]
        plan = _training(f"{stage.type}-{i}", "align", prefix=prefix, inputs=ins,
                         params=AlignParams.of(spec, stage).wire(), nodes=res.nodes,
                         gpus=res.gpus_per_node, resume=True)
        plans.append(plan)
        model = plan.model_uri
    return plans


def eval_stage(evaluation: Evaluation, *, prefix: str, stage: str, model: str, inputs: dict[str, str],
               gpus: int, reward_weights: AttributeWeights | None = None, seed: int = 0) -> StagePlan:
    """An evaluation of ``model``: ``eval`` for the trained one, ``eval-parent``/``eval-baseline-N``
    for a reference model whose metrics are not known yet."""
    out = stage_prefix(prefix, stage)
    ins = {"model": model, **_only(inputs, "reward_model", "baseline_model", "preference", "tasks")}
    params = EvalParams.of(evaluation, seed=seed, preference_uri=inputs.get("preference"),
                           reward_weights=reward_weights).wire()
    return StagePlan(stage=stage, task="eval", output=out, manifests=(out,), inputs=ins,
                     params=params, pods=1, gpus_per_pod=gpus)


def job_request(plan: StagePlan, *, owner: Owner, job_name: str, spec_hash: str, image: str,
                backoff_limit: int, resources: Resources, resume_from: str | None = None,
                pod_template: PodTemplate | None = None) -> JobRequest:
    """The Job request of a stage: its worker config plus placement.

    Training stages always name their checkpoint directory in ``resume_from``: the config is
    per Job, so a retried pod gets the same document and resumes from the latest complete
    checkpoint there (the worker skips a checkpoint whose manifest does not verify).
    """
    config = WorkerConfig(
        task=plan.task,
        namespace=owner.namespace,
        kind=owner.kind,
        name=owner.name,
        uid=owner.uid,
        output=plan.output,
        inputs=dict(plan.inputs),
        params=dict(plan.params),
        shard_index=0,
        num_shards=plan.num_shards,
        resume_from=resume_from or ((join(plan.output, "checkpoints") + "/") if plan.resume else None),
        spec_hash=spec_hash,
        image=image,
        workdir="",
    )
    return JobRequest(job_name=job_name, stage=plan.stage, config=config, pods=plan.pods,
                      rendezvous=plan.rendezvous, distributed=plan.task in RANKED_TASKS,
                      gpus_per_pod=plan.gpus_per_pod,
                      backoff_limit=backoff_limit, resources=resources, pod_template=pod_template)
