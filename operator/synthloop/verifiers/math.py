"""Final-answer extraction and checking for math problems with a known answer.

Models state answers in many ways (``Answer: 12``, ``\\boxed{12}``, ``#### 12``, "the answer is
12", or just a last number); we try the explicit forms first and fall back to the last number,
then compare numerically (``1/2`` == ``0.5`` == ``50%`` is *not* assumed: percent stays as is).
"""

from __future__ import annotations

import re
from fractions import Fraction

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?"
_EXPLICIT = (
    re.compile(r"answer\s*:\s*(?P<a>[^\n]+)", re.IGNORECASE),
    re.compile(r"\\boxed\{(?P<a>[^{}]+)\}"),
    re.compile(r"####\s*(?P<a>[^\n]+)"),
    re.compile(r"answer\s+is\s*:?\s*(?P<a>[^\n]+)", re.IGNORECASE),
)


def parse_number(text: str) -> Fraction | None:
    """``"1,234.5"``, ``"$12"``, ``"3/4"``, ``"-2"`` -> an exact Fraction; else None."""
    value = text.strip().strip(".").replace("$", "").replace(",", "").strip()
    if not re.fullmatch(r"-?\d+(?:\.\d+)?(?:/\d+)?", value):
        return None
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        return None


def _clean(answer: str) -> str:
    answer = answer.strip().strip("*").strip()
    numbers = re.findall(_NUMBER, answer)
    if numbers:
        return str(numbers[0]).rstrip(".").replace("$", "")
    return answer.rstrip(".").strip()


def extract_answer(response: str) -> str | None:
    """The answer the response commits to, or None when it states none."""
    for pattern in _EXPLICIT:
        matches = list(pattern.finditer(response))
        if matches:
            return _clean(matches[-1].group("a"))
    numbers = re.findall(_NUMBER, response)
    if numbers:
        return str(numbers[-1]).rstrip(".").replace("$", "")
    return None


def answers_equal(given: str, expected: str | float | Fraction) -> bool:
    expected_text = str(expected)
    a = parse_number(given)
    b = expected if isinstance(expected, Fraction) else parse_number(expected_text)
    if a is not None and b is not None:
        return abs(float(a - b)) <= 1e-6 * max(1.0, abs(float(b)))
    return given.strip().lower().rstrip(".") == expected_text.strip().lower().rstrip(".")


def check_answer(response: str, answer: str | float | Fraction) -> bool:
    """Whether ``response``'s final answer equals ``answer``."""
    given = extract_answer(response)
    return given is not None and answers_equal(given, answer)


def format_answer(value: Fraction | float) -> str:
    """Canonical text for a computed answer: integers plain, else a reduced fraction."""
    if isinstance(value, float):
        value = Fraction(value).limit_denominator(10_000)
    value = Fraction(value)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
