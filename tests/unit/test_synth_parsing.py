"""Parsing realistic, messy generator output: every parser returns empty on garbage."""

from __future__ import annotations

import pytest

from synthloop.workers.synth.parsing import (
    clean_response,
    is_refusal,
    parse_list,
    parse_single,
    parse_yes_no,
    strip_polite_filler,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sure! Here are three subtopics:\n\n1. Black holes\n2. Exoplanets\n3. Dark matter\n\nLet me know!",
         ["Black holes", "Exoplanets", "Dark matter"]),
        ("1) Tides\n2) Coral reefs\n3) Deep-sea vents", ["Tides", "Coral reefs", "Deep-sea vents"]),
        ("(1) alpha\n(2) beta", ["alpha", "beta"]),
        ("- composting\n- pruning\n* watering\n• soil testing", ["composting", "pruning", "watering", "soil testing"]),
        ("1. **Budgeting**: tracking spending\n2. **Saving**", ["Budgeting: tracking spending", "Saving"]),
        ('```json\n["inflation", "interest rates", "trade"]\n```', ["inflation", "interest rates", "trade"]),
        ('{"subtopics": ["rhythm", "harmony"]}', ["rhythm", "harmony"]),
        ('[{"topic": "glaciers", "id": 1}, {"topic": "earthquakes", "id": 2}]', ["glaciers", "earthquakes"]),
        ("topics:\n  - volcanoes\n  - minerals\n", ["volcanoes", "minerals"]),
        ('Here you go: ["one thing", "two things", "three th', ["one thing", "two things"]),
        ("1. Same\n2. same\n3. Other", ["Same", "Other"]),
        ("Step 1: mix flour\nStep 2: add water", ["mix flour", "add water"]),
    ],
)
def test_parse_list_formats(text: str, expected: list[str]) -> None:
    assert parse_list(text) == expected


def test_parse_list_drops_a_cut_off_last_item_only_when_truncated() -> None:
    text = "1. The water cycle.\n2. Ocean currents.\n3. The role of salin"
    assert parse_list(text, truncated=True) == ["The water cycle.", "Ocean currents."]
    assert parse_list(text) == ["The water cycle.", "Ocean currents.", "The role of salin"]


@pytest.mark.parametrize("garbage", ["", "   ", "qwe asd zxc lkj", "armer helpsL viard morningprint(total(", "{not json"])
def test_parse_list_returns_empty_on_garbage(garbage: str) -> None:
    assert parse_list(garbage) == []


def test_parse_list_respects_max_items_and_special_tokens() -> None:
    assert parse_list("<extra_id_1>1. a b\n2. c d\n3. e f</s>", max_items=2) == ["a b", "c d"]


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ('Sure, here is the revised question:\n\n"What are the main causes of ocean acidification?"', {"question": True},
         "What are the main causes of ocean acidification?"),
        ("**Revised question:** How do tides form near coastlines? I hope this helps.", {"question": True},
         "How do tides form near coastlines?"),
        ("Question: Why is the sky blue", {"question": True}, None),
        ("Write a newsletter about urban gardening for beginners.", {"sentence": True},
         "Write a newsletter about urban gardening for beginners."),
        ("Write a newsletter about urban gardening for beg", {"sentence": True}, None),
        ("ok", {}, None),
        ("Certainly!\n\nInstruction: Summarize the passage in three bullet points.\n\nThis keeps it short.", {"sentence": True},
         "Summarize the passage in three bullet points."),
    ],
)
def test_parse_single(text: str, kwargs: dict, expected: str | None) -> None:
    assert parse_single(text, **kwargs) == expected


def test_clean_response_cuts_hallucinated_next_turn_and_special_tokens() -> None:
    assert clean_response("The answer is 4.\n<extra_id_1>User\nand now?") == "The answer is 4."
    assert clean_response("Hi there.\nUser\nnext question") == "Hi there."
    assert clean_response("  </s>  ") == ""


def test_polite_filler_is_stripped_from_user_turns() -> None:
    assert strip_polite_filler("Thank you for the detailed answer! Can you explain tides? Thanks!") == "Can you explain tides?"
    assert strip_polite_filler("Great explanation. I appreciate it. What about rivers?") == "What about rivers?"
    assert strip_polite_filler("Thanks!") == ""
    assert strip_polite_filler("How do thanks work in Japan?") == "How do thanks work in Japan?"


def test_refusal_and_yes_no() -> None:
    assert is_refusal("I'm sorry, but I can't help with that request.")
    assert is_refusal("As an AI language model, I cannot browse the internet.")
    assert not is_refusal("Sorry for the wait! Here is the recipe.")
    assert parse_yes_no("Yes.") is True
    assert parse_yes_no("No, it is a cooking term.") is False
    assert parse_yes_no("Perhaps") is None
