"""Prompt families and the in-memory shard pipeline, with a real tiny torch model.

The random-init model writes near-garbage, like the demo's first round: the pipeline must
count every parse failure, fall back to templates, rank math/Python by ground truth (so the
reference solution wins) and never crash. A rule-based backend that writes well-formed
answers checks the other path: parsed generator output is used, not the templates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from synthloop.api.v1alpha1.synth import PROMPT_FAMILIES as FAMILY_NAMES
from synthloop.api.v1alpha1.synth import Dialogues
from synthloop.api.worker import SynthParams
from synthloop.workers.synth import formats
from synthloop.workers.synth.backends.base import Completion, GenerationBackend, Message, Sampling
from synthloop.workers.synth.families import FAMILIES, FamilyContext
from synthloop.workers.synth.families.base import FamilyOptions
from synthloop.workers.synth.pipeline import Pipeline, verify
from synthloop.workers.synth.stats import Stats

pytestmark = pytest.mark.unit
#: The spec's generator as the worker receives it (the backend here is the test's own).
GENERATOR: dict[str, Any] = {"backend": "transformers", "model": {"uri": "file:///unused"}}


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthloop.models.build import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("gen"), seed=0)


@pytest.fixture(scope="module")
def backend(generator_dir: Path) -> GenerationBackend:
    from synthloop.workers.synth.backends.transformers_backend import TransformersBackend

    return TransformersBackend(model=str(generator_dir), batch_size=32, num_threads=1)


@pytest.fixture(scope="module")
def reward_dir(generator_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthloop.models.io import load_tokenizer
    from synthloop.models.reward import build_reward_model

    out = tmp_path_factory.mktemp("rm")
    build_reward_model(generator_dir).save_pretrained(out)
    load_tokenizer(str(generator_dir)).save_pretrained(out)
    return out


class RuleBackend(GenerationBackend):
    """A deterministic generator that answers each kind of request well-formedly."""

    model_id = "rules"

    def reply(self, text: str) -> str:
        if text.startswith("List 5 subtopics of"):
            topic = text.removeprefix("List 5 subtopics of ").split(".")[0]
            return f"Sure! Here are some:\n1. History of {topic}\n2. Tools of {topic}\n3. Future of {topic}"
        if text.startswith("Write one question"):
            return "Question: What is the most surprising fact about " + text.split("about ")[1].split(".")[0] + "?"
        if text.startswith("Revise the following question"):
            q = text.split("Question: ")[1]
            return f'Here is the revised question:\n"{q[:-1]}, and how do experts measure it today?"'
        if text.startswith(("Write an instruction", "Revise this writing", "Read the document", "Write a request")):
            return "Certainly!\nExplain the topic with two concrete examples."
        if text.startswith("Is '"):
            return "No." if "banana" in text else "Yes."
        if "next message" in text:
            return "Thanks! Could you give one more example?"
        return "A plain, helpful answer."

    def generate(self, conversations: Sequence[Sequence[Message]], *, sampling: Sampling) -> list[list[Completion]]:
        return [[Completion(self.reply(c[-1]["content"]))] * sampling.n for c in conversations]


def ctx_for(family: str, backend: GenerationBackend, stats: Stats, **options: Any) -> FamilyContext:
    seeds = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return FamilyContext(family=family, options=FamilyOptions(**seeds), backend=backend,
                         sampling=Sampling(max_tokens=16), stats=stats, seed=7)


def test_math_and_python_references_pass_their_verifiers() -> None:
    stats = Stats()
    rules = RuleBackend()
    for family in ("math", "python"):
        items = FAMILIES[family](ctx_for(family, rules, stats), range(12))
        assert len(items) == 12
        for item in items:
            assert item.has_verifier and item.reference
            score, ok = verify(item, item.reference, timeout_s=5, memory_mb=512)
            assert ok, (item.id, item.reference)
            bad_score, bad_ok = verify(item, "I think it is 0.\nAnswer: -99999", timeout_s=5, memory_mb=512)
            assert not bad_ok and bad_score < score


def test_items_are_identical_whatever_the_sharding() -> None:
    rules = RuleBackend()
    for family in ("math", "python", "openQA", "instructionFollowing"):
        whole = FAMILIES[family](ctx_for(family, rules, Stats()), range(6))
        parts = FAMILIES[family](ctx_for(family, rules, Stats()), range(4)) + \
            FAMILIES[family](ctx_for(family, rules, Stats()), range(4, 6))
        assert [(i.id, i.messages, i.answer, i.tests) for i in whole] == [(i.id, i.messages, i.answer, i.tests) for i in parts]


def test_parsed_generator_output_is_used_when_it_parses() -> None:
    stats = Stats()
    items = FAMILIES["openQA"](ctx_for("openQA", RuleBackend(), stats, topics=["glaciers"]), range(3))
    assert stats.get("openQA", "parse_failures") == 0 and stats.get("openQA", "template_fallbacks") == 0
    for item in items:
        text = item.messages[-1]["content"]
        assert "glaciers" in text and text.endswith("how do experts measure it today?")
    stats = Stats()
    kept = FAMILIES["math"](ctx_for("math", RuleBackend(), stats, keywords=["fractions", "banana"]), range(4))
    assert stats.get("math", "keywords_rejected") == 1
    assert {i.meta["keyword"] for i in kept} == {"fractions"}


def test_instruction_following_prompts_carry_their_constraints() -> None:
    from synthloop.verifiers.registry import instruction_from_dict

    items = FAMILIES["instructionFollowing"](ctx_for("instructionFollowing", RuleBackend(), Stats(),
                                                     instructions_per_prompt=2), range(12))
    assert len(items) == 12
    assert any(i.meta["revise"] for i in items) and not all(i.meta["revise"] for i in items)
    for item in items:
        assert len(item.instructions) == 2
        for data in item.instructions:
            assert instruction_from_dict(data).description() in item.messages[-1]["content"]


def test_pipeline_on_a_garbage_generator_counts_and_keeps_going(backend: GenerationBackend) -> None:
    params = SynthParams.model_validate({
        "prompts": {name: 2 for name in FAMILY_NAMES} | {"refusals": 2},
        "generator": {**GENERATOR, "maxTokens": 12},
        "dialogues": {"count": 2, "turns": 2},
        "preference": {"includeReference": True, "responsesPerPrompt": 2},
    })
    seen: list[str] = []
    out = Pipeline(params, backend=backend, progress=lambda stage, done, total: seen.append(stage)).run()
    stats = out.stats
    assert "prompts" in seen and "responses" in seen
    for name in FAMILY_NAMES:
        assert stats.get(name, "prompts") == 2, name
        assert stats.get(name, "generated") == 4, name  # two responses per prompt
    assert stats.total("parse_failures") > 0  # a random model cannot write numbered lists
    assert stats.get("openQA", "template_fallbacks") > 0
    # Ground truth ranks math and python: the reference beats garbage, and is the SFT answer.
    math_pairs = [r for r in out.preference if r["family"] == "math"]
    assert len(math_pairs) == 2
    for row in math_pairs:
        assert row["judge"] == "verifier" and row["chosen_reward"] > row["rejected_reward"]
        assert re.search(r"Answer: \S+$", row["chosen"][0]["content"])
    assert stats.get("math", "sft_accepted") == 2 and stats.get("python", "sft_accepted") == 2
    # Without a reward model, families without a verifier cannot be ranked: counted, not guessed.
    assert stats.get("openQA", "pairs_dropped.no_judge") == 2
    # Refusal prompts get the refusal response.
    refusals = [r for r in out.sft if r["family"] == "refusal"]
    assert len(refusals) == 2 and all("can't" in r["messages"][-1]["content"] or "not able" in r["messages"][-1]["content"] for r in refusals)
    assert stats.get("dialogue", "sft_accepted") == len([r for r in out.sft if r["family"] == "dialogue"])
    for row in out.sft:
        formats.validate_trl_sft(row)
    for row in out.preference:
        formats.validate_trl_preference(row)
    assert stats.total("sft_accepted") == len(out.sft)
    assert stats.total("preference_accepted") == len(out.preference)


def test_reward_model_ranks_and_filters(backend: GenerationBackend, reward_dir: Path) -> None:
    from synthloop.workers.synth.judge import RewardJudge

    judge = RewardJudge(str(reward_dir), num_threads=1)
    spec = {"prompts": {"openQA": 3, "writing": 2}, "generator": {**GENERATOR, "maxTokens": 10},
            "dialogues": {"count": 1, "turns": 1}, "preference": {"responsesPerPrompt": 3}}
    out = Pipeline(SynthParams.model_validate(spec), backend=backend, judge=judge).run()
    judged = [r for r in out.preference if r["judge"] == "reward_model"]
    assert len(judged) == len(out.preference) == out.stats.total("preference_accepted") > 0
    assert all(r["chosen_reward"] > r["rejected_reward"] for r in judged)
    strict = Pipeline(SynthParams.model_validate({**spec, "rewardFilter": {"threshold": 1e9}}), backend=backend,
                      judge=judge).run()
    assert strict.sft == []
    assert strict.stats.get("openQA", "filtered_by_reward") == 3
    assert strict.stats.get("dialogue", "filtered_by_reward") == 1
    assert strict.stats.acceptance_rate("openQA") == 0.0


def test_dialogues_have_three_user_turns_without_filler_and_decode_greedily() -> None:
    from synthloop.workers.synth.dialogues import make_dialogues

    class Recording(RuleBackend):
        def __init__(self) -> None:
            self.temperatures: list[float] = []

        def generate(self, conversations: Sequence[Sequence[Message]], *, sampling: Sampling) -> list[list[Completion]]:
            self.temperatures.append(sampling.temperature)
            return super().generate(conversations, sampling=sampling)

    backend = Recording()
    stats = Stats()
    made = make_dialogues(Dialogues(count=2, personas=["a retired sailor"]), indices=[0, 1], backend=backend,
                          max_tokens=32, stats=stats, seed=0)
    assert len(made) == 2 and set(backend.temperatures) == {0.0}
    for dialogue_id, messages in made:
        assert dialogue_id.startswith("dialogue-")
        assert [m["role"] for m in messages] == ["user", "assistant"] * 3
        assert [m["content"] for m in messages if m["role"] == "user"][1:] == ["Could you give one more example?"] * 2
    assert stats.get("dialogue", "parse_failures") == 0 and stats.get("dialogue", "prompts") == 2


def test_transformers_backend_batching_matches_one_at_a_time(backend: GenerationBackend) -> None:
    """Left padding must not change what a prompt generates (greedy), and order is kept."""
    convs = [[{"role": "user", "content": "hi"}],
             [{"role": "user", "content": "Explain the water cycle to a child in simple words please."}],
             [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 7 + 5?"}]]
    greedy = Sampling(max_tokens=10, temperature=0.0)
    batched = backend.generate(convs, sampling=greedy)
    singles = [backend.generate([c], sampling=greedy)[0] for c in convs]
    assert [[x.text for x in row] for row in batched] == [[x.text for x in row] for row in singles]
    assert all(row[0].completion_tokens <= 10 for row in batched)


def test_transformers_backend_fits_long_prompts_into_the_context(backend: GenerationBackend) -> None:
    long = [{"role": "user", "content": "word " * 2000}]
    out = backend.generate([long], sampling=Sampling(max_tokens=10_000, temperature=0.0))
    context = backend.max_positions  # type: ignore[attr-defined]
    assert out[0][0].prompt_tokens + out[0][0].completion_tokens <= context
    assert out[0][0].prompt_tokens >= context // 2
