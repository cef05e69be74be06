"""Prompt families by spec name; each maps global indices to prompt items."""

from __future__ import annotations

from synthloop.workers.synth.families import (
    closed_qa,
    instruction_following,
    math,
    open_qa,
    python,
    two_turn,
    writing,
)
from synthloop.workers.synth.families.base import FamilyBuilder, FamilyContext, PromptItem

FAMILIES: dict[str, FamilyBuilder] = {
    "openQA": open_qa.build,
    "writing": writing.build,
    "closedQA": closed_qa.build,
    "math": math.build,
    "python": python.build,
    "instructionFollowing": instruction_following.build,
    "twoTurn": two_turn.build,
}

__all__ = ["FAMILIES", "FamilyContext", "PromptItem"]
