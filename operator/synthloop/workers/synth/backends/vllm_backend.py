"""Offline batched generation with vLLM (GPU; tensor parallel). vllm is imported here only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from synthloop.workers.synth.backends.base import (
    Completion,
    GenerationBackend,
    Message,
    ModelLoadError,
    Sampling,
)

if TYPE_CHECKING:
    from synthloop.artifacts.store import ArtifactStore


class VLLMBackend(GenerationBackend):
    def __init__(
        self,
        *,
        model: str,
        tensor_parallel: int = 1,
        store: ArtifactStore | None = None,
        cache_dir: str | None = None,
        dtype: str | None = None,
        gpu_memory_utilization: float = 0.85,
        **engine_kwargs: Any,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ModelLoadError(
                "generator.backend is 'vllm' but vllm is not installed in this image "
                "(use the synth image, or backend 'transformers')"
            ) from exc
        from synthloop.models.io import fetch_model_dir, load_tokenizer

        try:
            path = fetch_model_dir(model, store=store, cache_dir=cache_dir)
            self.tokenizer = load_tokenizer(str(path))
            self.llm = LLM(
                model=str(path),
                tensor_parallel_size=tensor_parallel,
                dtype=dtype or "auto",
                gpu_memory_utilization=gpu_memory_utilization,
                **engine_kwargs,
            )
        except Exception as exc:
            raise ModelLoadError(f"generator model {model!r} does not load in vLLM: {type(exc).__name__}: {exc}") from exc
        self.model_id = model

    def generate(
        self, conversations: Sequence[Sequence[Message]], *, sampling: Sampling
    ) -> list[list[Completion]]:
        from vllm import SamplingParams

        prompts = [
            self.tokenizer.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
            for c in conversations
        ]
        params = SamplingParams(
            n=sampling.n,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=1.0 if sampling.greedy else sampling.top_p,
            seed=sampling.seed,
            stop=["<extra_id_1>"],
        )
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            [
                Completion(
                    text=o.text,
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=len(o.token_ids),
                    finish_reason="length" if o.finish_reason == "length" else "stop",
                )
                for o in out.outputs
            ]
            for out in outputs
        ]

    def close(self) -> None:
        del self.llm
