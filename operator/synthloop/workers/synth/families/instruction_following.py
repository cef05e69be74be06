"""Instruction following: a synthetic task plus verifiable constraints (IFEval-style).

A quarter of the items are the "revise your answer" variant: the generator answers the task
first, then the user asks for a revision under the constraints.
"""

from __future__ import annotations

from collections.abc import Sequence

from synthloop.verifiers.registry import sample_instructions
from synthloop.workers.synth.families.base import FamilyContext, PromptItem
from synthloop.workers.synth.families.seeds import IF_TASKS, TOPICS
from synthloop.workers.synth.parsing import clean_response, parse_single

REVISE_SHARE = 0.25


def build(ctx: FamilyContext, indices: Sequence[int]) -> list[PromptItem]:
    topics = list(ctx.options.topics) or list(TOPICS)
    rngs = [ctx.rng(j) for j in indices]
    chosen_topics = [r.choice(topics) for r in rngs]
    tasks = ctx.step(
        "task",
        [f"Write a request a user might send to an AI assistant about {t}. Output only the request." for t in chosen_topics],
        lambda c: parse_single(c.text, sentence=True),
        lambda i: rngs[i].choice(IF_TASKS).format(topic=chosen_topics[i]),
    )
    k = ctx.options.instructions_per_prompt
    revise = [r.random() < REVISE_SHARE for r in rngs]
    first_answers = ctx.ask([t for t, v in zip(tasks, revise) if v and t], greedy=True)
    answers = iter(first_answers)
    items = []
    for j, rng, task, is_revise in zip(indices, rngs, tasks, revise):
        if not task:
            continue
        if is_revise:
            first = clean_response(next(answers).text)
            if not first:
                ctx.stats.add(ctx.family, "parse_failures")
                continue
            instructions = sample_instructions(rng, k)
            messages = ctx.user(task) + [
                {"role": "assistant", "content": first},
                {"role": "user", "content": "Revise your answer. " + " ".join(i.description() for i in instructions)},
            ]
        else:
            instructions = sample_instructions(rng, k, prompt=task)
            messages = ctx.user(task + " " + " ".join(i.description() for i in instructions))
        items.append(
            PromptItem(id=f"instructionFollowing-{j}", family="instructionFollowing", messages=messages,
                       instructions=[i.to_dict() for i in instructions], meta={"revise": is_revise})
        )
    return items
