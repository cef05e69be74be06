"""What a prompt family produces and the context it builds prompts in.

A family turns global item indices into :class:`PromptItem` s. Each multi-step family asks the
generator for one step at a time for *all* its items (one batched call per step), parses the
answers, and — when an answer does not parse — counts a parse failure and, if allowed, uses
its own template for that step so the prompt is not lost. Every random choice of item ``j``
comes from ``ctx.rng(j)``, so an item is the same whichever shard makes it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthloop.api.v1alpha1.synth import Prompts
from synthloop.workers.synth.backends.base import Completion, GenerationBackend, Message, Sampling
from synthloop.workers.synth.stats import Stats


@dataclass
class PromptItem:
    """One prompt to answer, with whatever ground truth its family knows."""

    id: str
    family: str
    messages: list[Message]
    #: Verifiable instructions (``Instruction.to_dict()``) the response must satisfy.
    instructions: list[dict[str, Any]] = field(default_factory=list)
    #: Math: the computed answer.
    answer: str | None = None
    #: Python: assert statements the program must pass.
    tests: list[str] = field(default_factory=list)
    #: A template-written correct response (math, python), offered as an extra candidate.
    reference: str | None = None
    #: Prompts the generator cannot answer get a refusal as their SFT response.
    refusal: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def has_verifier(self) -> bool:
        return bool(self.instructions or self.answer is not None or self.tests)


#: Families seeded by ``prompts.topics`` and by ``prompts.keywords``.
TOPIC_FAMILIES = ("openQA", "writing", "closedQA", "instructionFollowing", "twoTurn")
KEYWORD_FAMILIES = ("math", "python")
#: Math/Python difficulty levels drawn from (1 = small numbers, one step).
LEVELS = (1, 2, 3)


@dataclass(frozen=True)
class FamilyOptions:
    """One family's share of the spec's ``prompts``: its count and the seeds it draws from.

    Derived from the API's :class:`Prompts` by :func:`family_options`, never parsed from
    params, so no setting is declared here.
    """

    count: int = 0
    topics: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    #: Verifiable instructions per instruction-following prompt.
    instructions_per_prompt: int = 1
    levels: tuple[int, ...] = LEVELS


def family_options(prompts: Prompts) -> dict[str, FamilyOptions]:
    """The families with a count > 0 by their spec names (topic families first, as they ran)."""
    wire = prompts.wire()
    out = {}
    for name in (*TOPIC_FAMILIES, *KEYWORD_FAMILIES):
        count = int(wire.get(name, 0))
        if count > 0:
            out[name] = FamilyOptions(count=count,
                                      topics=tuple(prompts.topics) if name in TOPIC_FAMILIES else (),
                                      keywords=tuple(prompts.keywords) if name in KEYWORD_FAMILIES else ())
    return out


@dataclass
class FamilyContext:
    family: str
    options: FamilyOptions
    backend: GenerationBackend
    sampling: Sampling
    stats: Stats
    seed: int
    template_fallback: bool = True
    system_prompt: str = ""
    documents: Sequence[str] = ()

    def rng(self, index: int, salt: str = "") -> random.Random:
        return random.Random(f"{self.seed}:{self.family}:{index}:{salt}")

    def ask(self, prompts: Sequence[str], *, greedy: bool = False) -> list[Completion]:
        """One completion per single-turn user prompt (one batched backend call)."""
        if not prompts:
            return []
        sampling = self.sampling
        if greedy:
            sampling = Sampling(max_tokens=sampling.max_tokens, temperature=0.0, top_p=1.0, n=1, seed=sampling.seed)
        else:
            sampling = Sampling(max_tokens=sampling.max_tokens, temperature=sampling.temperature,
                                top_p=sampling.top_p, n=1, seed=sampling.seed)
        convs: list[list[Message]] = [[{"role": "user", "content": p}] for p in prompts]
        out = self.backend.generate(convs, sampling=sampling)
        self.stats.add(self.family, "generator_calls", len(prompts))
        return [c[0] for c in out]

    def step(
        self,
        name: str,
        prompts: Sequence[str],
        parse: Callable[[Completion], Any],
        fallback: Callable[[int], Any],
    ) -> list[Any]:
        """Ask, parse each answer; unparsed ones count and fall back to ``fallback(i)`` (or None)."""
        answers = self.ask(prompts)
        values: list[Any] = []
        for i, completion in enumerate(answers):
            value = parse(completion)
            if value in (None, [], ""):
                self.stats.add(self.family, "parse_failures")
                self.stats.add(self.family, f"parse_failures.{name}")
                if self.template_fallback:
                    self.stats.add(self.family, "template_fallbacks")
                    value = fallback(i)
                else:
                    value = None
            values.append(value)
        return values

    def user(self, content: str) -> list[Message]:
        messages: list[Message] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": content})
        return messages


FamilyBuilder = Callable[[FamilyContext, Sequence[int]], list[PromptItem]]
