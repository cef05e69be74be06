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

Generation (vLLM): weights are 2 B/param in bf16 or 1 B/param with FP8 quantization, split over
the tensor-parallel group; they must leave room for the KV cache, so at most 80% of a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from synthloop.models.presets import ModelDims

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
