"""The RewardTrain plugin: a base model and HelpSteer2 ratings in, one reward-training Job, a reward model out."""

from __future__ import annotations

from synthloop import capacity
from synthloop.api.v1alpha1.common import Evaluation, Promotion, Source
from synthloop.api.v1alpha1.reward import AttributeWeights, RewardTrainSpec
from synthloop.api.v1alpha1.sharding import effective_zero_stage
from synthloop.builders import stages as S
from synthloop.builders.stages import StagePlan
from synthloop.controllers.plugin import Checks, KindPlugin, evaluation_of
from synthloop.models.presets import ModelDims


class RewardTrainPlugin(KindPlugin[RewardTrainSpec]):
    kind = "RewardTrain"
    spec_type = RewardTrainSpec

    def input_sources(self, spec: RewardTrainSpec) -> list[tuple[str, Source | None]]:
        return [("model", spec.base_model), ("data", spec.data), ("preference", spec.preference_data)]

    def evaluation(self, spec: RewardTrainSpec) -> Evaluation | None:
        return evaluation_of(spec.evaluation)

    def promotion(self, spec: RewardTrainSpec) -> Promotion | None:
        return spec.promotion

    def stages(self, spec: RewardTrainSpec, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
        return S.reward_stages(spec, prefix=prefix, inputs=inputs)

    def reward_weights(self, spec: RewardTrainSpec) -> AttributeWeights | None:
        """Its preference accuracy uses its own scalar reward."""
        return spec.weights

    def model_dims(self, spec: RewardTrainSpec, checks: Checks, depth: int = 0) -> ModelDims | None:
        return checks.producer_dims(spec.base_model, depth)

    def first_pass_problems(self, spec: RewardTrainSpec, checks: Checks) -> list[str]:
        """Memory per GPU: each rank's share of the global batch of ratings (and of pairs, with a
        Bradley-Terry term) in one step, ZeRO-sharded over nodes x GPUs."""
        gpus, gib = spec.resources.gpus_per_node, checks.profile.gpu_memory_gib
        if not gpus or not gib:
            return []
        dims = checks.producer_dims(spec.base_model)
        if dims is None:
            return []
        tp, par = spec.training, spec.parallelism
        pairs = tp.bradley_terry_weight > 0 and spec.preference_data is not None
        run = capacity.FinetuneRun(
            dims=dims, seq_length=spec.max_length or dims.seq_length, batch=tp.global_batch_size,
            batch_field="spec.training.globalBatchSize", sequences_per_unit=3 if pairs else 1,
            data=spec.resources.nodes * gpus, zero_stage=effective_zero_stage(par, spec), deepspeed=spec.deepspeed,
            activation_checkpointing=par.activation_checkpointing, per_gpu_share=True, vocab_logits=False,
            what=" with a regression head" + (" (ratings and pairs in one step)" if pairs else ""))
        problem = capacity.finetune_problem(run, gpu_memory_gib=gib)
        return [str(problem)] if problem else []


PLUGIN = RewardTrainPlugin()
