"""Generative accuracy: greedy answers to held-out problems, scored by the verifiers.

What the report's headline numbers are (GSM8K, HumanEval, IFEval are scored on generated
text, not on log-likelihoods). Each item is a chat prompt and what a verifier needs to judge
the answer: a math ``answer`` (exact match of the final answer, ``verifiers.math``), Python
``tests`` (run in the sandbox, ``verifiers.python_exec``), IFEval ``instruction_id_list`` +
``kwargs`` (strict, the reference checkers), or several of these (all must pass). ``k`` solved
items of the same task go before the question as earlier user/assistant turns (k-shot).

Generation goes through the synth worker's backends (transformers on CPU, vLLM on GPUs), so
the eval sees the same decoding as the data it judged. Accuracy comes with its standard
error, ``sqrt(p (1 - p) / (n - 1))`` (the sample standard deviation over sqrt(n), as
lm-evaluation-harness reports it).

Task files are JSONL rows ``{"prompt" | "messages", "answer"?, "tests"?, "instruction_id_list"?,
"kwargs"?, "solution"?}``; ``solution`` (else ``Answer: <answer>``) is a shot's assistant turn.
The built-in ``arithmetic`` task is the synth worker's level-1 math problems (addition,
subtraction, multiplication, division of one-digit operands) drawn from a seed of its own among
the problems ``synthloop.problems.held_out`` reserves (no training data poses them), scored on the value;
``arithmetic_format`` is the same problems scored only on their instruction (a final
``Answer: <value>`` line).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from synthloop.verifiers.base import Instruction
from synthloop.verifiers.math import check_answer
from synthloop.verifiers.scoring import score
from synthloop.workers.eval.suites.jsonl import parse_jsonl

BUILTIN_TASKS = ("arithmetic", "arithmetic_format")
ARITHMETIC_KEYWORDS = ("addition", "subtraction", "multiplication", "division")

Message = dict[str, str]


@dataclass(frozen=True)
class GenItem:
    messages: tuple[Message, ...]
    answer: str | None = None
    tests: str | None = None
    instructions: tuple[Instruction, ...] = ()
    solution: str | None = None
    key: str = ""

    def shot(self) -> list[Message]:
        """This item, solved, as a user/assistant exchange for a k-shot prompt."""
        reply = self.solution or (f"Answer: {self.answer}" if self.answer is not None else "")
        return [*self.messages, {"role": "assistant", "content": reply}]


@dataclass
class GenResult:
    accuracy: float
    stderr: float
    n: int
    correct: list[bool] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)


def stderr_of_mean(p: float, n: int) -> float:
    """Standard error of a proportion from ``n`` 0/1 scores (0 for n < 2)."""
    return math.sqrt(p * (1.0 - p) / (n - 1)) if n > 1 else 0.0


def arithmetic_items(n: int, *, seed: int) -> list[GenItem]:
    """``n`` level-1 problems with exact answers and worked solutions, from ``seed``."""
    from synthloop.problems import held_out_problem
    from synthloop.verifiers.instructions import FinalAnswer
    from synthloop.verifiers.math import format_answer

    rng = random.Random(f"generative:arithmetic:{seed}")
    suffix = FinalAnswer.build().description()
    items = []
    for i in range(n):
        text, answer, solution = held_out_problem(rng.choice(ARITHMETIC_KEYWORDS), rng, 1)
        ans = format_answer(answer)
        items.append(GenItem(messages=({"role": "user", "content": f"{text}\n\n{suffix}"},),
                             answer=ans, solution=f"{solution}\nAnswer: {ans}", key=f"arithmetic-{i}"))
    return items


def arithmetic_format_items(n: int, *, seed: int) -> list[GenItem]:
    """The same problems as ``arithmetic``, judged only on the instruction they carry (end with
    a final ``Answer: <value>`` line), not on the value: what alignment changes first."""
    from synthloop.verifiers.instructions import FinalAnswer

    fmt = (FinalAnswer.build(),)
    return [GenItem(messages=it.messages, instructions=fmt, solution=it.solution, key=it.key.replace(
        "arithmetic", "arithmetic_format")) for it in arithmetic_items(n, seed=seed)]


def builtin_task(name: str, *, n: int, seed: int) -> list[GenItem]:
    if name == "arithmetic":
        return arithmetic_items(n, seed=seed)
    if name == "arithmetic_format":
        return arithmetic_format_items(n, seed=seed)
    raise ValueError(f"unknown builtin generative task {name!r}: expected one of {list(BUILTIN_TASKS)} "
                     "or an s3:// / file:// JSONL URI")


def parse_item(row: dict[str, Any], *, where: str) -> GenItem:
    from synthloop.workers.eval.suites.ifeval import release_instructions

    if isinstance(row.get("messages"), list):
        messages = tuple({"role": str(m["role"]), "content": str(m["content"])} for m in row["messages"])
    elif isinstance(row.get("prompt"), str):
        messages = ({"role": "user", "content": row["prompt"]},)
    else:
        raise ValueError(f"{where}: expected prompt (str) or messages (list of {{role, content}})")  # noqa: TRY004 - a bad row is a ValueError
    answer = row.get("answer")
    tests = row.get("tests")
    if isinstance(tests, list):
        tests = "\n".join(str(t) for t in tests)
    instructions = tuple(release_instructions(row)) if row.get("instruction_id_list") else ()
    if answer is None and not tests and not instructions:
        raise ValueError(f"{where}: nothing to verify: give answer, tests or instruction_id_list")
    return GenItem(messages=messages, answer=None if answer is None else str(answer),
                   tests=tests or None, instructions=instructions,
                   solution=row.get("solution"), key=str(row.get("key", row.get("id", ""))))


def parse_task(text: str, *, name: str) -> list[GenItem]:
    return parse_jsonl(text, label=f"generative task {name}", parse=lambda row, where: parse_item(row, where=where))


def verify(item: GenItem, response: str) -> bool:
    """Every check the item carries passes on ``response``."""
    if item.answer is not None and not check_answer(response, item.answer):
        return False
    if item.tests:
        from synthloop.verifiers.python_exec import check_program

        if not check_program(response, item.tests):
            return False
    return all(score(response, item.instructions, loose=False)) if item.instructions else True


def few_shot_prompt(items: Sequence[GenItem], index: int, k: int, *, seed: int) -> list[Message]:
    """``k`` other items of the task, solved, then the question (seeded; never the item itself)."""
    pool = [j for j in range(len(items)) if j != index]
    shots = random.Random(f"{seed}:{index}").sample(pool, min(k, len(pool)))
    return [m for j in shots for m in items[j].shot()] + list(items[index].messages)


class Memo:
    """Greedy completions by prompt: tasks that pose the same prompts (``arithmetic`` and
    ``arithmetic_format``) generate once."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.seen: dict[tuple[str, int], Any] = {}

    def generate(self, conversations: Sequence[Sequence[Message]], *, sampling: Any) -> list[Any]:
        keys = [(json.dumps(list(c), sort_keys=True), sampling.max_tokens) for c in conversations]
        todo = [i for i, k in enumerate(keys) if k not in self.seen]
        if todo:
            fresh = self.backend.generate([conversations[i] for i in todo], sampling=sampling)
            for i, out in zip(todo, fresh, strict=True):
                self.seen[keys[i]] = out
        return [self.seen[k] for k in keys]


