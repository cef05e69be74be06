"""What every training worker does around its loop: device, optimizer engine, logs, outputs.

``Engine`` hides plain torch (one process, or DDP under torchrun) versus DeepSpeed so the
workers have one loop: ``engine.backward(loss)`` per micro-batch, ``engine.step(lr)`` per
global batch.

Two ways to be data parallel under torchrun. ``ddp=True`` (pretrain): DDP averages the
gradients in its backward hooks, so every rank runs the same number of equal-sized
micro-batches. ``ddp=False`` (reward-train, align): each rank takes any share of the global
batch, even none, and scales its losses by its share of the global batch's denominator;
``step`` then sums the gradients over the ranks (one all-reduce per step), which is the
one-process gradient exactly. That also serves losses with several forward passes per backward
(the reward model's ratings plus pairs), which DDP's hooks do not allow.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from synthloop.api.worker import WorkerConfig
from synthloop.artifacts.manifest import ArtifactRef, Manifest, report_progress, write_manifest
from synthloop.artifacts.store import ArtifactStore, ObjectInfo, sha256_file
from synthloop.artifacts.uris import join
from synthloop.workers.runtime.distributed import DistEnv, init_process_group

#: Dense bf16 peak per device, for MFU. Override with SYNTHLOOP_PEAK_FLOPS.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def quiet_transformers() -> None:
    """Progress bars and load reports are noise in pod logs."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def pick_device(env: DistEnv) -> torch.device:
    """The local GPU, else the CPU with its intra-op threads set by :func:`cpu_threads`."""
    if torch.cuda.is_available():
        return torch.device("cuda", env.local_rank)
    torch.set_num_threads(cpu_threads())
    return torch.device("cpu")


