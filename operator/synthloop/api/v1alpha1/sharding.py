"""How a training run spreads its state over the GPUs: declared once for every training kind.

PretrainJob, RewardTrain and AlignJob train with the same runtime (``workers/runtime/run.py``):
DeepSpeed ZeRO on GPUs, plain PyTorch data parallelism (a full replica per GPU) otherwise. The
operator's capacity check (``synthloop.capacity``) reads these same fields.
"""

from __future__ import annotations

from pydantic import Field

from synthloop.api.v1alpha1.common import Model


class Sharding(Model):
    """DeepSpeed ZeRO sharding over the data-parallel ranks (nodes x GPUs per node)."""

    zero_stage: int = Field(
        default=1, ge=0, le=3,
        description="DeepSpeed ZeRO stage over the data-parallel ranks: 0 keeps a full replica per GPU, "
        "1 shards optimizer state, 2 also gradients, 3 also weights.",
    )
    activation_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass (keeps one layer input per layer)."
    )


class DeepSpeedSetting(Model):
    """Whether the trainer uses DeepSpeed."""

    deepspeed: bool = Field(
        default=True,
        description="Use DeepSpeed on GPUs, with the ZeRO stage of parallelism.zeroStage. False, or a pod "
        "without CUDA or the deepspeed module: plain PyTorch data parallelism, a full replica per GPU.",
    )


def effective_zero_stage(sharding: Sharding, setting: DeepSpeedSetting) -> int:
    """The ZeRO stage a GPU run gets: the spec's with DeepSpeed, none without it."""
    return sharding.zero_stage if setting.deepspeed else 0
