"""Eval worker params: the CR's evaluation suites plus generation settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from synthloop.workers.training.params import CamelModel, WorkerParams


class EvalSuite(CamelModel):
    type: Literal["multipleChoice", "ifeval", "rewardWinRate", "preferenceAccuracy"]
    tasks: list[str] = Field(default_factory=list)
    k_shot: int = Field(default=0, ge=0)
    limit: int | None = Field(default=None, ge=1)


def default_suites() -> list[EvalSuite]:
    return [EvalSuite(type="multipleChoice", tasks=["arithmetic", "colors"], limit=64),
            EvalSuite(type="ifeval", tasks=["synthetic"], limit=32)]


class EvalParams(WorkerParams):
    dropped_fields = WorkerParams.dropped_fields | {"gates"}

    suites: list[EvalSuite] = Field(default_factory=default_suites)
    max_new_tokens: int = Field(default=64, ge=1)
    batch_size: int = Field(default=8, ge=1)
    seed: int = Field(default=0, ge=0)
    reward_weights: dict[str, float] | None = None
