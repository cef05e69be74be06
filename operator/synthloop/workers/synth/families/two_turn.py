"""Two-turn prompts: user turn, the generator's assistant turn, a follow-up user turn."""

from __future__ import annotations

from collections.abc import Sequence

from synthloop.workers.synth.families.base import FamilyContext, PromptItem
from synthloop.workers.synth.families.seeds import FOLLOWUPS, QUESTION_TEMPLATES, TOPICS
from synthloop.workers.synth.parsing import clean_response, parse_single, strip_polite_filler


def build(ctx: FamilyContext, indices: Sequence[int]) -> list[PromptItem]:
    topics = list(ctx.options.topics) or list(TOPICS)
    rngs = [ctx.rng(j) for j in indices]
    first = [r.choice(QUESTION_TEMPLATES).format(topic=r.choice(topics)) for r in rngs]
    replies = [clean_response(c.text) for c in ctx.ask(first)]
    live = [i for i, r in enumerate(replies) if r]
    dropped = len(replies) - len(live)
    if dropped:
        ctx.stats.add(ctx.family, "parse_failures", dropped)
        ctx.stats.add(ctx.family, "parse_failures.assistant_turn", dropped)
    followups = ctx.step(
        "followup",
        [
            "Here is a conversation.\n\nUser: " + first[i] + "\n\nAssistant: " + replies[i]
            + "\n\nWrite the next message the user would send: one follow-up question. Output only the message."
            for i in live
        ],
        lambda c: parse_single(strip_polite_filler(c.text), question=True),
        lambda n: rngs[live[n]].choice(FOLLOWUPS),
    )
    items = []
    for i, follow in zip(live, followups):
        if follow:
            messages = ctx.user(first[i]) + [
                {"role": "assistant", "content": replies[i]},
                {"role": "user", "content": follow},
            ]
            items.append(PromptItem(id=f"twoTurn-{indices[i]}", family="twoTurn", messages=messages))
    return items
