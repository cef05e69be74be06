"""PretrainJob worker params: architecture, tokenizer, data phases, batch ramp, parallelism.

Mirrors ``PretrainJobSpec`` field for field, plus a few worker-only knobs (logging cadence,
optimizer settings, the batch size when there is no ramp).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from synthloop.workers.training.params import CamelModel, WorkerParams


class Architecture(CamelModel):
    """A preset, with explicit fields overriding it (all six are needed without a preset)."""

    preset: str | None = None
    layers: int | None = Field(default=None, ge=1)
    hidden: int | None = Field(default=None, ge=8)
    heads: int | None = Field(default=None, ge=1)
    kv_heads: int | None = Field(default=None, ge=1)
    ffn_hidden: int | None = Field(default=None, ge=8)
    seq_length: int | None = Field(default=None, ge=16)
    vocab: int | None = Field(default=None, ge=64)

    @model_validator(mode="after")
    def _preset_or_all(self) -> Architecture:
        if self.preset is None:
            missing = [n for n in ("layers", "hidden", "heads", "kv_heads", "seq_length", "vocab")
                       if getattr(self, n) is None]
            if missing:
                raise ValueError(f"model: set a preset or all explicit dims (missing {missing})")
        return self


class TokenizerSpec(CamelModel):
    train: bool = True
    vocab_size: int = Field(default=512, ge=64)
    #: The operator resolves a ``source`` reference into ``inputs["tokenizer"]``; kept for echo.
    source: dict[str, object] | None = None
    train_docs: int = Field(default=2000, ge=10, description="Documents sampled to train it.")


class BlendItem(CamelModel):
    source: str
    weight: float = Field(gt=0)


class DataPhase(CamelModel):
    name: str
    tokens: int | None = Field(default=None, ge=1)
    steps: int | None = Field(default=None, ge=1)
    blend: list[BlendItem] = Field(min_length=1)
    lr: float = Field(default=3e-3, gt=0)
    min_lr: float = Field(default=3e-4, ge=0)
    decay: Literal["cosine", "linear", "steep", "constant"] = "cosine"
    warmup_steps: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _budget(self) -> DataPhase:
        if (self.tokens is None) == (self.steps is None):
            raise ValueError(f"phase {self.name!r}: set exactly one of tokens or steps")
        if self.min_lr > self.lr:
            raise ValueError(f"phase {self.name!r}: minLr {self.min_lr} exceeds lr {self.lr}")
        return self


class BatchRampStep(CamelModel):
    global_batch_size: int = Field(ge=1)
    tokens: int | None = Field(default=None, ge=1)


class Parallelism(CamelModel):
    tensor: int = Field(default=1, ge=1)
    pipeline: int = Field(default=1, ge=1)
    data: int | None = Field(default=None, ge=1)
    zero_stage: int = Field(default=1, ge=0, le=3)
    micro_batch_size: int = Field(default=1, ge=1)


class Checkpointing(CamelModel):
    every_steps: int = Field(default=100, ge=1)
    resume: bool = True


def default_phases() -> list[DataPhase]:
    """The report's shape at toy scale: a blend, then two continued-training distributions.

    Sized for the CPU demo: 60 steps x 4 x 256 tokens is about a minute on 2 cores.
    """
    return [
        DataPhase(name="pretrain", steps=40, lr=3e-3, min_lr=3e-4, warmup_steps=5, blend=[
            BlendItem(source="english", weight=0.7), BlendItem(source="code", weight=0.15),
            BlendItem(source="arithmetic", weight=0.15)]),
        DataPhase(name="continued-1", steps=10, lr=1e-3, min_lr=0.0, decay="steep", blend=[
            BlendItem(source="english", weight=0.5), BlendItem(source="arithmetic", weight=0.5)]),
        DataPhase(name="continued-2", steps=10, lr=5e-4, min_lr=0.0, decay="steep", blend=[
            BlendItem(source="qa", weight=0.6), BlendItem(source="arithmetic", weight=0.4)]),
    ]


class PretrainParams(WorkerParams):
    dropped_fields = WorkerParams.dropped_fields | {"evaluation"}

    model: Architecture = Field(default_factory=lambda: Architecture(preset="tiny"))
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    phases: list[DataPhase] = Field(default_factory=default_phases, min_length=1)
    batch_ramp: list[BatchRampStep] = Field(default_factory=list)
    parallelism: Parallelism = Field(default_factory=Parallelism)
    checkpoint: Checkpointing = Field(default_factory=Checkpointing)
    seed: int = Field(default=0, ge=0)
    # worker-only
    global_batch_size: int = Field(default=4, ge=1, description="Used when batchRamp is empty.")
    weight_decay: float = Field(default=0.1, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    log_every: int = Field(default=10, ge=1)
    progress_every: int = Field(default=10, ge=1)
    deepspeed: bool = Field(default=True, description="Use DeepSpeed when importable on GPUs.")
