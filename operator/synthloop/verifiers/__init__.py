"""Verifiable instructions (IFEval-style), math answer checking and sandboxed Python tests.

Shared by the synth worker (ranking preference candidates by ground truth) and the eval worker
(IFEval prompt/instruction-level accuracy), so both judge a response the same way.
"""

from synthloop.verifiers.base import Instruction
from synthloop.verifiers.registry import REGISTRY, instruction_from_dict, sample_instructions
from synthloop.verifiers.scoring import loose_variants, prompt_passes, score

__all__ = [
    "REGISTRY",
    "Instruction",
    "instruction_from_dict",
    "loose_variants",
    "prompt_passes",
    "sample_instructions",
    "score",
]
