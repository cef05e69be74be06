"""RewardTrain worker params: attribute weights of the scalar reward and the training knobs."""

from __future__ import annotations

from pydantic import Field

from synthloop.workers.training.params import CamelModel, WorkerParams


class AttributeWeights(CamelModel):
    helpfulness: float = 1.0
    correctness: float = 1.0
    coherence: float = 0.0
    complexity: float = 0.0
    verbosity: float = 0.0


class RewardTraining(CamelModel):
    epochs: int = Field(default=2, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    global_batch_size: int = Field(default=16, ge=1)
    bradley_terry_weight: float = Field(default=0.0, ge=0)
    held_out_fraction: float = Field(default=0.1, ge=0, lt=1)


class RewardParams(WorkerParams):
    dropped_fields = WorkerParams.dropped_fields | {"evaluation"}

    weights: AttributeWeights = Field(default_factory=AttributeWeights)
    training: RewardTraining = Field(default_factory=RewardTraining)
    seed: int = Field(default=0, ge=0)
    max_length: int | None = Field(default=None, ge=16, description="Default: the model's context.")
    max_malformed_fraction: float = Field(default=0.01, ge=0, le=1)
