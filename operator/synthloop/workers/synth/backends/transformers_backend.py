"""Generation with transformers + torch: batched, left-padded, CPU or GPU.

Prompts are sorted by length before batching so a batch pads little, then results are put
back in input order. A prompt longer than the model's context keeps its last tokens (the
assistant header must survive), and generation stops at the turn token or ``</s>``.
"""

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
    from synthloop.models.io import LoadedModel


class TransformersBackend(GenerationBackend):
    def __init__(
        self,
        *,
        model: str | Any,
        batch_size: int = 16,
        store: ArtifactStore | None = None,
        cache_dir: str | None = None,
        dtype: str | None = None,
        device: str | None = None,
        num_threads: int | None = None,
        loaded: LoadedModel | None = None,
    ) -> None:
        """``loaded``: a model already in memory (the eval worker's, also scored by
        log-likelihood), generated from as it is instead of loading ``model`` again."""
        import torch

        from synthloop.models.io import load_model

        if loaded is None:
            try:
                loaded = load_model(model, store=store, cache_dir=cache_dir,
                                    dtype=getattr(torch, dtype) if dtype else None)
            except Exception as exc:  # transformers raises many kinds for a broken dir
                raise ModelLoadError(f"generator model {model!r} does not load: {type(exc).__name__}: {exc}") from exc
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        loaded_model: Any = loaded.model
        self.model: Any = loaded_model.to(self.device)
        self.tokenizer: Any = loaded.tokenizer
        self.batch_size = batch_size
        # Tiny models on a busy CPU run far faster on one thread than on a contended pool.
        self.num_threads = num_threads
        self.model_id = str(model)
        self.max_positions = int(getattr(self.model.config, "max_position_embeddings", 4096))
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids: list[int] = list(eos) if isinstance(eos, (list, tuple)) else [int(eos)]
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]

    def encode(self, conversation: Sequence[Message]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(list(conversation), add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def generate(
        self, conversations: Sequence[Sequence[Message]], *, sampling: Sampling
    ) -> list[list[Completion]]:
        import torch

        if not self.num_threads or self.device != "cpu":
            return self._generate(conversations, sampling)
        previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            return self._generate(conversations, sampling)
        finally:
            torch.set_num_threads(previous)

    def _generate(
        self, conversations: Sequence[Sequence[Message]], sampling: Sampling
    ) -> list[list[Completion]]:
        import torch

        encoded = [self.encode(c) for c in conversations]
        # Never let the completion budget squeeze the prompt below half the context.
        max_new = max(1, min(sampling.max_tokens, self.max_positions // 2))
        budget = self.max_positions - max_new
        encoded = [ids[-budget:] for ids in encoded]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[list[Completion]] = [[] for _ in encoded]
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(encoded[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                ids = encoded[i]
                input_ids[row, width - len(ids):] = torch.tensor(ids)
                mask[row, width - len(ids):] = 1
            kwargs: dict[str, Any] = {
                "max_new_tokens": max_new,
                "num_return_sequences": sampling.n,
                "pad_token_id": self.pad_id,
                "eos_token_id": self.eos_ids,
            }
            if sampling.greedy:
                kwargs["do_sample"] = False
            else:
                kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
            torch.manual_seed(sampling.seed + start)
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), **kwargs
                )
            new = out[:, width:].cpu()
            for row, i in enumerate(chunk):
                for k in range(sampling.n):
                    tokens = new[row * sampling.n + k].tolist()
                    stop = next((p for p, t in enumerate(tokens) if t in self.eos_ids), None)
                    body = tokens if stop is None else tokens[:stop]
                    body = [t for t in body if t != self.pad_id]
                    results[i].append(
                        Completion(
                            text=self.tokenizer.decode(body, skip_special_tokens=True),
                            prompt_tokens=len(encoded[i]),
                            completion_tokens=len(body),
                            finish_reason="stop" if stop is not None else "length",
                        )
                    )
        return results

    def close(self) -> None:
        del self.model
