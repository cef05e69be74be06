"""Will it fit? Memory per GPU of a training run and of a generator, before any GPU is spent.

Training (mixed precision AdamW, the ZeRO paper's accounting): bf16 weights 2 B/param, bf16
gradients 2 B/param, fp32 master weights plus two Adam moments 12 B/param, all divided by
the tensor-parallel size; ZeRO stage 1 shards the optimizer state over the data-parallel
ranks, stage 2 also the gradients, stage 3 also the weights (plus a gathered layer or two).
Activations follow Korthikanti et al. 2022 (sequence s, micro batch b, hidden h, tensor t):
``s*b*h*(10 + 24/t)`` bytes per layer with flash attention (no ``s^2`` term); with activation
checkpointing each layer keeps only its bf16 input (``2*s*b*h``) and one layer is live at a
time. The logits add ``6*s*b*V/t`` (bf16 logits and their fp32 loss). A run fits when the sum
stays under 90% of the GPU's memory (the CUDA context and allocator fragmentation take the rest).

Fine-tuning (AlignJob, RewardTrain): the same accounting with tensor 1 (their trainer is data
parallel only), ZeRO over nodes x GPUs as ``spec.parallelism.zeroStage`` says when
``spec.deepspeed`` (stage 0, a full replica per GPU, without it). A DPO or RPO step runs the
chosen and the rejected response of each pair through the model at once (twice the micro batch).
Its frozen reference costs nothing on top: the worker computes every pair's reference log-probs
in a no-grad pass before training and keeps only those numbers, so the reference is never
resident beside the gradients. With ``reference: previous`` that pass is the policy itself; with
``reference: base`` on a stage after the first, the worker loads the base model (an unsharded
bf16 copy, 2 B/param) and frees it before the policy is loaded, so that copy alone must fit a
GPU. A RewardTrain step puts each rank's share of the global batch (ceil(batch / ranks) ratings,
plus two sequences per pair with a Bradley-Terry term) through one forward and backward; its
head outputs five attributes: no vocabulary-sized logits.

Generation (vLLM): weights are 2 B/param in bf16 or 1 B/param with FP8 quantization, split over
the tensor-parallel group; they must leave room for the KV cache, so at most 80% of a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from synthloop.api.v1alpha1.pretrain import Architecture
from synthloop.models.presets import ModelDims, get_preset

GIB = 1024**3
TRAIN_USABLE = 0.9
GENERATE_USABLE = 0.8


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes per GPU, by part."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits: float
    gathered: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.gathered

    def describe(self) -> str:
        parts = ("weights", "gradients", "optimizer", "activations", "logits", "gathered")
        shown = ", ".join(f"{p} {getattr(self, p) / GIB:.1f}" for p in parts if getattr(self, p))
        return f"{self.total / GIB:.1f} GiB per GPU ({shown})"


def dims_of(arch: Architecture) -> ModelDims:
    """The decoder shape an ``Architecture`` names (a preset with overrides, or all fields)."""
    base = get_preset(arch.preset) if arch.preset else None
    given = {k: v for k, v in {
        "num_layers": arch.layers, "hidden_size": arch.hidden, "num_attention_heads": arch.heads,
        "num_kv_heads": arch.kv_heads, "ffn_hidden_size": arch.ffn_hidden,
        "seq_length": arch.seq_length, "vocab_size": arch.vocab}.items() if v is not None}
    if base is not None:
        return base.with_(**given)
    given.setdefault("ffn_hidden_size", 4 * int(given["hidden_size"]))
    return ModelDims(**given)


def training_memory(dims: ModelDims, *, tensor: int, data: int, zero_stage: int, micro_batch: int,
                    activation_checkpointing: bool) -> TrainingMemory:
    """Estimated memory per GPU of one training step."""
    params = dims.total_params() / tensor
    weights, grads, optim = 2.0 * params, 2.0 * params, 12.0 * params
    if zero_stage >= 1:
        optim /= data
    if zero_stage >= 2:
        grads /= data
    gathered = 0.0
    if zero_stage >= 3:
        weights /= data
        gathered = 2 * 2.0 * dims.layer_params() / tensor  # the layer in use and the one prefetched
    s, b, h = dims.seq_length, micro_batch, dims.hidden_size
    full_layer = s * b * h * (10 + 24 / tensor)
    if activation_checkpointing:
        activations = dims.num_layers * 2.0 * s * b * h + full_layer
    else:
        activations = dims.num_layers * full_layer
    logits = 6.0 * s * b * dims.vocab_size / tensor
    return TrainingMemory(weights, grads, optim, activations, logits, gathered)


def training_problem(dims: ModelDims, *, tensor: int, data: int, zero_stage: int, micro_batch: int,
                     activation_checkpointing: bool, gpu_memory_gib: float) -> str | None:
    """Why a run cannot fit (with the numbers and what would help), or None when it fits."""
    mem = training_memory(dims, tensor=tensor, data=data, zero_stage=zero_stage, micro_batch=micro_batch,
                          activation_checkpointing=activation_checkpointing)
    limit = TRAIN_USABLE * gpu_memory_gib * GIB
    if mem.total <= limit:
        return None
    hints = []
    if zero_stage < 3:
        hints.append("zeroStage: 3")
    if not activation_checkpointing:
        hints.append("activationCheckpointing: true")
    if micro_batch > 1:
        hints.append("a smaller microBatchSize")
    if tensor < 8:
        hints.append("a larger tensor")
    return (
        f"a {dims.total_params() / 1e9:.1f}B-parameter model with tensor {tensor}, data {data}, zeroStage "
        f"{zero_stage}, microBatchSize {micro_batch}, seqLength {dims.seq_length} needs about "
        f"{mem.describe()}; the profile's GPUs have {gpu_memory_gib:g} GiB "
        f"({TRAIN_USABLE:.0%} usable = {limit / GIB:.1f} GiB)"
        + (f"; try {', '.join(hints)}" if hints else "")
    )


def generator_problem(params_billions: float, *, tensor_parallel: int, quantization: str | None,
                      gpu_memory_gib: float, gpus_per_node: int) -> str | None:
    """Why a generator's weights cannot fit its tensor-parallel group, or None when they fit."""
    bytes_per_param = 1.0 if quantization == "fp8" else 2.0
    weights = params_billions * 1e9 * bytes_per_param
    per_gpu = weights / tensor_parallel
    limit = GENERATE_USABLE * gpu_memory_gib * GIB
    if per_gpu <= limit:
        return None
    dtype = "fp8" if quantization == "fp8" else "bf16"
    hints = []
    if quantization != "fp8" and params_billions * 1e9 / tensor_parallel <= limit:
        hints.append("quantization: fp8 (vLLM FP8 weights, half the bytes)")
    if tensor_parallel < gpus_per_node:
        hints.append(f"tensorParallel: {gpus_per_node}")
    return (
        f"generator weights of {params_billions:g}B parameters in {dtype} are {weights / 1e9:.0f} GB: "
        f"{per_gpu / GIB:.1f} GiB per GPU over tensorParallel {tensor_parallel}, more than "
        f"{GENERATE_USABLE:.0%} of a {gpu_memory_gib:g} GiB GPU ({limit / GIB:.1f} GiB, the rest is the KV cache)"
        + (f"; try {', '.join(hints)}" if hints else "")
    )


