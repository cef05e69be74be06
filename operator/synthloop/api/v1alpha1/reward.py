"""RewardTrain: a regression head over the five HelpSteer2 attributes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthloop.api.v1alpha1.common import CommonSpec, Evaluation, Model, Promotion, Source, Status

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


class AttributeWeights(Model):
    """Weights of the scalar reward: a weighted sum of the predicted attributes (each 0-4)."""

    helpfulness: float = 1.0
    correctness: float = 1.0
    coherence: float = 0.0
    complexity: float = 0.0
    verbosity: float = 0.0


class RewardTraining(Model):
    epochs: int = Field(default=2, ge=1, le=100)
    lr: float = Field(default=1e-3, gt=0)
    global_batch_size: int = Field(default=16, ge=1)
    bradley_terry_weight: float = Field(
        default=0.0, ge=0, description="Weight of an extra Bradley-Terry loss on preference pairs."
    )
    held_out_fraction: float = Field(default=0.1, ge=0, lt=1)


class RewardTrainSpec(CommonSpec):
    base_model: Source = Field(description="The model whose final layer is replaced by the regression head.")
    data: Source = Field(description="HelpSteer2-format JSONL: prompt, response and five attributes 0-4.")
    preference_data: Source | None = Field(default=None, description="Held-out preference pairs for accuracy.")
    weights: AttributeWeights = Field(default_factory=AttributeWeights)
    training: RewardTraining = Field(default_factory=RewardTraining)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    promotion: Promotion | None = None


class RewardTrain(Model):
    """A reward model: a regression head over the five HelpSteer2 attributes."""

    api_version: Literal["synthloop.io/v1alpha1"] = "synthloop.io/v1alpha1"
    kind: Literal["RewardTrain"] = "RewardTrain"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: RewardTrainSpec
    status: Status | None = None
