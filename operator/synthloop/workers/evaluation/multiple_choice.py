"""Multiple-choice log-likelihood scoring with k-shot prompts (the lm-evaluation-harness way).

Each choice is scored as the summed log-probability of its continuation after the context; the
prediction is the argmax (``acc``), or the argmax of log-probability per character of the choice
(``acc_norm``, which removes the bias toward short choices). Task files are JSONL rows
``{"query", "choices", "gold"}`` (also ``question``/``answer``/``label`` spellings).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch

BUILTIN_TASKS = ("arithmetic", "colors")


@dataclass(frozen=True)
class MCItem:
    query: str
    choices: tuple[str, ...]
    gold: int


def parse_item(row: dict[str, Any], *, where: str) -> MCItem:
    query = row.get("query", row.get("question", row.get("context")))
    choices = row.get("choices", row.get("endings"))
    gold = row.get("gold", row.get("answer", row.get("label")))
    if not isinstance(query, str) or not isinstance(choices, list) or not choices:
        raise ValueError(f"{where}: expected query (str) and choices (non-empty list)")
    if isinstance(gold, str) and gold in choices:
        gold = choices.index(gold)
    if not isinstance(gold, int) or not 0 <= gold < len(choices):
        raise ValueError(f"{where}: gold {gold!r} is not an index into {len(choices)} choices")
    return MCItem(query=query, choices=tuple(str(c) for c in choices), gold=gold)


def parse_task(text: str, *, name: str) -> list[MCItem]:
    """Every line must parse: a task file with a bad line is rejected with its line number."""
    items = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"task {name} line {n}: not JSON ({exc})") from None
            items.append(parse_item(row, where=f"task {name} line {n}"))
    if not items:
        raise ValueError(f"task {name}: no items")
    return items


def builtin_task(name: str) -> list[MCItem]:
    if name not in BUILTIN_TASKS:
        raise ValueError(f"unknown builtin task {name!r}: expected one of {list(BUILTIN_TASKS)} "
                         "or an s3:// / file:// JSONL URI")
    text = resources.files("synthloop.workers.evaluation").joinpath(f"tasks/{name}.jsonl").read_text()
    return parse_task(text, name=name)


def few_shot_context(items: list[MCItem], index: int, k: int, *, seed: int) -> str:
    """``k`` other solved items (seeded, never the item itself), then the query."""
    pool = [j for j in range(len(items)) if j != index]
    shots = random.Random(f"{seed}:{index}").sample(pool, min(k, len(pool)))
    parts = [items[j].query + items[j].choices[items[j].gold] for j in shots]
    return "\n\n".join([*parts, items[index].query])


@torch.no_grad()
def continuation_logprob(model: Any, tokenizer: Any, context: str, continuation: str) -> float:
    """log p(continuation | context), tokenising the whole and scoring the continuation's tokens."""
    device = next(model.parameters()).device
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    full = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    # shared prefix: tokens of the continuation start where the context's tokens stop agreeing
    split = 0
    while split < min(len(ctx), len(full)) and ctx[split] == full[split]:
        split += 1
    split = max(1, min(split, len(full) - 1))
    max_len = int(model.config.max_position_embeddings)
    if len(full) > max_len:
        cut = len(full) - max_len
        full, split = full[cut:], max(1, split - cut)
    ids = torch.tensor([full], device=device)
    logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
    targets = ids[0, 1:]
    picked = logp.gather(1, targets.unsqueeze(1)).squeeze(1)
    return float(picked[split - 1:].sum())


def evaluate_task(model: Any, tokenizer: Any, items: list[MCItem], *, k_shot: int, seed: int,
                  limit: int | None = None) -> dict[str, float]:
    items_eval = items[:limit] if limit else items
    correct = correct_norm = 0
    for i, item in enumerate(items_eval):
        context = few_shot_context(items, i, k_shot, seed=seed)
        scores = [continuation_logprob(model, tokenizer, context, c) for c in item.choices]
        norm = [s / max(1, len(c)) for s, c in zip(scores, item.choices, strict=True)]
        correct += int(max(range(len(scores)), key=scores.__getitem__) == item.gold)
        correct_norm += int(max(range(len(norm)), key=norm.__getitem__) == item.gold)
    n = len(items_eval)
    return {"acc": correct / n, "acc_norm": correct_norm / n, "n": float(n)}
