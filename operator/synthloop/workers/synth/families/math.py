"""Math: problems per keyword at several levels, built from templates with computed answers
(:mod:`synthloop.problems`, which also holds the held-out split).

The report generates problems from ~17K keywords; we keep the keyword -> problem step but
write the problem with a template, so every item carries its exact answer. That lets the
verifier (not a judge model) rank responses, and lets a template-written reference solution
join the candidates. Keywords from the spec are first classified by the generator (keep only
math-related ones, as the report does with Wikipedia entities).
"""

from __future__ import annotations

from collections.abc import Sequence

from synthloop.problems import LEVELS, TEMPLATES, training_problem
from synthloop.verifiers.instructions import FinalAnswer
from synthloop.verifiers.math import format_answer
from synthloop.workers.synth.families.base import FamilyContext, PromptItem
from synthloop.workers.synth.parsing import parse_yes_no


def classify_keywords(ctx: FamilyContext, keywords: Sequence[str], *, subject: str) -> list[str]:
    """Keep keywords the generator says belong to ``subject``; unparseable answers keep them."""
    if not keywords:
        return []
    verdicts = ctx.step(
        "classify",
        [f"Is '{k}' a concept from {subject}? Answer only yes or no." for k in keywords],
        lambda c: parse_yes_no(c.text),
        lambda i: True,
    )
    kept = [k for k, v in zip(keywords, verdicts) if v is not False]
    ctx.stats.add(ctx.family, "keywords_rejected", len(keywords) - len(kept))
    return kept


def build(ctx: FamilyContext, indices: Sequence[int]) -> list[PromptItem]:
    keywords = classify_keywords(ctx, list(ctx.options.keywords), subject="mathematics") or list(TEMPLATES)
    fmt = FinalAnswer.build()
    items = []
    for j in indices:
        rng = ctx.rng(j)
        keyword = rng.choice(keywords)
        level = rng.choice(ctx.options.levels or LEVELS)
        text, answer, solution = training_problem(keyword, rng, level)
        answer_text = format_answer(answer)
        items.append(
            PromptItem(
                id=f"math-{j}",
                family="math",
                messages=ctx.user(f"{text}\n\n{fmt.description()}"),
                instructions=[fmt.to_dict()],
                answer=answer_text,
                reference=f"{solution}\nAnswer: {answer_text}",
                meta={"keyword": keyword, "level": level},
            )
        )
    return items
