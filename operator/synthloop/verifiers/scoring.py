"""Strict and loose scoring, as IFEval defines them.

Strict checks the raw response. Loose passes an instruction if any variant passes: the response
with its first line, last line or both removed, each also with ``*`` removed — so a model is not
penalised for a markdown wrapper or a "Sure, here it is:" opener.
"""

from __future__ import annotations

from collections.abc import Sequence

from synthloop.verifiers.base import Instruction
from synthloop.verifiers.registry import sample_instructions

__all__ = ["loose_variants", "prompt_passes", "sample_instructions", "score"]


def loose_variants(response: str) -> list[str]:
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    base = [response, remove_first, remove_last, remove_both]
    return base + [v.replace("*", "") for v in base]


def score(response: str, instructions: Sequence[Instruction], *, loose: bool) -> list[bool]:
    """One pass/fail per instruction (instruction-level accuracy)."""
    if not loose:
        return [bool(response.strip()) and inst.check(response) for inst in instructions]
    variants = [v for v in loose_variants(response) if v.strip()]
    return [any(inst.check(v) for v in variants) for inst in instructions]


def prompt_passes(response: str, instructions: Sequence[Instruction], *, loose: bool) -> bool:
    """Prompt-level accuracy: every instruction of the prompt passes."""
    return all(score(response, instructions, loose=loose))
