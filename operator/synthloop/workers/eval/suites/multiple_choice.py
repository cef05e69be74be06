"""Multiple-choice log-likelihood scoring with k-shot prompts, as lm-evaluation-harness does it.

A request is ``(context, target_delimiter + choice)``: the context is the k-shot examples
(each ``query + target_delimiter + gold choice``, joined by a blank line) then the query;
``target_delimiter`` is ``" "`` unless a row sets it. Before tokenising, trailing whitespace of
the context moves to the front of the continuation, and the continuation's tokens are those of
``context + continuation`` after the context's own tokens (lm-eval's ``_encode_pair``). The
prediction is the argmax of the summed log-probability (``acc``), or of log-probability per
character of the choice without the delimiter (``acc_norm``). Task files are JSONL rows
``{"query", "choices", "gold"}`` (also ``question``/``answer``/``label`` spellings), choices
written as lm-eval's ``doc_to_choice`` gives them (no leading space).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch

from synthloop.workers.eval.suites.jsonl import parse_jsonl

BUILTIN_TASKS = ("arithmetic", "colors")


TARGET_DELIMITER = " "
FEWSHOT_DELIMITER = "\n\n"


@dataclass(frozen=True)
class MCItem:
    query: str
    choices: tuple[str, ...]
    gold: int
    target_delimiter: str = TARGET_DELIMITER


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
    delimiter = row.get("target_delimiter", TARGET_DELIMITER)
    if not isinstance(delimiter, str):
        raise ValueError(f"{where}: target_delimiter must be a string, got {delimiter!r}")  # noqa: TRY004 - a bad row is a ValueError
    return MCItem(query=query, choices=tuple(str(c) for c in choices), gold=gold, target_delimiter=delimiter)


def parse_task(text: str, *, name: str) -> list[MCItem]:
    """Every line must parse: a task file with a bad line is rejected with its line number."""
    return parse_jsonl(text, label=f"task {name}", parse=lambda row, where: parse_item(row, where=where))


def builtin_task(name: str) -> list[MCItem]:
    if name not in BUILTIN_TASKS:
        raise ValueError(f"unknown builtin task {name!r}: expected one of {list(BUILTIN_TASKS)} "
                         "or an s3:// / file:// JSONL URI")
    text = resources.files("synthloop.workers.eval.suites").joinpath(f"tasks/{name}.jsonl").read_text()
    return parse_task(text, name=name)


def few_shot_context(items: list[MCItem], index: int, k: int, *, seed: int) -> str:
    """``k`` other solved items (seeded, never the item itself), then the query."""
    pool = [j for j in range(len(items)) if j != index]
    shots = random.Random(f"{seed}:{index}").sample(pool, min(k, len(pool)))
    parts = [items[j].query + items[j].target_delimiter + items[j].choices[items[j].gold] for j in shots]
    return FEWSHOT_DELIMITER.join([*parts, items[index].query])


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split: the context's trailing whitespace joins the continuation; the
    continuation's tokens are the whole text's tokens past the context's. An empty context is
    the BOS (else EOS) token."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    if not context:
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return [int(prefix)], list(tokenizer(continuation, add_special_tokens=False)["input_ids"])
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return list(ctx), list(whole[len(ctx):])


@torch.no_grad()
def continuation_logprob(model: Any, tokenizer: Any, context: str, continuation: str) -> float:
    """log p(continuation | context), summed over the continuation's tokens (left-truncated
    to the model's context window, as lm-eval does)."""
    device = next(model.parameters()).device
    ctx, cont = encode_pair(tokenizer, context, continuation)
    if not cont:
        return 0.0
    max_len = int(model.config.max_position_embeddings)
    full = (ctx + cont)[-(max_len + 1):]
    ids = torch.tensor([full[:-1]], device=device)
    logp = model(input_ids=ids).logits[0].float().log_softmax(-1)
    targets = torch.tensor(full[1:], device=device)
    picked = logp.gather(1, targets.unsqueeze(1)).squeeze(1)
    return float(picked[-len(cont):].sum())


def score_items(model: Any, tokenizer: Any, items: list[MCItem], indices: Sequence[int], *, k_shot: int,
                seed: int) -> list[tuple[bool, bool]]:
    """``(acc, acc_norm)`` correctness of ``items[i]`` for each ``i`` in ``indices`` (shots drawn
    from the whole task, so a rank scoring a slice scores it as one process would)."""
    out = []
    for i in indices:
        item = items[i]
        context = few_shot_context(items, i, k_shot, seed=seed)
        scores = [continuation_logprob(model, tokenizer, context, item.target_delimiter + c) for c in item.choices]
        norm = [s / max(1, len(c)) for s, c in zip(scores, item.choices, strict=True)]
        out.append((max(range(len(scores)), key=scores.__getitem__) == item.gold,
                    max(range(len(norm)), key=norm.__getitem__) == item.gold))
    return out


def evaluate_task(model: Any, tokenizer: Any, items: list[MCItem], *, k_shot: int, seed: int,
                  limit: int | None = None) -> dict[str, float]:
    n = min(limit, len(items)) if limit else len(items)
    right = score_items(model, tokenizer, items, range(n), k_shot=k_shot, seed=seed)
    return {"acc": sum(a for a, _ in right) / n, "acc_norm": sum(b for _, b in right) / n, "n": float(n)}
