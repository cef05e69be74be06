"""Process-group and DeepSpeed setup from the env the operator's Indexed Job provides.

Pod 0 is the rendezvous (``MASTER_ADDR``/``MASTER_PORT``); ``NNODES``/``NODE_RANK`` come from the
Job, and torchrun sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` per process. One process on a CPU
needs no process group and no DeepSpeed at all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DistEnv:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DistEnv:
        e = os.environ if env is None else env

        def num(name: str, default: int) -> int:
            raw = e.get(name, "")
            try:
                return int(raw) if raw else default
            except ValueError:
                raise ValueError(f"env {name}={raw!r}: expected an integer") from None

        nnodes = num("NNODES", 1)
        node_rank = num("NODE_RANK", num("JOB_COMPLETION_INDEX", 0))
        local_world = num("LOCAL_WORLD_SIZE", 1)
        world = num("WORLD_SIZE", nnodes * local_world)
        local_rank = num("LOCAL_RANK", 0)
        rank = num("RANK", node_rank * local_world + local_rank)
        if not 0 <= rank < world:
            raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
        return cls(world_size=world, rank=rank, local_rank=local_rank, nnodes=nnodes,
                   node_rank=node_rank, master_addr=e.get("MASTER_ADDR", "127.0.0.1"),
                   master_port=num("MASTER_PORT", 29500))


def data_parallel_size(*, world_size: int, tensor: int, pipeline: int) -> int:
    if world_size % (tensor * pipeline):
        raise ValueError(
            f"world size {world_size} is not divisible by tensor {tensor} x pipeline {pipeline}"
        )
    return world_size // (tensor * pipeline)


def deepspeed_config(
    *,
    micro_batch_size: int,
    global_batch_size: int,
    world_size: int,
    zero_stage: int = 1,
    bf16: bool = True,
    grad_clip: float = 1.0,
    tensor: int = 1,
    pipeline: int = 1,
) -> dict[str, Any]:
    """The DeepSpeed config for a parallelism spec; gradient accumulation fills the global batch.

    Tensor parallelism maps to DeepSpeed AutoTP (``tensor_parallel.autotp_size``); pipeline
    parallelism needs a PipelineModule and is rejected by the worker before it gets here.
    """
    dp = data_parallel_size(world_size=world_size, tensor=tensor, pipeline=pipeline)
    if global_batch_size % (micro_batch_size * dp):
        raise ValueError(
            f"global batch {global_batch_size} is not a multiple of micro batch {micro_batch_size}"
            f" x data parallel {dp}"
        )
    config: dict[str, Any] = {
        "train_batch_size": global_batch_size,
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": global_batch_size // (micro_batch_size * dp),
        "gradient_clipping": grad_clip,
        "zero_optimization": {"stage": zero_stage, "overlap_comm": True,
                              "contiguous_gradients": True},
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if zero_stage == 3:
        config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = True
    if tensor > 1:
        config["tensor_parallel"] = {"autotp_size": tensor}
    return config


def init_process_group(env: DistEnv) -> bool:
    """Join the job's process group when there is more than one process; True if joined."""
    if env.world_size <= 1:
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    os.environ.setdefault("MASTER_ADDR", env.master_addr)
    os.environ.setdefault("MASTER_PORT", str(env.master_port))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
    return True


def deepspeed_available() -> bool:
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        return False
    return True


def shard_range(total: int, *, index: int, shards: int) -> range:
    """Item indices of shard (or rank) ``index`` of ``shards``: contiguous, balanced,
    deterministic, so the shards in order are the items in order."""
    if shards < 1 or not 0 <= index < shards:
        raise ValueError(f"shard index {index} out of range for {shards} shard(s)")
    base, extra = divmod(total, shards)
    start = index * base + min(index, extra)
    return range(start, start + base + (1 if index < extra else 0))


def gather_lists(values: list[Any], env: DistEnv) -> list[Any]:
    """Every rank's ``values`` concatenated in rank order, on every rank (``all_gather_object``);
    ``values`` itself in a one-process run. With :func:`shard_range` slices this is the
    one-process list, so whatever is computed from it is the same as in one process."""
    if env.world_size <= 1:
        return list(values)
    import torch.distributed as dist

    parts: list[Any] = [None] * env.world_size
    dist.all_gather_object(parts, values)
    return [v for part in parts for v in part]
