"""Greedy chat generation with the transformers backend (what the eval harness needs on a CPU)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from synthloop.models.tokenizer import stop_token_ids


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompts: Sequence[Sequence[dict[str, str]]], *,
             max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy responses to chat prompts (left-padded batches), decoded without special tokens."""
    device = next(model.parameters()).device
    stops = stop_token_ids(tokenizer)
    out: list[str] = []
    tokenizer.padding_side = "left"
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template([dict(m) for m in p], tokenize=False,
                                                   add_generation_prompt=True)
                     for p in prompts[i: i + batch_size]]
            enc = tokenizer(texts, add_special_tokens=False, return_tensors="pt", padding=True)
            enc = {k: v.to(device) for k, v in enc.items()}
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
            for row in ids[:, enc["input_ids"].shape[1]:]:
                toks = row.tolist()
                cut = next((k for k, t in enumerate(toks) if t in stops), len(toks))
                out.append(tokenizer.decode(toks[:cut], skip_special_tokens=True).strip())
    finally:
        tokenizer.padding_side = "right"
    return out
