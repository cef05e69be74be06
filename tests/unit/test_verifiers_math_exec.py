"""Math answer extraction and the sandboxed Python test runner."""

from __future__ import annotations

from fractions import Fraction

import pytest

from synthloop.verifiers.math import check_answer, extract_answer, format_answer
from synthloop.verifiers.python_exec import check_program, extract_code, run_python

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("We add 3 and 4.\nAnswer: 7", "7"),
        ("so the total is \\boxed{1,250}.", "1250"),
        ("Work...\n#### 42", "42"),
        ("Thus the answer is $3.50.", "3.50"),
        ("First 2 apples then 5 more, 7 in all.", "7"),
        ("The answer is: 3/4", "3/4"),
        ("**Answer:** -12", "-12"),
    ],
)
def test_extract_answer(response: str, expected: str) -> None:
    assert extract_answer(response) is not None
    assert check_answer(response, expected)


def test_check_answer_rejects_wrong_and_missing_answers() -> None:
    assert not check_answer("Answer: 8", 7)
    assert not check_answer("no numbers at all", 7)
    assert extract_answer("no numbers at all") is None
    assert check_answer("Answer: 0.75", Fraction(3, 4))
    assert check_answer("Answer: 1,000", 1000)
    # the explicit answer wins over later numbers
    assert check_answer("Answer: 12\n(checked in 3 steps)", 12)


def test_format_answer() -> None:
    assert format_answer(Fraction(10, 2)) == "5"
    assert format_answer(Fraction(3, 4)) == "3/4"
    assert format_answer(7) == "7"


def test_extract_code_prefers_fenced_block() -> None:
    text = "Here:\n```python\ndef f(x):\n    return x * 2\n```\nThat's it."
    assert extract_code(text) == "def f(x):\n    return x * 2"
    assert extract_code("def g():\n    return 1") == "def g():\n    return 1"
    # truncated generation: an unterminated fence still yields the code
    assert extract_code("```python\ndef h():\n    return 3").startswith("def h()")


def test_program_passes_and_fails_its_tests() -> None:
    code = "```python\ndef add(a, b):\n    return a + b\n```"
    assert check_program(code, ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"])
    assert not check_program(code, "assert add(1, 2) == 4")
    assert not check_program("this is not python", "assert True")


def test_runaway_program_is_killed_by_time_and_memory_limits() -> None:
    slow = run_python("while True:\n    pass", timeout_s=1.0)
    assert slow.timed_out and not slow.passed
    hog = run_python("x = bytearray(2 * 1024 ** 3)", memory_mb=256, timeout_s=5.0)
    assert not hog.passed and "MemoryError" in hog.stderr


def test_program_cannot_see_parent_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "topsecret")
    result = run_python("import os\nassert 'AWS_SECRET_ACCESS_KEY' not in os.environ")
    assert result.passed, result.stderr


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        run_python("pass", timeout_s=0)
