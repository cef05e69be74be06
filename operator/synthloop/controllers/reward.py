"""The RewardTrain plugin: a base model and HelpSteer2 ratings in, one reward-training Job, a reward model out."""

from __future__ import annotations

from synthloop import capacity
from synthloop.api.v1alpha1.common import Evaluation, Promotion, Source
from synthloop.api.v1alpha1.reward import AttributeWeights, RewardTrainSpec
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
        """Memory per GPU: the whole batch of ratings (and of pairs, with a Bradley-Terry term) in one step."""
        gpus, gib = spec.resources.gpus_per_node, checks.profile.gpu_memory_gib
        if not gpus or not gib:
            return []
        dims = checks.producer_dims(spec.base_model)
        if dims is None:
            return []
        tp = spec.training
        problem = capacity.finetune_problem(
            dims, micro_batch=tp.global_batch_size, seq_length=spec.max_length or dims.seq_length,
            pairs=tp.bradley_terry_weight > 0 and spec.preference_data is not None, reference=False,
            gpu_memory_gib=gib, micro_batch_field="spec.training.globalBatchSize", vocab_logits=False,
            what=" with a regression head")
        return [str(problem)] if problem else []


PLUGIN = RewardTrainPlugin()
