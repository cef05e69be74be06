"""The outside-the-loop datasets the demo starts from, made in code and scored by verifiers.

The report trains its reward model on HelpSteer2 (human ratings). We have no humans and no
downloads, so the ratings come from verifiers on a domain where the truth is knowable: arithmetic
word problems. Each response's five HelpSteer2 attributes are *computed* (is the stated answer
right, is there an answer at all, how long is it), never typed by hand.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from synthloop.verifiers.math import check_answer, extract_answer
from synthloop.workers.training.corpus import arithmetic_problem, english_sentence

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def candidate_responses(rng: random.Random, answer: int) -> list[str]:
    """Responses of varying quality for one problem: right, wrong, off-topic, padded."""
    wrong = answer + rng.choice([-3, -2, -1, 1, 2, 3, 10])
    return [
        f"The answer is {answer}.",
        f"The answer is {wrong}.",
        english_sentence(rng),
        f"Let me think. {english_sentence(rng)} The answer is {answer}.",
        f"Let me think. {english_sentence(rng)} The answer is {wrong}.",
    ]


def rate(response: str, answer: int) -> dict[str, int]:
    """HelpSteer2 attributes (0-4) of a response, from the math verifier and simple counts."""
    stated = extract_answer(response) is not None
    correct = check_answer(response, answer)
    words = len(response.split())
    return {
        "helpfulness": 4 if correct else (1 if stated else 0),
        "correctness": 4 if correct else 0,
        "coherence": 4 if stated else 1,
        "complexity": 1,
        "verbosity": min(4, words // 6),
    }


def helpsteer_rows(*, n_problems: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for _ in range(n_problems):
        question, answer = arithmetic_problem(rng)
        for response in candidate_responses(rng, answer):
            yield {"prompt": question, "response": response, **rate(response, answer)}


def preference_rows(*, n_pairs: int, seed: int) -> Iterator[dict[str, Any]]:
    """Held-out pairs (chosen is verifiably right, rejected wrong) for preference accuracy."""
    rng = random.Random(seed)
    for _ in range(n_pairs):
        question, answer = arithmetic_problem(rng)
        right, wrong, *_ = candidate_responses(rng, answer)
        yield {
            "prompt": [{"role": "user", "content": question}],
            "chosen": right,
            "rejected": wrong,
            "chosen_reward": float(sum(rate(right, answer).values())),
            "rejected_reward": float(sum(rate(wrong, answer).values())),
        }


def jsonl(rows: Iterator[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()


def seed_datasets(store: Any, *, bucket: str, n_problems: int = 300, n_pairs: int = 100) -> dict[str, str]:
    """Upload the rating and preference sets; returns their URIs by name."""
    uris = {
        "ratings": f"s3://{bucket}/datasets/arith-ratings/train.jsonl",
        "pairs": f"s3://{bucket}/datasets/arith-ratings/pairs.jsonl",
    }
    store.put_bytes(uris["ratings"], jsonl(helpsteer_rows(n_problems=n_problems, seed=1)))
    store.put_bytes(uris["pairs"], jsonl(preference_rows(n_pairs=n_pairs, seed=2)))
    return uris
