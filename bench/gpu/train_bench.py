"""bf16 training throughput and MFU of a Nemotron-4-shaped model on one GPU (under 3 minutes).

Runs the pretrain worker's own training step (``Engine``: DeepSpeed ZeRO with the config
``deepspeed_config`` builds, when ``deepspeed`` imports; else plain torch with bf16 autocast and
AdamW) on random tokens, and measures in the same process a bf16 matmul as the baseline for
"achievable" FLOP/s. Prints one JSON line:

  tokens_per_s, model TFLOP/s, mfu (vs the nominal dense bf16 peak, H100 989 TFLOP/s),
  ratio_vs_matmul (model FLOP/s / measured matmul FLOP/s), engine (deepspeed | torch).

On a CPU it runs the tiny-test shape for a few steps so the script itself can be checked:

    python bench/gpu/train_bench.py                  # GPU: ~1.3B Nemotron-shaped, seq 2048
    python bench/gpu/train_bench.py --layers 4 --hidden 1024 --seq 1024 --steps 6
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from synthloop.models.build import build_model
from synthloop.models.presets import ModelDims, get_preset
from synthloop.workers.runtime.distributed import DistEnv, deepspeed_available, deepspeed_config
from synthloop.workers.runtime.run import Engine, peak_flops
from synthloop.workers.training.losses import causal_lm_loss


def matmul_flops(device: torch.device, *, n: int, dtype: torch.dtype, reps: int) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=16 if cuda else 2)
    ap.add_argument("--hidden", type=int, default=2048 if cuda else 64)
    ap.add_argument("--heads", type=int, default=16 if cuda else 4)
    ap.add_argument("--kv-heads", type=int, default=4 if cuda else 2)
    ap.add_argument("--seq", type=int, default=2048 if cuda else 64)
    ap.add_argument("--vocab", type=int, default=32000 if cuda else 512)
    ap.add_argument("--micro", type=int, default=4 if cuda else 2)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--steps", type=int, default=12 if cuda else 3)
    ap.add_argument("--warmup", type=int, default=3 if cuda else 1)
    ap.add_argument("--zero-stage", type=int, default=1)
    ap.add_argument("--no-deepspeed", action="store_true")
    args = ap.parse_args()

    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    dims = ModelDims(num_layers=args.layers, hidden_size=args.hidden,
                     num_attention_heads=args.heads, num_kv_heads=args.kv_heads,
                     ffn_hidden_size=4 * args.hidden, seq_length=args.seq, vocab_size=args.vocab)
    get_preset("tiny-test")  # presets import cleanly (the CLI's path)
    model = build_model(dims, seed=0).to(device)
    model.train()
    if cuda:
        model.gradient_checkpointing_enable()
    env = DistEnv.from_env()
    use_ds = cuda and not args.no_deepspeed and deepspeed_available()
    ds_cfg = None
    if use_ds:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29511")
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("LOCAL_RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        ds_cfg = deepspeed_config(micro_batch_size=args.micro,
                                  global_batch_size=args.micro * args.accum, world_size=1,
                                  zero_stage=args.zero_stage, bf16=True)
    engine = Engine(model, lr=1e-4, weight_decay=0.1, grad_clip=1.0, env=env, ds_config=ds_cfg)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if cuda and not use_ds
                else torch.autocast("cpu", enabled=False))
    g = torch.Generator().manual_seed(0)
    tokens_per_step = args.micro * args.accum * args.seq
    times: list[float] = []
    loss_value = 0.0
    for step in range(args.warmup + args.steps):
        sync(device)
        start = time.perf_counter()
        engine.begin(1e-4)
        for _ in range(args.accum):
            ids = torch.randint(6, args.vocab, (args.micro, args.seq), generator=g).to(device)
            with autocast:
                logits = engine(input_ids=ids).logits
            loss = causal_lm_loss(logits, ids)
            engine.backward(loss if use_ds else loss / args.accum)
            loss_value = float(loss.detach())
        engine.step(1e-4)
        sync(device)
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    step_time = sum(times) / len(times)
    tps = tokens_per_step / step_time
    flops = tps * dims.flops_per_token()
    # MFU counts model FLOPs (6N + attention); the checkpointing recompute is not credited
    peak = peak_flops(device)
    dtype = torch.bfloat16 if cuda else torch.float32
    mm = matmul_flops(device, n=8192 if cuda else 512, dtype=dtype, reps=20 if cuda else 5)
    print(json.dumps({
        "bench": "gpu_train", "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "engine": "deepspeed" if use_ds else "torch", "zero_stage": args.zero_stage if use_ds else None,
        "params": dims.total_params(), "layers": args.layers, "hidden": args.hidden, "seq": args.seq,
        "micro": args.micro, "accum": args.accum, "step_s": round(step_time, 4),
        "tokens_per_s": round(tps, 1), "model_tflops": round(flops / 1e12, 3),
        "mfu": round(flops / peak, 4) if peak else None,
        "matmul_tflops": round(mm / 1e12, 3), "ratio_vs_matmul": round(flops / mm, 4),
        "gradient_checkpointing": cuda, "loss": round(loss_value, 4),
        "max_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
    }))


if __name__ == "__main__":
    main()
