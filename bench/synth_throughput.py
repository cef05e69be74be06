"""Throughput of the transformers generation backend: batched vs one prompt at a time.

Both runs use the same prompts, the same random-init model (built here, nothing downloaded)
and greedy decoding, in one process, so the ratio is independent of the machine. Prints
prompts/s and tokens/s of each and their ratio, then one JSON line.

    python bench/synth_throughput.py [--prompts 64] [--max-tokens 32] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from typing import Any


def prompts(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    from synthloop.problems import TEMPLATES, make_problem
    from synthloop.workers.synth.families.seeds import QUESTION_TEMPLATES, TOPICS

    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2:
            text = make_problem(rng.choice(list(TEMPLATES)), rng, 1)[0]
        else:
            text = rng.choice(QUESTION_TEMPLATES).format(topic=rng.choice(TOPICS))
        out.append([{"role": "user", "content": text}])
    return out


def measure(backend: Any, convs: list[list[dict[str, str]]], *, max_tokens: int) -> dict[str, float]:
    from synthloop.workers.synth.backends.base import Sampling

    sampling = Sampling(max_tokens=max_tokens, temperature=0.0, top_p=1.0, n=1)
    backend.generate(convs[:2], sampling=sampling)  # warm-up
    start = time.perf_counter()
    out = backend.generate(convs, sampling=sampling)
    seconds = time.perf_counter() - start
    tokens = sum(c.completion_tokens for row in out for c in row)
    return {"seconds": seconds, "prompts_per_s": len(convs) / seconds, "tokens_per_s": tokens / seconds,
            "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--preset", default="tiny", help="model preset (synthloop.models.presets)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()

    from synthloop.models.build import make_tiny_model
    from synthloop.workers.synth.backends.transformers_backend import TransformersBackend

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny_model(tmp, preset=args.preset, seed=0)
        convs = prompts(args.prompts)
        batched = TransformersBackend(model=str(model_dir), batch_size=args.batch_size, num_threads=args.threads)
        single = TransformersBackend(model=str(model_dir), batch_size=1, num_threads=args.threads)
        one = measure(single, convs, max_tokens=args.max_tokens)
        many = measure(batched, convs, max_tokens=args.max_tokens)
    result = {
        "preset": args.preset, "prompts": args.prompts, "max_tokens": args.max_tokens,
        "batch_size": args.batch_size, "device": batched.device,
        "one_at_a_time": one, "batched": many,
        "ratio_prompts_per_s": many["prompts_per_s"] / one["prompts_per_s"],
        "ratio_tokens_per_s": many["tokens_per_s"] / one["tokens_per_s"],
    }
    print(f"one at a time : {one['prompts_per_s']:8.2f} prompts/s {one['tokens_per_s']:9.1f} tokens/s")
    print(f"batched (bs={args.batch_size:<3}): {many['prompts_per_s']:8.2f} prompts/s {many['tokens_per_s']:9.1f} tokens/s")
    print(f"ratio batched/one: {result['ratio_prompts_per_s']:.2f}x prompts/s, {result['ratio_tokens_per_s']:.2f}x tokens/s")
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
