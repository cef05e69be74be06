"""The instruction registry and sampling of compatible instruction sets."""

from __future__ import annotations

import random
from typing import Any

from synthloop.verifiers.base import Instruction
from synthloop.verifiers.instructions import ALL_INSTRUCTIONS

REGISTRY: dict[str, type[Instruction]] = {cls.id: cls for cls in ALL_INSTRUCTIONS}


def get(instruction_id: str) -> type[Instruction]:
    try:
        return REGISTRY[instruction_id]
    except KeyError:
        raise KeyError(
            f"unknown instruction id {instruction_id!r}; expected one of {sorted(REGISTRY)}"
        ) from None


def instruction_from_dict(data: dict[str, Any]) -> Instruction:
    """Rebuild an instruction from its ``to_dict`` form (``{"id", "kwargs"}``)."""
    if not isinstance(data, dict) or "id" not in data:
        raise ValueError(f"instruction must be a mapping with an 'id', got {data!r}")
    return get(str(data["id"])).build(**dict(data.get("kwargs") or {}))


def _conflict(a: type[Instruction], b: type[Instruction]) -> bool:
    return a is b or b.id in a.conflicts or a.id in b.conflicts


def sample_instructions(
    rng: random.Random,
    k: int,
    *,
    prompt: str | None = None,
    exclude: frozenset[str] = frozenset(),
) -> list[Instruction]:
    """``k`` mutually compatible random instructions.

    Instructions that need the prompt text (``combination:repeat_prompt``) are only drawn when
    ``prompt`` is given. Fewer than ``k`` come back only if the compatible pool runs out.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    pool = [
        cls for cls in ALL_INSTRUCTIONS
        if cls.sampled and cls.id not in exclude and (not cls.requires or prompt is not None)
    ]
    chosen: list[type[Instruction]] = []
    while len(chosen) < k:
        candidates = [c for c in pool if not any(_conflict(c, d) for d in chosen)]
        if not candidates:
            break
        chosen.append(rng.choice(candidates))
    out: list[Instruction] = []
    for cls in chosen:
        extra: dict[str, Any] = {"prompt_to_repeat": prompt} if "prompt_to_repeat" in cls.requires else {}
        out.append(cls.build(rng=rng, **extra))
    return out
