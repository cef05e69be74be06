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

Fine-tuning (AlignJob, RewardTrain): their trainer keeps a full replica on every GPU (plain
data parallelism, no ZeRO or tensor parallelism), so the same 16 B/param and activations apply
with tensor 1 and nothing sharded. A DPO or RPO step runs the chosen and the rejected response of
each pair through the model at once (twice the micro batch) and counts a frozen bf16 reference
model (2 B/param): DPO trainers keep one resident, this one frees it once the reference
log-probs are computed, so the estimate is an upper bound there. A reward model's head outputs
five attributes: no vocabulary-sized logits.

Generation (vLLM): weights are 2 B/param in bf16 or 1 B/param with FP8 quantization, split over
the tensor-parallel group; they must leave room for the KV cache, so at most 80% of a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    reference: float = 0.0  # a frozen reference model (DPO, RPO)

    @property
    def total(self) -> float:
        return (self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.gathered
                + self.reference)

    def describe(self) -> str:
        parts = ("weights", "gradients", "optimizer", "activations", "logits", "gathered", "reference")
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


def finetune_memory(dims: ModelDims, *, micro_batch: int, seq_length: int, pairs: bool, reference: bool,
                    vocab_logits: bool = True) -> TrainingMemory:
    """Memory per GPU of an AlignJob or RewardTrain step: a full replica per GPU (see the module doc).

    ``pairs``: chosen and rejected go through together (DPO, RPO, a Bradley-Terry term);
    ``reference``: a frozen bf16 reference model is resident (DPO, RPO).
    """
    batch = micro_batch * (2 if pairs else 1)
    mem = training_memory(dims.with_(seq_length=seq_length), tensor=1, data=1, zero_stage=0, micro_batch=batch,
                          activation_checkpointing=False)
    return TrainingMemory(mem.weights, mem.gradients, mem.optimizer, mem.activations,
                          mem.logits if vocab_logits else 0.0, 0.0,
                          reference=2.0 * dims.total_params() if reference else 0.0)


@dataclass(frozen=True)
class FinetuneProblem:
    """Why a fine-tuning run cannot fit: the field to change and the message with the numbers."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def finetune_problem(dims: ModelDims, *, micro_batch: int, seq_length: int, pairs: bool, reference: bool,
                     gpu_memory_gib: float, micro_batch_field: str, vocab_logits: bool = True,
                     what: str = "") -> FinetuneProblem | None:
    """None when the step fits; else the field to change (the micro batch when a smaller one
    fits, with the largest that does; else the model) and the estimate by part against the
    GPU's usable memory."""
    mem = finetune_memory(dims, micro_batch=micro_batch, seq_length=seq_length, pairs=pairs, reference=reference,
                          vocab_logits=vocab_logits)
    limit = TRAIN_USABLE * gpu_memory_gib * GIB
    if mem.total <= limit:
        return None

    def fits(batch: int) -> TrainingMemory | None:
        m = finetune_memory(dims, micro_batch=batch, seq_length=seq_length, pairs=pairs, reference=reference,
                            vocab_logits=vocab_logits)
        return m if m.total <= limit else None

    # memory grows with the batch: the largest smaller one that fits, if any
    best = next(((b, m) for b in range(micro_batch - 1, 0, -1) if (m := fits(b)) is not None), None)
    short = micro_batch_field.rsplit(".", 1)[-1]
    field = micro_batch_field if best is not None else "spec.baseModel"
    hint = (f"try {short} {best[0]} ({best[1].total / GIB:.1f} GiB)" if best is not None
            else "the trainer keeps a full replica of the model on every GPU: use a smaller base model, "
                 "or a shorter maxLength")
    return FinetuneProblem(field, (
        f"a {dims.total_params() / 1e9:.2f}B-parameter model{what}, {short} {micro_batch}, sequence length "
        f"{seq_length} needs about {mem.describe()}; the profile's GPUs have {gpu_memory_gib:g} GiB "
        f"({TRAIN_USABLE:.0%} usable = {limit / GIB:.1f} GiB); {hint}"))
