"""IFEval-style scoring with the verifier registry: prompt- and instruction-level, strict/loose.

Prompts come from a JSONL file (``{"prompt", "instructions": [{"id", "kwargs"}]}``, or the
IFEval release's ``input_data.jsonl``: ``key``, ``prompt``, ``instruction_id_list``, ``kwargs``)
or the builtin ``synthetic`` set: arithmetic questions with 1-2 random verifiable instructions
appended (seeded). Checks are the reference's (``synthloop.verifiers.reference``), so the four
accuracies are IFEval's prompt/instruction-level strict/loose.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from synthloop.corpus import arithmetic_problem
from synthloop.verifiers.base import Instruction
from synthloop.verifiers.registry import get, instruction_from_dict, sample_instructions
from synthloop.verifiers.scoring import score


@dataclass(frozen=True)
class IFItem:
    prompt: str
    instructions: tuple[Instruction, ...]


def synthetic_items(n: int, *, seed: int) -> list[IFItem]:
    rng = random.Random(f"ifeval:{seed}")
    items = []
    for _ in range(n):
        q, _ = arithmetic_problem(rng)
        insts = sample_instructions(rng, rng.randint(1, 2), prompt=q)
        text = " ".join([q, *(i.description() for i in insts)])
        items.append(IFItem(prompt=text, instructions=tuple(insts)))
    return items


def release_instructions(row: dict[str, Any]) -> list[Instruction]:
    """The release's ``instruction_id_list`` + ``kwargs``; falsy arguments are dropped as the
    reference does (the HF export fills every key with null)."""
    ids = row["instruction_id_list"]
    kwargs = row.get("kwargs") or [{}] * len(ids)
    if len(kwargs) != len(ids):
        raise ValueError(f"kwargs has {len(kwargs)} entries for {len(ids)} instruction_id_list entries")
    out = []
    for instruction_id, kw in zip(ids, kwargs, strict=True):
        out.append(get(instruction_id).build(**{k: v for k, v in (kw or {}).items() if v}))
    return out


def parse_items(text: str, *, name: str) -> list[IFItem]:
    items = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row: dict[str, Any] = json.loads(line)
            if "instructions" in row:
                insts = [instruction_from_dict(d) for d in row["instructions"]]
            else:
                insts = release_instructions(row)
            items.append(IFItem(prompt=str(row["prompt"]), instructions=tuple(insts)))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"ifeval task {name} line {n}: {exc}") from None
    if not items:
        raise ValueError(f"ifeval task {name}: no prompts")
    return items


def score_responses(items: list[IFItem], responses: list[str]) -> tuple[dict[str, float], dict[str, int]]:
    """The four IFEval accuracies; counts are prompts and instructions."""
    p_strict = p_loose = i_strict = i_loose = n_inst = 0
    for item, resp in zip(items, responses, strict=True):
        s = score(resp, item.instructions, loose=False)
        lo = score(resp, item.instructions, loose=True)
        p_strict += all(s)
        p_loose += all(lo)
        i_strict += sum(s)
        i_loose += sum(lo)
        n_inst += len(s)
    n = len(items)
    metrics = {"ifeval.prompt_strict": p_strict / n, "ifeval.prompt_loose": p_loose / n,
               "ifeval.instruction_strict": i_strict / max(1, n_inst),
               "ifeval.instruction_loose": i_loose / max(1, n_inst)}
    counts = {"ifeval.prompt_strict": n, "ifeval.prompt_loose": n,
              "ifeval.instruction_strict": n_inst, "ifeval.instruction_loose": n_inst}
    return metrics, counts
