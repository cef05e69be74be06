"""DeepSpeed for the fine-tuning workers (align, reward-train): when to use it, its config, and
how their uneven data-parallel shares meet DeepSpeed's fixed micro-batch count.

Those workers give each rank any share of a global batch (``Engine(ddp=False)``, see
``run.py``). DeepSpeed expects every rank to run the same number of micro-batches per step
(ZeRO reduces gradients on every backward, a collective), so a rank with fewer runs filler
micro-batches weighted 0, and ``Engine.backward`` scales the pre-scaled shares back from
DeepSpeed's averaging: the step's gradient is the one-process one either way.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch

from synthloop.api.v1alpha1.sharding import DeepSpeedSetting, Sharding
from synthloop.workers.runtime.distributed import DistEnv, deepspeed_available, deepspeed_config

T = TypeVar("T")


def finetune_deepspeed(setting: DeepSpeedSetting, sharding: Sharding, *, device: torch.device, env: DistEnv,
                       micro_batch_size: int, grad_clip: float = 1.0) -> dict[str, Any] | None:
    """The DeepSpeed config when the spec asks for DeepSpeed and the pod can run it (CUDA and
    the deepspeed module); None: the plain path (a full replica per rank)."""
    if not setting.deepspeed or device.type != "cuda":
        return None
    if not deepspeed_available():
        from synthloop.workers.runtime.run import log

        log("deepspeed-unavailable", zero_stage=sharding.zero_stage, fallback="a full replica per GPU")
        return None
    # one accumulation step to start with; ``micro_batches`` sets the count of each global step
    return deepspeed_config(micro_batch_size=micro_batch_size, global_batch_size=micro_batch_size * env.world_size,
                            world_size=env.world_size, zero_stage=sharding.zero_stage, bf16=True,
                            grad_clip=grad_clip)


def zero3_loading(ds_config: dict[str, Any] | None) -> Any:
    """Keep the returned object alive while the model loads: with ZeRO-3, transformers then
    builds it partitioned (``deepspeed.zero.Init``) instead of a full copy per rank. None otherwise."""
    if ds_config is None or ds_config["zero_optimization"]["stage"] != 3:
        return None
    from transformers.integrations import HfDeepSpeedConfig

    return HfDeepSpeedConfig(ds_config)


def micro_batches(mine: list[list[T]], *, total: int, world_size: int, filler: list[T],
                  deepspeed: bool) -> list[tuple[list[T], float]]:
    """This rank's micro-batches of a global step with their weight: 1, then (DeepSpeed only)
    fillers weighted 0 up to ``steps_per_rank(total, world_size)``, the same count on every rank."""
    out = [(m, 1.0) for m in mine]
    if deepspeed:
        out += [(filler, 0.0)] * (steps_per_rank(total, world_size) - len(mine))
    return out


def steps_per_rank(total: int, world_size: int) -> int:
    """Micro-batches every rank runs when ``total`` are shared out (none when there are none)."""
    return -(-total // world_size)
