"""PretrainJob: train a base model from scratch (the report's 8T + 1T token recipe)."""

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
    cel_list,
    ref_kind_rule,
)
from synthloop.api.v1alpha1.pod import PodSettings
from synthloop.api.v1alpha1.sharding import DeepSpeedSetting, Sharding

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
    ffn_hidden: int | None = Field(
        default=None, ge=8, description="MLP hidden size (340B: 73728; default 4x hidden without a preset)."
    )
    seq_length: int | None = Field(default=None, ge=16, description="Sequence length (340B: 4096).")
    vocab: int | None = Field(default=None, ge=64, description="Vocabulary size (340B: 256000).")


class Tokenizer(Model):
    """Train a SentencePiece-style tokenizer on the data, or reuse one."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [
            ref_kind_rule("source", catalog.MODEL_PRODUCERS, optional=True, what="the kinds that output a model"),
        ]}
    )

    train: bool = Field(default=True, description="Train a tokenizer from the pretraining data.")
    vocab_size: int = Field(default=512, ge=64, le=512000, description="Vocabulary size when training.")
    train_docs: int = Field(default=2000, ge=10, description="Documents sampled to train the tokenizer.")
    source: Source | None = Field(default=None, description="Reuse the tokenizer of this model instead.")


class BlendItem(Model):
    """One source of a data phase's blend."""

    source: str = Field(
        max_length=128,
        description=f"Data source: built-in {', '.join(catalog.BLEND_SOURCES)}, or a name whose "
        "<name>.jsonl / <name>.txt lies under spec.data.",
    )
    weight: float = Field(gt=0, description="Relative sampling weight.")


class DataPhase(Model):
    """One data phase: the pretraining blend, or a continued-training distribution."""

    name: str = Field(max_length=63, description="Phase name, e.g. pretrain, continued-1, continued-2.")
    tokens: int | None = Field(default=None, ge=1, description="Tokens to train in this phase.")
    steps: int | None = Field(default=None, ge=1, description="Optimizer steps (instead of tokens).")
    blend: list[BlendItem] = Field(description="Sources and their weights.", min_length=1, max_length=32)
    lr: float = Field(default=3e-3, gt=0, description="Peak learning rate.")
    min_lr: float = Field(default=3e-4, ge=0, description="Final learning rate.")
    decay: Literal["cosine", "linear", "steep", "constant"] = Field(
        default="cosine",
        description="LR decay; continued training uses 'steep' (steeper slope, not larger LR).",
    )
    warmup_steps: int = Field(default=0, ge=0, description="Linear warmup steps at the start of the phase.")

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.tokens) != has(self.steps)", "set exactly one of tokens or steps"),
                cel("self.minLr <= self.lr", "minLr must not exceed lr"),
            ]
        }
    )


class BatchRampStep(Model):
    """One step of the global batch ramp."""

    global_batch_size: int = Field(ge=1, description="Global batch (sequences).")
    tokens: int | None = Field(default=None, ge=1, description="Tokens at this size; omit on the last step.")


class Parallelism(Sharding):
    """How the model is split over GPUs: DeepSpeed ZeRO data parallelism with AutoTP tensor parallelism."""

    tensor: int = Field(default=1, ge=1, le=64, description="Tensor parallel size (DeepSpeed AutoTP), within a node.")
    pipeline: int = Field(
        default=1, ge=1, le=catalog.MAX_PIPELINE_PARALLEL,
        description="Pipeline parallel size. The trainer has no pipeline stages (ZeRO + AutoTP): only 1; "
        "shard the model with zeroStage 3 and tensor instead.",
    )
    data: int | None = Field(
        default=None, ge=1, description="Data parallel size; must equal GPUs / tensor (default: that)."
    )
    micro_batch_size: int = Field(default=1, ge=1, description="Sequences per forward pass per GPU.")


class Checkpointing(Model):
    """When checkpoints are written and whether a retry resumes from one."""

    every_steps: int = Field(default=100, ge=1, description="Write a checkpoint every N steps.")
    resume: bool = Field(default=True, description="Resume from the latest complete checkpoint on retry.")


class PretrainSettings(DeepSpeedSetting):
    """What the pretrain worker reads (the same fields on the spec and in the pod)."""

    model: Architecture = Field(description="Model architecture.")
    tokenizer: Tokenizer = Field(default_factory=Tokenizer, description="The tokenizer: trained here or reused.")
    phases: list[DataPhase] = Field(min_length=1, max_length=16, description="Data phases in order.")
    batch_ramp: list[BatchRampStep] = Field(
        default_factory=list, max_length=16, description="Global batch ramp (report: 768, 1536, 2304)."
    )
    global_batch_size: int = Field(default=4, ge=1, description="Global batch (sequences) when batchRamp is empty.")
    parallelism: Parallelism = Field(default_factory=Parallelism, description="How the model is split over GPUs.")
    weight_decay: float = Field(default=0.1, ge=0, description="AdamW weight decay.")
    grad_clip: float = Field(default=1.0, gt=0, description="Gradient norm clipping.")
    checkpoint: Checkpointing = Field(default_factory=Checkpointing, description="Checkpoints and resume.")
    seed: int = Field(default=0, ge=0, description="Seed of data order and initialisation.")
    log_every: int = Field(default=10, ge=1, description="Log the loss every N steps.")
    progress_every: int = Field(default=10, ge=1, description="Report progress to the operator every N steps.")


class PretrainJobSpec(CommonSpec, PretrainSettings, PodSettings):
    """Pretrain a base model: data phases, batch ramp, checkpoints, then evaluation and promotion."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.data) || self.phases.all(p, p.blend.all(b, b.source in "
                    f"{cel_list(catalog.BLEND_SOURCES)}))",
                    f"a blend source other than the built-in {', '.join(catalog.BLEND_SOURCES)} "
                    "needs spec.data (a directory with <source>.jsonl or <source>.txt)",
                    field_path=".phases",
                ),
                cel("!has(self.data) || !has(self.data.fromRef)",
                    "data: no kind outputs pretraining documents; give a uri (s3:// or file://)",
                    field_path=".data"),
                cel(
                    "!has(self.evaluation) || !has(self.evaluation.suites) || !self.evaluation.suites.exists("
                    "s, s.type == 'rewardWinRate' || (s.type == 'preferenceAccuracy'))",
                    "a PretrainJob has no reward model: rewardWinRate and preferenceAccuracy suites belong "
                    "on an AlignJob or a RewardTrain",
                    field_path=".evaluation.suites",
                ),
            ]
        }
    )

    data: Source | None = Field(
        default=None,
        description="Directory with <source>.jsonl (or .txt) for each blend source that is not built in.",
    )
    evaluation: Evaluation = Field(
        default_factory=Evaluation, description="Evaluation of the trained model and the gates of its promotion."
    )
    promotion: Promotion | None = Field(default=None, description="Promote the model when every gate passes.")


class PretrainJob(Model):
    """A pretraining run: data phases, batch ramp, checkpoints, evaluation."""

    api_version: Literal["synthloop.io/v1alpha1"] = "synthloop.io/v1alpha1"
    kind: Literal["PretrainJob"] = "PretrainJob"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: PretrainJobSpec
    status: Status | None = None
