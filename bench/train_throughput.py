"""Training-step throughput of the tiny preset on the CPU (tokens/s), as ratios to baselines.

Measures, in one process and on the same batches:
  * the full training step the pretrain worker runs (sdpa attention, AdamW, grad clip),
  * baseline A: the same step with eager attention (transformers' reference implementation),
  * baseline B: forward only (no backward/optimizer) - the step's cost relative to inference,
  * the training step on one intra-op thread: on a shared, busy CPU (the local cluster runs
    several pods on 2 cores) one thread can beat the default pool - set OMP_NUM_THREADS=1 then.
Prints one JSON line. Ratios are the numbers to compare across machines; absolute tokens/s
depend on the CPU.

    python bench/train_throughput.py [--preset tiny] [--steps 10] [--batch 8] [--seq 256]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from synthloop.models.build import build_model
from synthloop.models.presets import get_preset
from synthloop.workers.training.losses import causal_lm_loss


def measure(model: torch.nn.Module, batches: list[torch.Tensor], *, train: bool) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4) if train else None
    tokens = 0
    for i, ids in enumerate(batches):
        if i == 1:  # first step warms up allocations
            start, tokens = time.perf_counter(), 0
        if train:
            loss = causal_lm_loss(model(input_ids=ids).logits, ids)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()  # type: ignore[union-attr]
            opt.zero_grad(set_to_none=True)  # type: ignore[union-attr]
        else:
            with torch.no_grad():
                model(input_ids=ids)
        tokens += ids.numel()
    return tokens / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=None)
    args = ap.parse_args()
    dims = get_preset(args.preset)
    seq = args.seq or dims.seq_length
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(6, dims.vocab_size, (args.batch, seq), generator=g)
               for _ in range(args.steps + 1)]
    results = {}
    threads = torch.get_num_threads()
    for name, impl, train in (("train_sdpa", "sdpa", True), ("train_eager", "eager", True),
                              ("forward_sdpa", "sdpa", False), ("train_sdpa_1thread", "sdpa", True)):
        torch.set_num_threads(1 if name.endswith("1thread") else threads)
        model = build_model(dims, seed=0)
        model.config._attn_implementation = impl
        model.train(train)
        results[name] = measure(model, batches, train=train)
    flops = dims.flops_per_token()
    print(json.dumps({
        "bench": "train_throughput", "device": "cpu", "threads": threads,
        "preset": args.preset, "params": dims.total_params(), "batch": args.batch, "seq": seq,
        "tokens_per_s": {k: round(v, 1) for k, v in results.items()},
        "ratio_sdpa_vs_eager": round(results["train_sdpa"] / results["train_eager"], 3),
        "ratio_train_vs_forward": round(results["train_sdpa"] / results["forward_sdpa"], 3),
        "ratio_1thread_vs_default": round(results["train_sdpa_1thread"] / results["train_sdpa"], 3),
        "achieved_gflops": round(results["train_sdpa"] * flops / 1e9, 2),
    }))


if __name__ == "__main__":
    main()
