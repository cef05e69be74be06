"""PretrainJob: train a base model from scratch (the report's 8T + 1T token recipe)."""

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

PRESETS = ("nemotron4-340b", "tiny", "tiny-test")


class Architecture(Model):
    """A Nemotron-4 decoder: RoPE, GQA, squared-ReLU MLP, no biases, untied embeddings."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.preset) || (has(self.layers) && has(self.hidden) && has(self.heads) "
                    "&& has(self.kvHeads) && has(self.seqLength) && has(self.vocab))",
                    "set a preset or all of layers, hidden, heads, kvHeads, seqLength, vocab",
                ),
                cel(
                    "!has(self.heads) || !has(self.kvHeads) || self.heads % self.kvHeads == 0",
                    "heads must be a multiple of kvHeads (grouped-query attention)",
                ),
            ]
        }
    )

    preset: Literal["nemotron4-340b", "tiny", "tiny-test"] | None = Field(
        default=None, description="Named architecture; explicit fields override it."
    )
    layers: int | None = Field(default=None, ge=1, description="Transformer layers (340B: 96).")
    hidden: int | None = Field(default=None, ge=8, description="Hidden size (340B: 18432).")
    heads: int | None = Field(default=None, ge=1, description="Attention heads (340B: 96).")
    kv_heads: int | None = Field(default=None, ge=1, description="Key/value heads for GQA (340B: 8).")
    seq_length: int | None = Field(default=None, ge=16, description="Sequence length (340B: 4096).")
    vocab: int | None = Field(default=None, ge=64, description="Vocabulary size (340B: 256000).")


class Tokenizer(Model):
    """Train a SentencePiece-style tokenizer on the data, or reuse one."""

    train: bool = Field(default=True, description="Train a tokenizer from the pretraining data.")
    vocab_size: int = Field(default=512, ge=64, le=512000, description="Vocabulary size when training.")
    source: Source | None = Field(default=None, description="Reuse the tokenizer of this model instead.")


class BlendItem(Model):
    source: str = Field(description="Named data source, e.g. english, multilingual, code, qa.")
    weight: float = Field(gt=0, description="Relative sampling weight.")


class DataPhase(Model):
    """One data phase: the pretraining blend, or a continued-training distribution."""

    name: str = Field(description="Phase name, e.g. pretrain, continued-1, continued-2.")
    tokens: int | None = Field(default=None, ge=1, description="Tokens to train in this phase.")
    steps: int | None = Field(default=None, ge=1, description="Optimizer steps (instead of tokens).")
    blend: list[BlendItem] = Field(description="Sources and their weights.", min_length=1)
    lr: float = Field(default=3e-3, gt=0, description="Peak learning rate.")
    min_lr: float = Field(default=3e-4, ge=0, description="Final learning rate.")
    decay: Literal["cosine", "linear", "steep"] = Field(
        default="cosine", description="LR decay; continued training uses 'steep' (steeper slope, not larger LR)."
    )
    warmup_steps: int = Field(default=0, ge=0)

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.tokens) != has(self.steps)", "set exactly one of tokens or steps"),
                cel("self.minLr <= self.lr", "minLr must not exceed lr"),
            ]
        }
    )


class BatchRampStep(Model):
    global_batch_size: int = Field(ge=1, description="Global batch (sequences).")
    tokens: int | None = Field(default=None, ge=1, description="Tokens at this size; omit on the last step.")


class Parallelism(Model):
    tensor: int = Field(default=1, ge=1, le=64)
    pipeline: int = Field(default=1, ge=1, le=256)
    data: int | None = Field(default=None, ge=1, description="Data parallel size (default: what is left).")
    zero_stage: int = Field(default=1, ge=0, le=3, description="DeepSpeed ZeRO stage.")
    micro_batch_size: int = Field(default=1, ge=1)


class Checkpointing(Model):
    every_steps: int = Field(default=100, ge=1, description="Write a checkpoint every N steps.")
    resume: bool = Field(default=True, description="Resume from the latest complete checkpoint on retry.")


class PretrainJobSpec(CommonSpec):
    model: Architecture = Field(description="Model architecture.")
    tokenizer: Tokenizer = Field(default_factory=Tokenizer)
    phases: list[DataPhase] = Field(min_length=1, description="Data phases in order.")
    batch_ramp: list[BatchRampStep] = Field(
        default_factory=list, description="Global batch ramp (report: 768, 1536, 2304)."
    )
    parallelism: Parallelism = Field(default_factory=Parallelism)
    checkpoint: Checkpointing = Field(default_factory=Checkpointing)
    seed: int = Field(default=0, ge=0)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    promotion: Promotion | None = None


class PretrainJob(Model):
    """A pretraining run: data phases, batch ramp, checkpoints, evaluation."""

    api_version: Literal["synthloop.io/v1alpha1"] = "synthloop.io/v1alpha1"
    kind: Literal["PretrainJob"] = "PretrainJob"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: PretrainJobSpec
    status: Status | None = None
