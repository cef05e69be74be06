"""Arithmetic word problems from templates, each with its exact answer and worked solution, and
the held-out split.

One module because four places draw from it: the synth worker's math family (training prompts),
the pretraining corpus (worked problems), the demo's reward ratings, and the generative eval
(held-out problems). :func:`held_out` reserves one problem text in four for evaluation, so no
stage of the loop trains on what the eval asks, whatever the seeds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from fractions import Fraction

from synthloop.verifiers.math import format_answer

Problem = tuple[str, Fraction, str]  # text, answer, worked solution


def _n(rng: random.Random, level: int, lo: int = 2) -> int:
    """An operand of ``level`` digits at most: level 1 is the one-digit tables."""
    return rng.randint(lo, 10 ** level - 1)


def _addition(rng: random.Random, level: int) -> Problem:
    a, b = _n(rng, level), _n(rng, level)
    return (f"A shop sold {a} apples in the morning and {b} apples in the afternoon. How many apples did it sell in total?",
            Fraction(a + b), f"{a} + {b} = {a + b}.")


def _subtraction(rng: random.Random, level: int) -> Problem:
    b, left = _n(rng, level), _n(rng, level, 1)
    a = b + left
    return (f"A library had {a} books and lent out {b}. How many books are left?", Fraction(left), f"{a} - {b} = {left}.")


def _multiplication(rng: random.Random, level: int) -> Problem:
    a, b = _n(rng, level), _n(rng, level)
    return (f"There are {a} boxes with {b} pencils in each box. How many pencils are there?", Fraction(a * b), f"{a} x {b} = {a * b}.")


def _division(rng: random.Random, level: int) -> Problem:
    b = _n(rng, level)
    q = _n(rng, level)
    return (f"{b * q} stickers are shared equally among {b} children. How many stickers does each child get?",
            Fraction(q), f"{b * q} / {b} = {q}.")


def _percentage(rng: random.Random, level: int) -> Problem:
    p = rng.choice((10, 20, 25, 50, 5, 15, 75))
    n = rng.randint(1, 20 * level) * 20
    ans = Fraction(p * n, 100)
    return (f"What is {p}% of {n}?", ans, f"{p}/100 x {n} = {format_answer(ans)}.")


def _fractions(rng: random.Random, level: int) -> Problem:
    b, d = rng.randint(2, 3 + 2 * level), rng.randint(2, 3 + 2 * level)
    a, c = rng.randint(1, b - 1), rng.randint(1, d - 1)
    ans = Fraction(a, b) + Fraction(c, d)
    return (f"What is {a}/{b} + {c}/{d}? Give the answer as a fraction in lowest terms.", ans,
            f"{a}/{b} + {c}/{d} = {ans.numerator}/{ans.denominator}." if ans.denominator != 1 else f"{a}/{b} + {c}/{d} = {ans}.")


def _area(rng: random.Random, level: int) -> Problem:
    w, h = _n(rng, level), _n(rng, level)
    return (f"A rectangle is {w} m wide and {h} m long. What is its area in square metres?", Fraction(w * h), f"{w} x {h} = {w * h}.")


def _perimeter(rng: random.Random, level: int) -> Problem:
    w, h = _n(rng, level), _n(rng, level)
    return (f"A rectangular garden is {w} m by {h} m. How many metres of fence go around it?",
            Fraction(2 * (w + h)), f"2 x ({w} + {h}) = {2 * (w + h)}.")


def _average(rng: random.Random, level: int) -> Problem:
    xs = [_n(rng, level) for _ in range(2 + level)]
    ans = Fraction(sum(xs), len(xs))
    return (f"What is the average of {', '.join(map(str, xs))}?", ans,
            f"({' + '.join(map(str, xs))}) / {len(xs)} = {format_answer(ans)}.")


def _linear(rng: random.Random, level: int) -> Problem:
    a, x, b = rng.randint(2, 3 * level + 2), rng.randint(-5 * level, 10 * level), rng.randint(1, 20 * level)
    c = a * x + b
    return (f"Solve for x: {a}x + {b} = {c}.", Fraction(x), f"{a}x = {c} - {b} = {c - b}, so x = {x}.")


def _speed(rng: random.Random, level: int) -> Problem:
    t = rng.randint(2, 2 + 2 * level)
    v = rng.randint(10, 40 * level)
    return (f"A train travels {v * t} km in {t} hours at a constant speed. What is its speed in km per hour?",
            Fraction(v), f"{v * t} / {t} = {v}.")


def _interest(rng: random.Random, level: int) -> Problem:
    p = rng.randint(1, 10 * level) * 100
    r = rng.choice((2, 3, 4, 5, 10))
    t = rng.randint(1, 2 + level)
    ans = Fraction(p * r * t, 100)
    return (f"How much simple interest does ${p} earn at {r}% per year for {t} years?", ans,
            f"{p} x {r}/100 x {t} = {format_answer(ans)}.")


def _ratio(rng: random.Random, level: int) -> Problem:
    a, b = rng.randint(1, 4 + level), rng.randint(1, 4 + level)
    k = _n(rng, level)
    total = (a + b) * k
    return (f"{total} marbles are split between Ana and Ben in the ratio {a}:{b}. How many marbles does Ana get?",
            Fraction(a * k), f"{total} / ({a} + {b}) x {a} = {a * k}.")


TEMPLATES: dict[str, Callable[[random.Random, int], Problem]] = {
    "addition": _addition, "subtraction": _subtraction, "multiplication": _multiplication,
    "division": _division, "percentage": _percentage, "fractions": _fractions, "area": _area,
    "perimeter": _perimeter, "average": _average, "linear equations": _linear, "speed": _speed,
    "simple interest": _interest, "ratios": _ratio,
}
LEVELS = (1, 2, 3)


def make_problem(keyword: str, rng: random.Random, level: int) -> Problem:
    """A problem for ``keyword`` (a template of that name, else one picked for it)."""
    template = TEMPLATES.get(keyword.lower()) or rng.choice(list(TEMPLATES.values()))
    text, answer, solution = template(rng, level)
    if keyword.lower() not in TEMPLATES:
        text = f"(Topic: {keyword}) {text}"
    return text, answer, solution


def held_out(text: str) -> bool:
    """Whether a problem is reserved for evaluation: one in four, by a hash of its text.

    The generative eval poses only these (:func:`held_out_problem`); the synth worker, the
    pretraining corpus and the demo's ratings never do (:func:`training_problem`). So held-out
    accuracy is measured on problems no stage of the loop trained on, whatever the seeds.
    """
    return hashlib.sha256(text.encode()).digest()[0] % 4 == 0


def _drawn(keyword: str, rng: random.Random, level: int, *, reserved: bool) -> Problem:
    while True:
        problem = make_problem(keyword, rng, level)
        if held_out(problem[0]) == reserved:
            return problem


def training_problem(keyword: str, rng: random.Random, level: int) -> Problem:
    """A problem for training data: :func:`make_problem`, redrawn while it is held out."""
    return _drawn(keyword, rng, level, reserved=False)


def held_out_problem(keyword: str, rng: random.Random, level: int) -> Problem:
    """A problem for evaluation: :func:`make_problem`, redrawn until it is held out."""
    return _drawn(keyword, rng, level, reserved=True)
