"""Exact and near-duplicate removal."""

from __future__ import annotations

import random

import pytest

from synthloop.workers.synth.dedup import (
    MinHasher,
    dedup,
    jaccard,
    normalize,
    prompt_text,
    shingles,
)

pytestmark = pytest.mark.unit


def test_exact_duplicates_ignore_case_and_punctuation() -> None:
    rows = ["What is the capital of France?", "what is the capital of france", "How do tides work?"]
    result = dedup(rows, key=str, near_threshold=None)
    assert result.kept == [0, 2] and result.exact == 1 and result.near == 0


def test_near_duplicates_removed_above_threshold_only() -> None:
    base = "Explain how photosynthesis turns sunlight water and carbon dioxide into sugar in green plants"
    near = base + " today"
    other = "Describe the causes of the French revolution and its effect on European monarchies"
    assert jaccard(shingles(base), shingles(near)) > 0.85
    strict = dedup([base, near, other], key=str, near_threshold=0.8)
    assert strict.kept == [0, 2] and strict.near == 1
    loose = dedup([base, near, other], key=str, near_threshold=0.99)
    assert loose.kept == [0, 1, 2]
    off = dedup([base, base], key=str, exact=False, near_threshold=None)
    assert off.kept == [0, 1]


def test_minhash_estimates_jaccard() -> None:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(200)]
    hasher = MinHasher(num_perm=128)
    errors = []
    for _ in range(20):
        a = set(rng.sample(vocab, 60))
        b = set(rng.sample(sorted(a), 40)) | set(rng.sample(vocab, 20))
        sa, sb = hasher.signature(a), hasher.signature(b)
        estimate = sum(x == y for x, y in zip(sa, sb)) / len(sa)
        errors.append(abs(estimate - jaccard(a, b)))
    assert sum(errors) / len(errors) < 0.08


def test_dedup_is_deterministic_and_scales() -> None:
    rng = random.Random(1)
    rows = [" ".join(rng.choice("abcdefghij") + str(rng.randint(0, 99)) for _ in range(25)) for _ in range(500)]
    rows += rows[:50]
    first = dedup(rows, key=str)
    assert first.kept == dedup(rows, key=str).kept
    assert first.exact == 50 and len(first.kept) == 500


def test_prompt_text_uses_user_turns_only() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
    assert prompt_text(messages) == "Hi\nBye"
    assert normalize("Héllo,  WORLD!") == "héllo world"
