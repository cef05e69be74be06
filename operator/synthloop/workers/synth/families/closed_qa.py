"""Closed QA: an instruction about a document, joined with the document by a template."""

from __future__ import annotations

from collections.abc import Sequence

from synthloop.workers.synth.families.base import FamilyContext, PromptItem
from synthloop.workers.synth.families.seeds import (
    CLOSED_QA_INSTRUCTIONS,
    CLOSED_QA_JOINS,
    builtin_documents,
)
from synthloop.workers.synth.parsing import parse_single

MAX_DOC_CHARS = 1500


def build(ctx: FamilyContext, indices: Sequence[int]) -> list[PromptItem]:
    docs = list(ctx.documents) or builtin_documents(32, seed=ctx.seed)
    rngs = [ctx.rng(j) for j in indices]
    chosen = [docs[j % len(docs)][:MAX_DOC_CHARS] for j in indices]
    instructions = ctx.step(
        "instruction",
        [
            "Read the document and write one instruction or question about it that can be "
            f"answered from the document alone. Output only the instruction.\n\nDocument: {d}"
            for d in chosen
        ],
        lambda c: parse_single(c.text, sentence=True),
        lambda i: rngs[i].choice(CLOSED_QA_INSTRUCTIONS),
    )
    items = []
    for j, rng, doc, inst in zip(indices, rngs, chosen, instructions):
        if inst:
            text = rng.choice(CLOSED_QA_JOINS).format(document=doc, instruction=inst)
            items.append(PromptItem(id=f"closedQA-{j}", family="closedQA", messages=ctx.user(text),
                                    meta={"document": j % len(docs)}))
    return items
