"""Writing: an instruction to write a document type about a topic, then a revision."""

from __future__ import annotations

from collections.abc import Sequence

from synthloop.workers.synth.families.base import FamilyContext, PromptItem
from synthloop.workers.synth.families.seeds import (
    DOC_TYPES,
    TOPICS,
    WRITING_REVISIONS,
    WRITING_TEMPLATES,
)
from synthloop.workers.synth.parsing import parse_single


def build(ctx: FamilyContext, indices: Sequence[int]) -> list[PromptItem]:
    topics = list(ctx.options.topics) or list(TOPICS)
    rngs = [ctx.rng(j) for j in indices]
    pairs = [(r.choice(DOC_TYPES), r.choice(topics)) for r in rngs]
    tasks = ctx.step(
        "task",
        [f"Write an instruction asking someone to write a {d} about {t}. Output only the instruction." for d, t in pairs],
        lambda c: parse_single(c.text, sentence=True),
        lambda i: rngs[i].choice(WRITING_TEMPLATES).format(doc_type=pairs[i][0], topic=pairs[i][1]),
    )
    revised = ctx.step(
        "revision",
        [
            "Revise this writing instruction to include more details and requirements. Output only "
            f"the revised instruction.\n\nInstruction: {t}"
            for t in tasks
        ],
        lambda c: parse_single(c.text, sentence=True),
        lambda i: (tasks[i] or "") + rngs[i].choice(WRITING_REVISIONS),
    )
    return [
        PromptItem(id=f"writing-{j}", family="writing", messages=ctx.user(task),
                   meta={"doc_type": d, "topic": t})
        for j, task, (d, t) in zip(indices, revised, pairs)
        if task
    ]
