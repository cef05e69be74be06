"""Open QA: macro topic -> subtopics -> a question -> a revision to be more detailed."""

from __future__ import annotations

from collections.abc import Sequence

from synthloop.workers.synth.families.base import FamilyContext, PromptItem
from synthloop.workers.synth.families.seeds import QUESTION_TEMPLATES, REVISION_SUFFIXES, TOPICS
from synthloop.workers.synth.parsing import parse_list, parse_single


def build(ctx: FamilyContext, indices: Sequence[int]) -> list[PromptItem]:
    topics = list(ctx.options.topics) or list(TOPICS)
    rngs = [ctx.rng(j) for j in indices]
    macro = [r.choice(topics) for r in rngs]
    subtopic_lists = ctx.step(
        "subtopics",
        [f"List 5 subtopics of {t}. Answer with a numbered list, one subtopic per line." for t in macro],
        lambda c: parse_list(c.text, truncated=c.truncated, max_items=10),
        lambda i: [macro[i]],
    )
    subtopics = [r.choice(s) if s else m for r, s, m in zip(rngs, subtopic_lists, macro)]
    questions = ctx.step(
        "question",
        [f"Write one question a curious person might ask about {s}. Output only the question." for s in subtopics],
        lambda c: parse_single(c.text, question=True),
        lambda i: rngs[i].choice(QUESTION_TEMPLATES).format(topic=subtopics[i]),
    )
    revised = ctx.step(
        "revision",
        [
            "Revise the following question to make it more detailed and specific. Output only the "
            f"revised question.\n\nQuestion: {q}"
            for q in questions
        ],
        lambda c: parse_single(c.text, sentence=True),
        lambda i: (questions[i] or "") + rngs[i].choice(REVISION_SUFFIXES),
    )
    items = []
    for j, question, sub, top in zip(indices, revised, subtopics, macro):
        if question:
            items.append(PromptItem(id=f"openQA-{j}", family="openQA", messages=ctx.user(question),
                                    meta={"topic": top, "subtopic": sub}))
    return items
