"""Generative accuracy: k-shot prompts, verifier scoring (math, Python tests, IFEval), stderr."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pytest

from synthloop.workers.eval.suites import generative as gen
from synthloop.workers.synth.backends.base import Completion, GenerationBackend, Message, Sampling

pytestmark = pytest.mark.unit


class Scripted(GenerationBackend):
    """Answers from a function of the last user turn; records what it was asked."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.seen: list[list[Message]] = []
        self.sampling: Sampling | None = None

    def generate(self, conversations: Sequence[Sequence[Message]], *, sampling: Sampling) -> list[list[Completion]]:
        self.sampling = sampling
        self.seen += [list(c) for c in conversations]
        return [[Completion(text=self.reply(c[-1]["content"]))] for c in conversations]  # type: ignore[operator]


def test_builtin_arithmetic_is_seeded_held_out_and_solvable() -> None:
    a, b = gen.arithmetic_items(20, seed=0), gen.arithmetic_items(20, seed=0)
    assert a == b
    assert a != gen.arithmetic_items(20, seed=1)
    for item in a:
        assert item.answer is not None and item.solution and item.solution.endswith(f"Answer: {item.answer}")
        assert gen.verify(item, item.solution)
        assert not gen.verify(item, "Answer: 123456789")


def test_accuracy_and_stderr_from_the_verifier() -> None:
    items = gen.arithmetic_items(10, seed=3)
    answers = {it.messages[0]["content"]: it.answer for it in items}
    # right on the first 6 questions (in task order), wrong on the rest
    right = {it.messages[0]["content"] for it in items[:6]}
    backend = Scripted(lambda q: f"Answer: {answers[q]}" if q in right else "Answer: -1")
    res = gen.evaluate(backend, items, k_shot=0, seed=0, max_tokens=16)
    assert res.n == 10 and res.accuracy == pytest.approx(0.6)
    assert res.stderr == pytest.approx(math.sqrt(0.6 * 0.4 / 9))
    assert res.correct == [True] * 6 + [False] * 4
    assert backend.sampling is not None and backend.sampling.greedy and backend.sampling.max_tokens == 16


def test_k_shot_prompts_hold_k_other_solved_items() -> None:
    items = gen.arithmetic_items(6, seed=0)
    backend = Scripted(lambda q: "Answer: 0")
    gen.evaluate(backend, items, k_shot=2, seed=0, max_tokens=8, limit=3)
    assert len(backend.seen) == 3
    for i, conv in enumerate(backend.seen):
        assert [m["role"] for m in conv] == ["user", "assistant", "user", "assistant", "user"]
        assert conv[-1] == items[i].messages[0]
        shots = [conv[0]["content"], conv[2]["content"]]
        assert items[i].messages[0]["content"] not in shots
        assert conv[1]["content"].endswith("Answer: " + next(it.answer for it in items
                                                               if it.messages[0]["content"] == shots[0]))


def test_task_file_with_math_python_and_ifeval_items() -> None:
    rows = [
        {"prompt": "What is 2 + 3?", "answer": "5"},
        {"prompt": "Write add(a, b).", "tests": ["assert add(2, 3) == 5"]},
        {"key": 9, "prompt": "Say hi without commas.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "6 * 7?"}],
         "answer": 42, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    ]
    items = gen.parse_task("\n".join(json.dumps(r) for r in rows), name="mixed")
    assert [len(i.messages) for i in items] == [1, 1, 1, 2]
    good = ["The sum is 5.", "```python\ndef add(a, b):\n    return a + b\n```", "hi there friend",
            "It is 42"]
    bad = ["Answer: 6", "```python\ndef add(a, b):\n    return a - b\n```", "hi, friend", "Well, 42"]
    assert [gen.verify(i, r) for i, r in zip(items, good, strict=True)] == [True] * 4
    assert [gen.verify(i, r) for i, r in zip(items, bad, strict=True)] == [False] * 4


def test_bad_task_rows_are_rejected_with_their_line() -> None:
    with pytest.raises(ValueError, match="line 2: nothing to verify"):
        gen.parse_task('{"prompt": "a", "answer": 1}\n{"prompt": "b"}\n', name="t")
    with pytest.raises(ValueError, match="line 1: expected prompt"):
        gen.parse_task('{"question": "a", "answer": 1}\n', name="t")
    with pytest.raises(ValueError, match="unknown builtin generative task 'gsm8k'"):
        gen.builtin_task("gsm8k", n=1, seed=0)


def test_arithmetic_format_scores_the_instruction_not_the_value() -> None:
    items = gen.builtin_task("arithmetic_format", n=4, seed=0)
    assert [i.messages for i in items] == [i.messages for i in gen.arithmetic_items(4, seed=0)]
    assert all(i.answer is None for i in items)
    assert gen.verify(items[0], "I think so.\nAnswer: 123456789")
    assert not gen.verify(items[0], "The answer is 5.")


def test_tasks_posing_the_same_prompts_generate_once() -> None:
    backend = Scripted(lambda q: "Answer: 1")
    memo = gen.Memo(backend)
    a = gen.evaluate(memo, gen.builtin_task("arithmetic", n=5, seed=0), k_shot=1, seed=0, max_tokens=8)
    b = gen.evaluate(memo, gen.builtin_task("arithmetic_format", n=5, seed=0), k_shot=1, seed=0, max_tokens=8)
    assert len(backend.seen) == 5 and a.responses == b.responses and b.accuracy == 1.0
