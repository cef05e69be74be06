"""AlignJob: SFT, DPO and RPO stages in order, then evaluation, gates and promotion."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from synthloop.api.v1alpha1.common import (
    CommonSpec,
    Evaluation,
    Model,
    Promotion,
    Source,
    Status,
    cel,
)


class Stage(Model):
    """One alignment stage. Defaults follow the report's tables where they exist."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.type != 'rpo' || has(self.reference)",
                    "rpo stages need a reference policy (previous or base)",
                ),
                cel("self.type == 'sft' || has(self.beta)", "dpo and rpo stages need beta"),
            ]
        }
    )

    type: Literal["sft", "dpo", "rpo"] = Field(description="sft, dpo or rpo.")
    epochs: int = Field(default=1, ge=1, le=100)
    lr: float = Field(default=1e-5, gt=0, description="Learning rate (report: 1e-7..5e-7 at 340B).")
    global_batch_size: int = Field(default=16, ge=1, description="Report: 128 SFT, 256 DPO.")
    beta: float | None = Field(default=None, gt=0, description="KL strength (DPO 3e-4..3e-3; RPO 1e-3..1).")
    eta: float = Field(default=1.0, gt=0, description="RPO reward-gap scale.")
    sft_weight: float = Field(default=0.0, ge=0, description="Weight of SFT loss on chosen (1e-5..1e-3).")
    iterations: int = Field(default=1, ge=1, le=10, description="RPO iterations (report: 3).")
    reference: Literal["previous", "base"] | None = Field(
        default=None, description="Reference policy: previous (each iteration's start) or base."
    )


class AlignJobSpec(CommonSpec):
    base_model: Source = Field(description="The model to align.")
    data: Source = Field(description="The SynthRound (or artifact) with sft.jsonl and preference.jsonl.")
    reward_model: Source | None = Field(
        default=None, description="Reward model for RPO reward gaps and reward win rate."
    )
    parent: Source | None = Field(
        default=None,
        description="The model to beat for mustBeatParent (default: the data's generator).",
    )
    stages: list[Stage] = Field(min_length=1, max_length=16, description="Stages, run in order.")
    evaluation: Evaluation = Field(default_factory=Evaluation)
    promotion: Promotion | None = None
    seed: int = Field(default=0, ge=0)


class AlignJob(Model):
    """An alignment run: SFT, DPO and RPO stages, evaluation, gates and promotion."""

    api_version: Literal["synthloop.io/v1alpha1"] = "synthloop.io/v1alpha1"
    kind: Literal["AlignJob"] = "AlignJob"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: AlignJobSpec
    status: Status | None = None