def finetune_memory(dims: ModelDims, *, sequences: int, seq_length: int, data: int = 1, zero_stage: int = 0,
                    activation_checkpointing: bool = False, vocab_logits: bool = True) -> TrainingMemory:
    """Memory per GPU of an AlignJob or RewardTrain step (see the module doc): ``sequences`` go
    through the model per GPU in one forward/backward (chosen and rejected together for a pair),
    ZeRO shards over the ``data`` ranks (nodes x GPUs); no tensor parallelism."""
    mem = training_memory(dims.with_(seq_length=seq_length), tensor=1, data=data, zero_stage=zero_stage,
                          micro_batch=sequences, activation_checkpointing=activation_checkpointing)
    return mem if vocab_logits else replace(mem, logits=0.0)


def reference_copy_bytes(dims: ModelDims) -> float:
    """An unsharded bf16 copy of a model: what ``reference: base`` loads on every GPU when it is
    not the stage's own starting model (see the module doc)."""
    return 2.0 * dims.total_params()


@dataclass(frozen=True)
class FinetuneProblem:
    """Why a fine-tuning run cannot fit: the field to change and the message with the numbers."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class FinetuneRun:
    """What sizes a fine-tuning step: the shape, the batch field and how it maps to sequences per GPU."""

    dims: ModelDims
    seq_length: int
    batch: int  # the value of ``batch_field``
    batch_field: str  # e.g. spec.microBatchSize
    sequences_per_unit: int  # sequences per GPU per unit of the batch field (2 for a pair)
    data: int  # data-parallel ranks: nodes x GPUs per node
    zero_stage: int  # the effective stage (0 without DeepSpeed)
    deepspeed: bool
    activation_checkpointing: bool
    per_gpu_share: bool = False  # the batch field is global: each GPU takes ceil(batch / data) of it
    vocab_logits: bool = True
    what: str = ""

    def sequences(self, batch: int) -> int:
        units = -(-batch // self.data) if self.per_gpu_share else batch
        return units * self.sequences_per_unit

    def memory(self, batch: int, *, zero_stage: int | None = None,
               activation_checkpointing: bool | None = None) -> TrainingMemory:
        return finetune_memory(
            self.dims, sequences=self.sequences(batch), seq_length=self.seq_length, data=self.data,
            zero_stage=self.zero_stage if zero_stage is None else zero_stage,
            activation_checkpointing=(self.activation_checkpointing if activation_checkpointing is None
                                      else activation_checkpointing),
            vocab_logits=self.vocab_logits)


def finetune_problem(run: FinetuneRun, *, gpu_memory_gib: float) -> FinetuneProblem | None:
    """None when the step fits; else the field to change and the estimate by part against the
    GPU's usable memory: the batch field when a smaller one fits (the largest that does), else
    ``spec.parallelism`` when ZeRO-3 with activation checkpointing fits, else the model."""
    limit = TRAIN_USABLE * gpu_memory_gib * GIB
    mem = run.memory(run.batch)
    if mem.total <= limit:
        return None
    short = run.batch_field.rsplit(".", 1)[-1]

    def largest(top: int, **how: Any) -> tuple[int, TrainingMemory] | None:
        """The largest batch up to ``top`` that fits (memory grows with the batch)."""
        return next(((b, m) for b in range(top, 0, -1) if (m := run.memory(b, **how)).total <= limit), None)

    best = largest(run.batch - 1)
    sharded = largest(run.batch, zero_stage=3, activation_checkpointing=True)
    if best is not None:
        field, hint = run.batch_field, f"try {short} {best[0]} ({best[1].total / GIB:.1f} GiB)"
    elif sharded is not None and (run.zero_stage < 3 or not run.activation_checkpointing):
        asks = [a for a, need in (("deepspeed: true", not run.deepspeed),
                                  ("parallelism.zeroStage: 3", run.zero_stage < 3),
                                  ("parallelism.activationCheckpointing: true", not run.activation_checkpointing),
                                  (f"{short} {sharded[0]}", sharded[0] < run.batch)) if need]
        field, hint = "spec.parallelism", f"try {', '.join(asks)} ({sharded[1].total / GIB:.1f} GiB)"
    else:
        floor = run.memory(1, zero_stage=3, activation_checkpointing=True)
        field = "spec.baseModel"
        hint = (f"even with zeroStage 3, activation checkpointing and {short} 1 it needs {floor.total / GIB:.1f} "
                "GiB: use more nodes, a smaller base model or a shorter maxLength")
    return FinetuneProblem(field, (
        f"a {run.dims.total_params() / 1e9:.2f}B-parameter model{run.what}, {short} {run.batch}, sequence "
        f"length {run.seq_length}, zeroStage {run.zero_stage}{'' if run.deepspeed else ' (deepspeed: false)'} over "
        f"{run.data} GPUs"
        f"{', activation checkpointing' if run.activation_checkpointing else ''} needs about "
        f"{mem.describe()}; the profile's GPUs have {gpu_memory_gib:g} GiB "
        f"({TRAIN_USABLE:.0%} usable = {limit / GIB:.1f} GiB); {hint}"))


def reference_problem(dims: ModelDims, *, gpu_memory_gib: float, field: str) -> FinetuneProblem | None:
    """``reference: base`` on a later stage: its unsharded bf16 copy alone must fit a GPU."""
    limit = TRAIN_USABLE * gpu_memory_gib * GIB
    need = reference_copy_bytes(dims)
    if need <= limit:
        return None
    return FinetuneProblem(field, (
        f"reference: base loads an unsharded bf16 copy of the {dims.total_params() / 1e9:.2f}B-parameter base "
        f"model on every GPU to score the pairs ({need / GIB:.1f} GiB), more than {limit / GIB:.1f} GiB usable "
        "of the profile's GPUs; use reference: previous (the stage's own start, scored by the sharded policy)"))
