"""Python: programming problems per keyword, each with tests and a reference solution.

Tests are computed by running our own reference solution here (trusted code), then any
generated program is run against them in a resource-limited subprocess.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from synthloop.problems import LEVELS
from synthloop.workers.synth.families.base import FamilyContext, PromptItem
from synthloop.workers.synth.families.math import classify_keywords


@dataclass(frozen=True)
class Task:
    name: str
    signature: str
    description: str
    code: str
    inputs: Callable[[random.Random, int], list[tuple[Any, ...]]]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(("red", "blue", "sun", "sea", "map", "cat")) for _ in range(n))


TASKS: dict[str, Task] = {
    "strings": Task("reverse_words", "reverse_words(text: str) -> str",
                    "returns the words of `text` in reverse order, joined by single spaces",
                    "def reverse_words(text):\n    return ' '.join(reversed(text.split()))",
                    lambda r, lv: [(_words(r, r.randint(1, 3 + lv)),) for _ in range(3)]),
    "lists": Task("sum_even", "sum_even(numbers: list[int]) -> int",
                  "returns the sum of the even numbers in `numbers`",
                  "def sum_even(numbers):\n    return sum(n for n in numbers if n % 2 == 0)",
                  lambda r, lv: [([r.randint(-20, 20 * lv) for _ in range(r.randint(0, 4 + lv))],) for _ in range(3)]),
    "recursion": Task("factorial", "factorial(n: int) -> int", "returns n! (with factorial(0) == 1)",
                      "def factorial(n):\n    return 1 if n <= 1 else n * factorial(n - 1)",
                      lambda r, lv: [(r.randint(0, 4 * lv + 2),) for _ in range(3)]),
    "loops": Task("fizzbuzz", "fizzbuzz(n: int) -> list[str]",
                  "returns the FizzBuzz strings for 1..n ('Fizz' for multiples of 3, 'Buzz' of 5, 'FizzBuzz' of both, else the number)",
                  "def fizzbuzz(n):\n    out = []\n    for i in range(1, n + 1):\n        s = ('Fizz' if i % 3 == 0 else '') + ('Buzz' if i % 5 == 0 else '')\n        out.append(s or str(i))\n    return out",
                  lambda r, lv: [(r.randint(1, 5 * lv + 10),) for _ in range(2)]),
    "dictionaries": Task("count_words", "count_words(text: str) -> dict[str, int]",
                         "returns how many times each whitespace-separated word occurs in `text`",
                         "def count_words(text):\n    counts = {}\n    for w in text.split():\n        counts[w] = counts.get(w, 0) + 1\n    return counts",
                         lambda r, lv: [(_words(r, r.randint(1, 4 + 2 * lv)),) for _ in range(3)]),
    "number theory": Task("gcd", "gcd(a: int, b: int) -> int", "returns the greatest common divisor of two positive integers",
                          "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a",
                          lambda r, lv: [(r.randint(1, 50 * lv), r.randint(1, 50 * lv)) for _ in range(3)]),
    "sorting": Task("sort_desc", "sort_desc(numbers: list[int]) -> list[int]", "returns the numbers sorted from largest to smallest",
                    "def sort_desc(numbers):\n    return sorted(numbers, reverse=True)",
                    lambda r, lv: [([r.randint(-9, 30 * lv) for _ in range(r.randint(0, 5 + lv))],) for _ in range(3)]),
    "palindromes": Task("is_palindrome", "is_palindrome(text: str) -> bool",
                        "returns True when `text` reads the same backwards, ignoring case and spaces",
                        "def is_palindrome(text):\n    s = ''.join(text.lower().split())\n    return s == s[::-1]",
                        lambda r, lv: [(r.choice(("Never odd or even", "abc", "Race car", "level", "python")),) for _ in range(3)]),
    "sequences": Task("fibonacci", "fibonacci(n: int) -> int", "returns the n-th Fibonacci number (fibonacci(0) == 0, fibonacci(1) == 1)",
                      "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
                      lambda r, lv: [(r.randint(0, 8 * lv + 5),) for _ in range(3)]),
    "string counting": Task("count_vowels", "count_vowels(text: str) -> int", "returns the number of vowels (a, e, i, o, u, any case) in `text`",
                            "def count_vowels(text):\n    return sum(1 for c in text.lower() if c in 'aeiou')",
                            lambda r, lv: [(_words(r, r.randint(1, 3 + lv)).title(),) for _ in range(3)]),
}


def make_task(keyword: str, rng: random.Random, level: int) -> tuple[Task, list[str]]:
    task = TASKS.get(keyword.lower()) or rng.choice(list(TASKS.values()))
    namespace: dict[str, Any] = {}
    exec(task.code, namespace)  # noqa: S102 - our own reference solution, to compute expected outputs
    fn = namespace[task.name]
    tests = []
    for args in task.inputs(rng, level):
        tests.append(f"assert {task.name}({', '.join(map(repr, args))}) == {fn(*args)!r}")
    return task, tests


def build(ctx: FamilyContext, indices: Sequence[int]) -> list[PromptItem]:
    keywords = classify_keywords(ctx, list(ctx.options.keywords), subject="Python programming") or list(TASKS)
    items = []
    for j in indices:
        rng = ctx.rng(j)
        keyword = rng.choice(keywords)
        level = rng.choice(ctx.options.levels or LEVELS)
        task, tests = make_task(keyword, rng, level)
        topic = "" if keyword.lower() in TASKS else f" (topic: {keyword})"
        prompt = (
            f"Write a Python function `{task.signature}` that {task.description}{topic}. "
            "Put the complete code in one ```python code block."
        )
        items.append(
            PromptItem(
                id=f"python-{j}",
                family="python",
                messages=ctx.user(prompt),
                tests=tests,
                reference=f"```python\n{task.code}\n```",
                meta={"keyword": keyword, "level": level, "function": task.name},
            )
        )
    return items
