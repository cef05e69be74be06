"""AlignJob: SFT, DPO and RPO stages in order, then evaluation, gates and promotion."""

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


class Stage(Model):
    """One alignment stage (one Job). Defaults follow the report's tables where they exist."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.type != 'rpo' || has(self.reference)",
                    "rpo stages need a reference policy (previous or base)",
                    field_path=".reference",
                ),
                cel("self.type != 'sft' || !has(self.reference)",
                    "reference applies to dpo and rpo stages only", field_path=".reference"),
                cel("self.type == 'sft' || has(self.beta)", "dpo and rpo stages need beta",
                    field_path=".beta"),
                cel("self.type != 'sft' || !has(self.beta)",
                    "beta applies to dpo and rpo stages only (an sft stage has no KL term)",
                    field_path=".beta"),
                cel("self.type == 'rpo' || !has(self.iterations) || self.iterations == 1",
                    "iterations applies to rpo stages only: use several dpo stages to repeat dpo",
                    field_path=".iterations"),
            ]
        }
    )

    type: Literal["sft", "dpo", "rpo"] = Field(
        description="sft (supervised fine-tuning on sft.jsonl), dpo or rpo (on preference.jsonl)."
    )
    epochs: int = Field(default=1, ge=1, le=100, description="Passes over the stage's data.")
    lr: float = Field(default=1e-5, gt=0, description="Learning rate (report: 1e-7..5e-7 at 340B).")
    global_batch_size: int = Field(default=16, ge=1, description="Report: 128 SFT, 256 DPO.")
    beta: float | None = Field(
        default=None, gt=0, description="KL strength, dpo and rpo only (DPO 3e-4..3e-3; RPO 1e-3..1)."
    )
    eta: float = Field(default=1.0, gt=0, description="RPO reward-gap scale (rpo only).")
    sft_weight: float = Field(
        default=0.0, ge=0, description="Weight of an SFT loss on the chosen responses (1e-5..1e-3)."
    )
    iterations: int = Field(
        default=1, ge=1, le=10,
        description="RPO iterations (report: 3), each starting from the previous one; rpo only.",
    )
    reference: Literal["previous", "base"] | None = Field(
        default=None,
        description="Reference policy of dpo and rpo: previous (the stage's or iteration's start) or "
        "base (the AlignJob's baseModel); required by rpo, dpo defaults to previous.",
    )


class AlignSettings(DeepSpeedSetting):
    """What an align worker reads besides its stage (the same fields on the spec and in the pod)."""

    seed: int = Field(default=0, ge=0, description="Seed of data order and initialisation.")
    micro_batch_size: int = Field(
        default=4, ge=1, description="Sequences per forward pass per GPU (gradient accumulation fills the global batch)."
    )
    max_length: int | None = Field(
        default=None, ge=16, description="Truncate conversations to this many tokens (default: the model's context)."
    )
    max_malformed_fraction: float = Field(
        default=0.01, ge=0, le=1, description="Fail the stage if more than this fraction of data rows do not parse."
    )
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    parallelism: Sharding = Field(
        default_factory=Sharding,
        description="ZeRO sharding over nodes x GPUs (this trainer is data parallel only: no tensor or "
        "pipeline split).",
    )


class AlignJobSpec(CommonSpec, AlignSettings, PodSettings):
    """Align a model on a SynthRound's data: stages in order, then evaluation and promotion."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                ref_kind_rule("baseModel", catalog.MODEL_PRODUCERS, optional=False,
                              what="the kinds that output a model"),
                ref_kind_rule("data", catalog.DATA_PRODUCERS, optional=False,
                              what="the kind that outputs sft.jsonl and preference.jsonl"),
                ref_kind_rule("rewardModel", catalog.REWARD_PRODUCERS, optional=True,
                              what="the kind that outputs a reward model"),
                ref_kind_rule("parent", catalog.MODEL_PRODUCERS, optional=True,
                              what="the kinds that output a model"),
                cel(
                    "!has(self.evaluation) || !has(self.evaluation.suites) || "
                    "!self.evaluation.suites.exists(s, s.type == 'rewardWinRate') || has(self.rewardModel)",
                    "a rewardWinRate suite needs spec.rewardModel (the judge of the win rate)",
                    field_path=".rewardModel",
                ),
            ]
        }
    )

    base_model: Source = Field(description="The model to align (a PretrainJob, an AlignJob or a promotion).")
    data: Source = Field(description="The SynthRound (or artifact directory) with sft.jsonl and preference.jsonl.")
    reward_model: Source | None = Field(
        default=None, description="Reward model for RPO reward gaps and the reward win rate."
    )
    parent: Source | None = Field(
        default=None,
        description="The model to beat for mustBeatParent (default: the data's generator).",
    )
    stages: list[Stage] = Field(min_length=1, max_length=16, description="Stages, run in order.")
    evaluation: Evaluation = Field(
        default_factory=Evaluation, description="Evaluation of the aligned model and the gates of its promotion."
    )
    promotion: Promotion | None = Field(default=None, description="Promote the model when every gate passes.")


class AlignJob(Model):
    """An alignment run: SFT, DPO and RPO stages, evaluation, gates and promotion."""

    api_version: Literal["synthloop.io/v1alpha1"] = "synthloop.io/v1alpha1"
    kind: Literal["AlignJob"] = "AlignJob"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: AlignJobSpec
    status: Status | None = None
