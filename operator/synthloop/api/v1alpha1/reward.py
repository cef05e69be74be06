"""RewardTrain: a regression head over the five HelpSteer2 attributes."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from synthloop import catalog
from synthloop.api.v1alpha1.common import (
    CommonSpec,
    Evaluation,
    Model,
    Promotion,
    Source,
    Status,
    cel,
    ref_kind_rule,
)
from synthloop.api.v1alpha1.pod import PodSettings
from synthloop.api.v1alpha1.sharding import DeepSpeedSetting, Sharding

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
#: The Nemotron-4-340B-Reward model card's weights of the scalar reward (HelpSteer2 paper,
#: tuned on RewardBench). ``models/reward.py`` uses these too.
DEFAULT_WEIGHTS: dict[str, float] = {
    "helpfulness": 0.3, "correctness": 0.74, "coherence": 0.46, "complexity": 0.47, "verbosity": -0.33,
}


class AttributeWeights(Model):
    """Weights of the scalar reward: a weighted sum of the predicted attributes (each 0-4).

    Default: the Nemotron-4-340B-Reward model card's weights.
    """

    helpfulness: float = Field(default=DEFAULT_WEIGHTS["helpfulness"], description="Weight of helpfulness.")
    correctness: float = Field(default=DEFAULT_WEIGHTS["correctness"], description="Weight of correctness.")
    coherence: float = Field(default=DEFAULT_WEIGHTS["coherence"], description="Weight of coherence.")
    complexity: float = Field(default=DEFAULT_WEIGHTS["complexity"], description="Weight of complexity.")
    verbosity: float = Field(default=DEFAULT_WEIGHTS["verbosity"], description="Weight of verbosity.")


class RewardTraining(Model):
    """Optimisation of the regression head (and the decoder under it)."""

    epochs: int = Field(default=2, ge=1, le=100, description="Passes over the ratings.")
    lr: float = Field(default=1e-3, gt=0, description="Learning rate.")
    global_batch_size: int = Field(default=16, ge=1, description="Ratings per optimizer step.")
    bradley_terry_weight: float = Field(
        default=0.0, ge=0, description="Weight of an extra Bradley-Terry loss on preference pairs."
    )
    held_out_fraction: float = Field(
        default=0.1, ge=0, lt=1, description="Fraction of the ratings held out for validation."
    )


class RewardSettings(DeepSpeedSetting):
    """What the reward-train worker reads (the same fields on the spec and in the pod)."""

    weights: AttributeWeights = Field(
        default_factory=AttributeWeights, description="Attribute weights of the scalar reward (default: the model card's)."
    )
    training: RewardTraining = Field(default_factory=RewardTraining, description="Training settings.")
    seed: int = Field(default=0, ge=0, description="Seed of data order, split and initialisation.")
    max_length: int | None = Field(
        default=None, ge=16, description="Truncate conversations to this many tokens (default: the model's context)."
    )
    max_malformed_fraction: float = Field(
        default=0.01, ge=0, le=1, description="Fail if more than this fraction of data rows do not parse."
    )
    parallelism: Sharding = Field(
        default_factory=Sharding,
        description="ZeRO sharding over nodes x GPUs (this trainer is data parallel only: no tensor or "
        "pipeline split).",
    )


class RewardTrainSpec(CommonSpec, RewardSettings, PodSettings):
    """Train a reward model on HelpSteer2-style ratings, then evaluate and promote it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                ref_kind_rule("baseModel", catalog.MODEL_PRODUCERS, optional=False,
                              what="the kinds that output a model"),
                cel("!has(self.data.fromRef)",
                    "data: no kind outputs HelpSteer2 ratings; give a uri (s3:// or file://)",
                    field_path=".data"),
                cel("!has(self.preferenceData) || !has(self.preferenceData.fromRef)",
                    "preferenceData: give a uri of a preference JSONL (s3:// or file://)",
                    field_path=".preferenceData"),
                cel(
                    "!has(self.evaluation) || !has(self.evaluation.suites) || !self.evaluation.suites.exists("
                    "s, s.type == 'preferenceAccuracy' && (!has(s.tasks) || size(s.tasks) == 0)) "
                    "|| has(self.preferenceData)",
                    "a preferenceAccuracy suite without tasks scores spec.preferenceData: set it or give tasks",
                    field_path=".preferenceData",
                ),
                cel(
                    "!has(self.evaluation) || !has(self.evaluation.suites) || "
                    "!self.evaluation.suites.exists(s, s.type == 'rewardWinRate')",
                    "rewardWinRate compares generations of a policy: it belongs on an AlignJob",
                    field_path=".evaluation.suites",
                ),
            ]
        }
    )

    base_model: Source = Field(description="The model whose final layer is replaced by the regression head.")
    data: Source = Field(description="HelpSteer2-format JSONL: prompt, response and five attributes 0-4.")
    preference_data: Source | None = Field(default=None, description="Held-out preference pairs for accuracy.")
    evaluation: Evaluation = Field(
        default_factory=Evaluation, description="Evaluation of the reward model and the gates of its promotion."
    )
    promotion: Promotion | None = Field(default=None, description="Promote the model when every gate passes.")


class RewardTrain(Model):
    """A reward model: a regression head over the five HelpSteer2 attributes."""

    api_version: Literal["synthloop.io/v1alpha1"] = "synthloop.io/v1alpha1"
    kind: Literal["RewardTrain"] = "RewardTrain"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: RewardTrainSpec
    status: Status | None = None
