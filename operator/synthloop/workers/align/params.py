"""AlignJob worker params: the ordered SFT / DPO / RPO stages."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synthloop.workers.training.params import CamelModel, WorkerParams


class Stage(CamelModel):
    type: Literal["sft", "dpo", "rpo"]
    epochs: int = Field(default=1, ge=1)
    lr: float = Field(default=1e-5, gt=0)
    global_batch_size: int = Field(default=16, ge=1)
    beta: float | None = Field(default=None, gt=0)
    eta: float = Field(default=1.0, gt=0)
    sft_weight: float = Field(default=0.0, ge=0)
    iterations: int = Field(default=1, ge=1)
    reference: Literal["previous", "base"] | None = None

    @model_validator(mode="after")
    def _needs(self) -> Stage:
        if self.type != "sft" and self.beta is None:
            raise ValueError(f"{self.type} stage: beta is required")
        if self.type != "rpo" and self.iterations != 1:
            raise ValueError(f"{self.type} stage: iterations applies to rpo stages only")
        return self


class AlignParams(WorkerParams):
    dropped_fields = WorkerParams.dropped_fields | {"evaluation"}

    stages: list[Stage] = Field(min_length=1)
    seed: int = Field(default=0, ge=0)
    micro_batch_size: int = Field(default=4, ge=1)
    max_length: int | None = Field(default=None, ge=16, description="Default: the model's context.")
    max_malformed_fraction: float = Field(default=0.01, ge=0, le=1)
    weight_decay: float = Field(default=0.0, ge=0)
