"""Every instruction type passes a satisfying response and fails a violating one."""

from __future__ import annotations

import json
import random

import pytest

from synthloop.verifiers import (
    REGISTRY,
    instruction_from_dict,
    prompt_passes,
    sample_instructions,
    score,
)

pytestmark = pytest.mark.unit

# (instruction id, kwargs, passing response, failing response)
CASES: list[tuple[str, dict, str, str]] = [
    ("keywords:existence", {"keywords": ["river", "lantern"]}, "A lantern by the River.", "A lantern by the sea."),
    ("keywords:frequency", {"keyword": "orbit", "frequency": 2, "relation": "at least"}, "orbit and Orbit", "one orbit only"),
    ("keywords:frequency", {"keyword": "orbit", "frequency": 2, "relation": "less than"}, "one orbit only", "orbit orbit"),
    ("keywords:forbidden_words", {"forbidden_words": ["storm"]}, "Calm skies and brainstorming.", "A Storm came."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 3, "let_relation": "at least"}, "Zoe zips and zooms", "Zoe sings"),
    ("language:response_language", {"language": "es"}, "Desayunamos en McDonald's hoy", "Today we visit the Louvre"),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two!", "One. Two! Three? Four."),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"}, "One here. And two", "Just one"),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First part.\n***\nSecond part.", "First.\n***\n\n***\nThird."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"}, "one two three four five", "one two three"),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "one two", "a b c d e f"),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "harbor"},
        "Intro text.\n\nHarbor, the second paragraph.",
        "Intro text.\n\nThe harbor is second.",
    ),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].", "Dear [name]."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Body.\nP.S. remember this", "Body without it."),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Body.\n\nP.P.S extra", "Body.\nPS extra"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "List:\n* one\n- two", "List:\n* one\n* two\n* three"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*first* and **second**", "*first* only, ** **"),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2}, "SECTION 1\nA\nSECTION 2\nB", "SECTION 1\nonly one"),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', "{a: 1} is not json"),
    ("detectable_format:title", {}, "<<A Title>>\nbody", "<< >> no title"),
    ("detectable_format:constrained_response", {}, "My answer is yes.", "Yes, I think so."),
    ("detectable_format:final_answer", {}, "We add.\nAnswer: 12", "We add. The result is 12."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "Write a poem. Roses are red.", "Roses are red. Write a poem."),
    ("combination:two_responses", {}, "First answer.\n******\nSecond answer.", "Same.\n******\nSame."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Done. Any other questions?", "Any other questions? Done."),
    ("startend:start_checker", {"start_phrase": "Certainly."}, "Certainly. Here it is.", "Here it is. Certainly."),
    ("startend:quotation", {}, '"All quoted."', 'Not "quoted".'),
    ("change_case:english_lowercase", {}, "all lower case here.", "Not all lower."),
    ("change_case:english_capital", {}, "ALL CAPS HERE.", "ALL CAPS but one."),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"}, "VERY LOUD words", "Only ONE loud"),
    ("punctuation:no_comma", {}, "No commas here.", "One, comma."),
]


def test_registry_has_at_least_twenty_types_and_every_type_is_tested() -> None:
    assert len(REGISTRY) >= 20
    assert {case[0] for case in CASES} == set(REGISTRY)


@pytest.mark.parametrize(("instruction_id", "kwargs", "good", "bad"), CASES)
def test_instruction_passes_and_fails(instruction_id: str, kwargs: dict, good: str, bad: str) -> None:
    inst = REGISTRY[instruction_id].build(**kwargs)
    assert inst.check(good), f"{instruction_id} should pass {good!r}"
    assert not inst.check(bad), f"{instruction_id} should fail {bad!r}"
    assert score(good, [inst], loose=False) == [True]
    assert score(bad, [inst], loose=False) == [False]
    assert inst.description().strip()


@pytest.mark.parametrize("instruction_id", sorted(REGISTRY))
def test_round_trip_through_json(instruction_id: str) -> None:
    cls = REGISTRY[instruction_id]
    extra = {"prompt_to_repeat": "Say hi."} if cls.requires else {}
    inst = cls.build(rng=random.Random(3), **extra)
    again = instruction_from_dict(json.loads(json.dumps(inst.to_dict())))
    assert again == inst


def test_loose_scoring_forgives_wrapper_lines_and_markdown_stars() -> None:
    inst = REGISTRY["startend:end_checker"].build(end_phrase="Any other questions?")
    response = "Sure! Here you go:\nThe answer. Any other questions?\n---"
    assert score(response, [inst], loose=False) == [False]
    assert score(response, [inst], loose=True) == [True]
    quoted = REGISTRY["startend:quotation"].build()
    assert score('**"quoted"**', [quoted], loose=False) == [False]
    assert score('**"quoted"**', [quoted], loose=True) == [True]


def test_empty_response_fails_every_instruction_even_forbidding_ones() -> None:
    inst = REGISTRY["punctuation:no_comma"].build()
    assert score("   ", [inst], loose=False) == [False]
    assert score("", [inst], loose=True) == [False]


def test_prompt_level_needs_every_instruction() -> None:
    a = REGISTRY["punctuation:no_comma"].build()
    b = REGISTRY["change_case:english_lowercase"].build()
    assert prompt_passes("this sentence is written in plain english words.", [a, b], loose=False)
    with_comma = "this sentence, with a comma, is written in english."
    assert not prompt_passes(with_comma, [a, b], loose=False)
    assert score(with_comma, [a, b], loose=False) == [False, True]
    # the reference's case rules also ask langdetect for English: Welsh-looking text fails
    assert score("all good here", [b], loose=False) == [False]


def test_build_rejects_unknown_and_missing_parameters() -> None:
    with pytest.raises(ValueError, match="unknown parameter.*colour"):
        REGISTRY["punctuation:no_comma"].build(colour="red")
    with pytest.raises(ValueError, match="prompt_to_repeat"):
        REGISTRY["combination:repeat_prompt"].build()
    with pytest.raises(KeyError, match="unknown instruction id 'nope:x'"):
        instruction_from_dict({"id": "nope:x"})


def test_sampled_sets_are_compatible_and_deterministic() -> None:
    for seed in range(50):
        first = sample_instructions(random.Random(seed), 3)
        again = sample_instructions(random.Random(seed), 3)
        assert first == again
        ids = [i.id for i in first]
        assert len(set(ids)) == len(ids) == 3
        for inst in first:
            assert not inst.conflicts & set(ids)
            assert inst.id != "combination:repeat_prompt"
    with_prompt = {i.id for s in range(200) for i in sample_instructions(random.Random(s), 2, prompt="Say hi.")}
    assert "combination:repeat_prompt" in with_prompt