def cpu_threads() -> int:
    """Intra-op threads on a CPU: ``SYNTHLOOP_CPU_THREADS``, else ``OMP_NUM_THREADS``, else 1.

    The CPU path runs tiny models, usually several pods at once on a small shared machine (the
    local cluster); there one thread per process trains several times faster than a pool of
    threads spinning against each other (see bench/train_throughput.py).
    """
    import os

    for name in ("SYNTHLOOP_CPU_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                return max(1, int(raw))
            except ValueError:
                raise ValueError(f"env {name}={raw!r}: expected a positive integer") from None
    return 1


def peak_flops(device: torch.device) -> float | None:
    import os

    if os.environ.get("SYNTHLOOP_PEAK_FLOPS"):
        return float(os.environ["SYNTHLOOP_PEAK_FLOPS"])
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def log(event: str, **fields: Any) -> None:
    """One JSON line per event on stdout: what pod logs and tests read."""
    print(json.dumps({"event": event, **fields}, default=str), file=sys.stdout, flush=True)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    torch.manual_seed(seed)


class Engine:
    """Optimizer + gradient sync for one model; DeepSpeed when asked and possible."""

    def __init__(
        self, model: torch.nn.Module, *, lr: float, weight_decay: float, grad_clip: float,
        env: DistEnv, ds_config: dict[str, Any] | None = None, ddp: bool = True,
    ) -> None:
        self.env, self.grad_clip = env, grad_clip
        self.distributed = init_process_group(env)
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=lr,
            weight_decay=weight_decay, betas=(0.9, 0.95), eps=1e-8,
        )
        self.ds_engine: Any = None
        self.wrapped: torch.nn.Module = model
        if ds_config is not None:
            import deepspeed

            self.ds_engine, self.optimizer, _, _ = deepspeed.initialize(
                model=model, optimizer=self.optimizer, config=ds_config
            )
            self.wrapped = self.ds_engine
        elif self.distributed and ddp:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [env.local_rank] if torch.cuda.is_available() else None
            self.wrapped = DistributedDataParallel(model, device_ids=device_ids)
        self.module = model
        # gradients summed by ``step`` (see the module doc) rather than averaged by DDP hooks
        self.sum_gradients = self.distributed and not ddp and ds_config is None
        # DeepSpeed with pre-scaled shares: undo its 1/accumulation-steps and 1/world averaging
        self.share_losses = not ddp

    def __call__(self, **batch: Any) -> Any:
        return self.wrapped(**batch)

    def begin(self, lr: float, *, global_batch_size: int | None = None) -> None:
        """Start a global step at ``lr``; DeepSpeed applies it at its accumulation boundary."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.ds_engine is not None and global_batch_size is not None \
                and global_batch_size != self.ds_engine.train_batch_size():
            self.ds_engine.set_train_batch_size(global_batch_size)  # the batch ramp

    def backward(self, loss: torch.Tensor) -> None:
        """One micro-batch. Plain torch: ``loss`` is pre-scaled by the caller. DeepSpeed scales
        by its gradient-accumulation steps itself and steps at the boundary; with ``ddp=False``
        the caller's shares are scaled back so that the result is their sum, as without it
        (every rank must then run the same number of micro-batches: ``workers/runtime/sharded``)."""
        if self.ds_engine is not None:
            if self.share_losses:
                loss = loss * (self.ds_engine.gradient_accumulation_steps() * self.env.world_size)
            self.ds_engine.backward(loss)
            self.ds_engine.step()
        else:
            loss.backward()

    def step(self, lr: float) -> float:
        """Finish the global step: apply the accumulated gradients; returns the grad norm."""
        if self.ds_engine is not None:
            norm = self.ds_engine.get_global_grad_norm()
            return float(norm) if norm is not None else 0.0
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.sum_gradients:
            self._all_reduce_gradients()
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def _all_reduce_gradients(self, bucket_elements: int = 1 << 25) -> None:
        """Sum every trainable parameter's gradient over the ranks, in flat buckets (a rank
        whose share was empty contributes zeros)."""
        import torch.distributed as dist

        params = [p for p in self.module.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        bucket: list[torch.Tensor] = []
        size = 0
        for p in [*params, None]:
            if p is not None and (not bucket or size + p.numel() <= bucket_elements):
                bucket.append(p)
                size += p.numel()
                continue
            if bucket:
                flat = torch.cat([q.grad.reshape(-1) for q in bucket])  # type: ignore[union-attr]
                dist.all_reduce(flat)
                offset = 0
                for q in bucket:
                    n = q.numel()
                    q.grad.copy_(flat[offset: offset + n].view_as(q))  # type: ignore[union-attr]
                    offset += n
            bucket, size = ([p], p.numel()) if p is not None else ([], 0)

    def reset_optimizer(self) -> None:
        """Fresh AdamW moments and step counts (a new stage or RPO iteration), in place: a
        DeepSpeed engine keeps its (ZeRO-partitioned) optimizer, so it is not rebuilt."""
        base = getattr(self.optimizer, "optimizer", self.optimizer)  # ZeRO wraps the torch optimizer
        for state in base.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    value.zero_()
                elif key == "step":
                    state[key] = 0

    def all_sum(self, value: float) -> float:
        """``value`` summed over the ranks (a loss share to the global batch's loss)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        # on the model's device: NCCL reduces CUDA tensors only
        t = torch.tensor([value], dtype=torch.float64, device=next(self.module.parameters()).device)
        dist.all_reduce(t)
        return float(t)

    def full_state_dict(self) -> dict[str, Any] | None:
        """The consolidated weights when ZeRO-3 partitions them (a collective: call it on every
        rank); None when ``module`` already holds full weights."""
        if self.ds_engine is None or self.ds_engine.zero_optimization_stage() != 3:
            return None
        return dict(self.ds_engine._zero3_consolidated_16bit_state_dict())

    def barrier(self) -> None:
        if self.distributed or self.ds_engine is not None:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()

    def state_dict(self) -> dict[str, Any]:
        return dict(self.optimizer.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


class Run:
    """One worker invocation's I/O: inputs fetched from the store, outputs and the manifest."""

    def __init__(self, config: WorkerConfig, store: ArtifactStore, *, env: DistEnv) -> None:
        self.config, self.store, self.env = config, store, env
        self.inputs: list[ArtifactRef] = []
        self.outputs: list[ArtifactRef] = []
        self.started = time.monotonic()

    def uri(self, *parts: str) -> str:
        return join(self.config.output, *parts)

    def already_finished(self) -> bool:
        """A retried pod whose run already left a verified manifest does nothing again."""
        from synthloop.artifacts.manifest import ManifestError, verify_manifest

        try:
            verify_manifest(self.store, self.config.output, check_sha256=False)
        except ManifestError:
            return False
        log("already-finished", output=self.config.output)
        return True

    def fetch_text(self, role: str, *, uri: str | None = None) -> str:
        """Read a single-file input (JSONL, gzipped JSONL or Parquet: ``training.records``) as
        JSONL text, recording its sha256 as an input of the run."""
        from synthloop.workers.runtime.records import as_jsonl_text

        uri = uri or self.config.input(role)
        local = self.config.scratch() / "inputs" / role
        self.store.get_file(uri, local)
        self.inputs.append(ArtifactRef(uri=uri, sha256=sha256_file(local), size=local.stat().st_size,
                                       role=role))
        return as_jsonl_text(local.read_bytes(), name=uri)

    def fetch_model(self, role: str) -> Path:
        from synthloop.models.io import fetch_model_dir

        uri = self.config.input(role)
        path = fetch_model_dir(uri, store=self.store, cache_dir=self.config.scratch() / "models")
        weights = path / "model.safetensors"
        pinned = weights if weights.is_file() else path / "tokenizer.json"
        digest = sha256_file(pinned) if pinned.is_file() else ""
        self.inputs.append(ArtifactRef(uri=uri, sha256=digest, role=role))
        return path

    def add_outputs(self, infos: list[ObjectInfo], *, role: str) -> None:
        self.outputs.extend(ArtifactRef.of(i, role=role) for i in infos)

    def upload_model(self, local_dir: Path, *, name: str = "model", role: str = "model") -> str:
        """Upload a model directory; rank 0's job (the ranks hold the same weights after DDP)."""
        uri = self.uri(name) + "/"
        if self.env.is_main:
            self.add_outputs(self.store.upload_dir(local_dir, uri), role=role)
        return uri

    def progress(self, *, done: int, total: int, **extra: Any) -> None:
        if self.env.is_main:
            report_progress(self.store, self.config.output, task=self.config.task,
                            index=self.config.shard_index, done=done, total=total, **extra)

    def finish(self, *, metrics: dict[str, float], counts: dict[str, int], **extra: Any) -> None:
        """Write ``metrics.json`` and then ``manifest.json`` — the manifest always last."""
        if not self.env.is_main:
            return
        info = self.store.put_json(self.uri("metrics.json"), {"metrics": metrics, "counts": counts})
        self.outputs.append(ArtifactRef.of(info, role="metrics"))
        cfg = self.config
        write_manifest(self.store, cfg.output, Manifest(
            task=cfg.task, namespace=cfg.namespace, kind=cfg.kind, name=cfg.name, uid=cfg.uid,
            inputs=self.inputs, outputs=self.outputs, metrics=metrics, counts=counts,
            spec_hash=cfg.spec_hash, image=cfg.image,
            extra={"wall_seconds": round(time.monotonic() - self.started, 3), **extra},
        ))
        log("finished", task=cfg.task, output=cfg.output, metrics=metrics, counts=counts)


def params_hash(params: Any) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
