"""vLLM vs transformers generation on one GPU, on the same prompts (prints one JSON object).

Builds a small random-init Nemotron-architecture model and tokenizer in code (nothing is
downloaded), then generates the same prompts with the transformers backend (batched) and the
vLLM backend, each after a warm-up, and reports prompts/s, tokens/s and the vLLM/transformers
ratio. Without vllm (or without a GPU) it says so in the JSON and still measures transformers.
Takes under 3 minutes on an H100.

    python bench/gpu/synth_bench.py [--prompts 512] [--max-tokens 128] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synth_throughput import prompts


def build_model(out: Path, *, layers: int, hidden: int) -> Path:
    from synthloop.corpus import sample_texts
    from synthloop.models.build import build_model as build
    from synthloop.models.io import save_model
    from synthloop.models.presets import ModelDims
    from synthloop.models.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(sample_texts(n=2000, seed=0), vocab_size=4096)
    dims = ModelDims(num_layers=layers, hidden_size=hidden, num_attention_heads=hidden // 64,
                     num_kv_heads=max(1, hidden // 256), ffn_hidden_size=4 * hidden, seq_length=2048,
                     vocab_size=len(tokenizer))
    model = build(dims, vocab_size=len(tokenizer), seed=0)
    return save_model(model, tokenizer, out)


def run(backend: Any, convs: list[Any], *, max_tokens: int) -> dict[str, float]:
    from synthloop.workers.synth.backends.base import Sampling

    sampling = Sampling(max_tokens=max_tokens, temperature=0.0, top_p=1.0)
    backend.generate(convs[:8], sampling=sampling)
    start = time.perf_counter()
    out = backend.generate(convs, sampling=sampling)
    seconds = time.perf_counter() - start
    tokens = sum(c.completion_tokens for row in out for c in row)
    return {"seconds": round(seconds, 3), "prompts_per_s": len(convs) / seconds,
            "tokens_per_s": tokens / seconds, "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=1024)
    args = parser.parse_args()

    import torch

    result: dict[str, Any] = {"prompts": args.prompts, "max_tokens": args.max_tokens,
                              "model": {"layers": args.layers, "hidden": args.hidden},
                              "cuda": torch.cuda.is_available(),
                              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    convs = prompts(args.prompts)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_model(Path(tmp) / "model", layers=args.layers, hidden=args.hidden)
        from synthloop.workers.synth.backends.transformers_backend import TransformersBackend

        hf = TransformersBackend(model=str(model_dir), batch_size=args.batch_size,
                                 dtype="bfloat16" if result["cuda"] else None)
        result["transformers"] = run(hf, convs, max_tokens=args.max_tokens)
        hf.close()
        del hf
        if result["cuda"]:
            torch.cuda.empty_cache()
        try:
            import vllm  # noqa: F401
        except ImportError:
            result["vllm"] = "vllm is not installed: pip install 'synthloop[vllm]' on a GPU machine"
        else:
            if not result["cuda"]:
                result["vllm"] = "no CUDA GPU: vLLM needs one"
            else:
                from synthloop.workers.synth.backends.vllm_backend import VLLMBackend

                engine = VLLMBackend(model=str(model_dir), dtype="bfloat16", gpu_memory_utilization=0.5,
                                     max_model_len=2048)
                result["vllm"] = run(engine, convs, max_tokens=args.max_tokens)
                result["ratio_vllm_over_transformers_tokens_per_s"] = (
                    result["vllm"]["tokens_per_s"] / result["transformers"]["tokens_per_s"])
                result["ratio_vllm_over_transformers_prompts_per_s"] = (
                    result["vllm"]["prompts_per_s"] / result["transformers"]["prompts_per_s"])
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
