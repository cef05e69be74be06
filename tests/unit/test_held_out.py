"""The demo's held-out arithmetic stays held out: no training source ever poses those problems."""

from __future__ import annotations

import random

import pytest

from synthloop import corpus
from synthloop.demo import seed
from synthloop.problems import (
    TEMPLATES,
    held_out,
    held_out_problem,
    training_problem,
)
from synthloop.workers.eval.suites.generative import arithmetic_items

pytestmark = pytest.mark.unit

KEYWORDS = ("addition", "subtraction", "multiplication", "division")


def _question(text: str) -> str:
    return text.split("\n\n")[0]


def test_the_partition_is_one_in_four_and_each_side_draws_only_its_own() -> None:
    rng = random.Random(0)
    texts = {TEMPLATES[k](rng, 1)[0] for k in KEYWORDS for _ in range(300)}
    share = sum(map(held_out, texts)) / len(texts)
    assert 0.15 < share < 0.35, share
    for k in KEYWORDS:
        assert held_out(held_out_problem(k, rng, 1)[0])
        assert not held_out(training_problem(k, rng, 1)[0])


def test_level_one_is_one_digit_operands_with_exact_answers() -> None:
    rng = random.Random(1)
    for k in KEYWORDS:
        for _ in range(50):
            _, answer, solution = training_problem(k, rng, 1)
            lhs, rhs = solution.rstrip(".").split(" = ")
            a, op, b = lhs.split()
            assert int(b) <= 9 and (int(a) <= 9 or op in "-/"), solution  # a sum or product on the left of - and /
            assert str(answer) == rhs, solution


def test_no_training_source_poses_a_held_out_problem() -> None:
    held = {_question(m["content"]) for it in arithmetic_items(256, seed=0) for m in it.messages}
    assert len(held) > 60  # the eval's problems are many and all reserved
    assert all(held_out(q) for q in held)
    # the pretraining corpus's arithmetic pages
    pages = "\n".join(corpus.arithmetic_text(random.Random(f"arithmetic:{s}")) for s in range(400))
    asked = {line.removeprefix("Question: ") for line in pages.splitlines() if line.startswith("Question: ")}
    assert asked and not asked & held
    # the demo's reward-model ratings and win-rate prompts
    rated = {_question(r["prompt"]) for r in seed.helpsteer_rows(n_problems=300, seed=1)}
    prompts = {_question(r["prompt"][0]["content"]) for r in seed.preference_rows(n_pairs=200, seed=3)}
    assert rated and prompts and not (rated | prompts) & held