def prompts(items: Sequence[GenItem], *, k_shot: int, seed: int, limit: int | None = None) -> list[list[Message]]:
    """The k-shot prompts of the first ``limit`` items (shots from the whole task)."""
    n = min(limit, len(items)) if limit else len(items)
    return [few_shot_prompt(items, i, k_shot, seed=seed) for i in range(n)]


def greedy_sampling(max_tokens: int) -> Any:
    from synthloop.workers.synth.backends.base import Sampling

    return Sampling(max_tokens=max_tokens, temperature=0.0, n=1)


def result_of(items: Sequence[GenItem], responses: Sequence[str]) -> GenResult:
    """Accuracy of ``responses`` to the first ``len(responses)`` items, with its stderr."""
    correct = [verify(item, r) for item, r in zip(items, responses, strict=False)]
    n = len(correct)
    p = sum(correct) / n if n else 0.0
    return GenResult(accuracy=p, stderr=stderr_of_mean(p, n), n=n, correct=correct, responses=list(responses))


def evaluate(backend: Any, items: Sequence[GenItem], *, k_shot: int, seed: int, max_tokens: int,
             limit: int | None = None) -> GenResult:
    """Greedy generation for the first ``limit`` items (shots from the whole task), then verify."""
    completions = backend.generate(prompts(items, k_shot=k_shot, seed=seed, limit=limit),
                                   sampling=greedy_sampling(max_tokens))
    return result_of(items, [c[0].text.strip() for c in completions])
