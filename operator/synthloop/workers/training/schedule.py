"""Step plans for phased pretraining: the global batch ramp and per-phase LR schedules.

The whole run is planned up front from the params (pure arithmetic, no data), so a resumed run
knows which phase, batch size and learning rate every step has, and the data position of a step
is simply the number of samples before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

DecayStyle = Literal["cosine", "linear", "steep", "constant"]


@dataclass(frozen=True)
class RampStage:
    batch_size: int
    tokens: int | None  # None: until the end


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    tokens: int | None
    steps: int | None
    lr: float
    min_lr: float
    decay_style: DecayStyle
    warmup_steps: int


@dataclass(frozen=True)
class PlannedStep:
    step: int  # global, 0-based
    phase: int
    phase_step: int
    phase_steps: int
    batch_size: int  # sequences in the global batch
    samples_before: int  # global data position
    tokens_before: int
    lr: float


def batch_size_at(tokens_seen: int, ramp: Sequence[RampStage], *, default: int) -> int:
    """The global batch size after ``tokens_seen`` tokens (the report's 768 -> 1536 -> 2304)."""
    budget = 0
    for stage in ramp:
        if stage.tokens is None:
            return stage.batch_size
        budget += stage.tokens
        if tokens_seen < budget:
            return stage.batch_size
    return ramp[-1].batch_size if ramp else default


def lr_at(phase: PhaseSpec, phase_step: int, phase_steps: int) -> float:
    """Linear warmup, then decay from ``lr`` to ``min_lr`` over the rest of the phase (``steep``:
    quadratic, for the continued-training phases)."""
    if phase.warmup_steps and phase_step < phase.warmup_steps:
        return phase.lr * (phase_step + 1) / phase.warmup_steps
    if phase.decay_style == "constant":
        return phase.lr
    span = max(1, phase_steps - phase.warmup_steps - 1)
    frac = min(1.0, (phase_step - phase.warmup_steps) / span)
    if phase.decay_style == "linear":
        return phase.lr + (phase.min_lr - phase.lr) * frac
    if phase.decay_style == "steep":
        # continued training: a steeper slope rather than a larger LR (quadratic to min_lr)
        return phase.min_lr + (phase.lr - phase.min_lr) * (1.0 - frac) ** 2
    return phase.min_lr + 0.5 * (phase.lr - phase.min_lr) * (1 + math.cos(math.pi * frac))


def plan(
    phases: Sequence[PhaseSpec], ramp: Sequence[RampStage], *, seq_length: int, default_batch: int
) -> list[PlannedStep]:
    """Every step of the run in order. A phase ends at its step count or token budget."""
    steps: list[PlannedStep] = []
    samples = tokens = 0
    for p_index, phase in enumerate(phases):
        # first pass: how many steps the phase has (the ramp depends on tokens so far)
        count, t = 0, tokens
        while True:
            if phase.steps is not None and count >= phase.steps:
                break
            if phase.tokens is not None and t - tokens >= phase.tokens:
                break
            t += batch_size_at(t, ramp, default=default_batch) * seq_length
            count += 1
        for k in range(count):
            bs = batch_size_at(tokens, ramp, default=default_batch)
            steps.append(PlannedStep(
                step=len(steps), phase=p_index, phase_step=k, phase_steps=count, batch_size=bs,
                samples_before=samples, tokens_before=tokens, lr=lr_at(phase, k, count),
            ))
            samples += bs
            tokens += bs * seq_length
    return steps
