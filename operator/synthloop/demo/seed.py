"""The outside-the-loop datasets the demo starts from, made in code and scored by verifiers.

The report trains its reward model on HelpSteer2 (human ratings). We have no humans and no
downloads, so the ratings come from verifiers on a domain where the truth is knowable: the
synth worker's own math problems (templates with computed answers). Each response's five
HelpSteer2 attributes are *computed* (is the stated answer right, is there an answer at all,
how long is it), never typed by hand.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from synthloop.corpus import english_sentence
from synthloop.problems import training_problem
from synthloop.verifiers.instructions import FinalAnswer
from synthloop.verifiers.math import check_answer, extract_answer, format_answer

ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
#: The scalar reward of examples/loop's RewardTrain (spec.weights): pairs are ranked by it.
WEIGHTS = {"helpfulness": 1.0, "correctness": 1.0, "coherence": 0.5, "complexity": 0.0, "verbosity": 0.0}


def scalar(attributes: dict[str, int]) -> float:
    return sum(WEIGHTS[k] * v for k, v in attributes.items())


#: The problem kinds of the demo (the SynthRound asks for the same keywords).
KEYWORDS = ("addition", "subtraction", "multiplication", "division")


def math_problem(rng: random.Random) -> tuple[str, str, str]:
    """A level-1 problem as the synth worker poses it (never a held-out one): (prompt, answer, solution)."""
    text, answer, solution = training_problem(rng.choice(KEYWORDS), rng, 1)
    return f"{text}\n\n{FinalAnswer.build().description()}", format_answer(answer), solution


def candidate_responses(rng: random.Random, answer: str, solution: str) -> list[str]:
    """Responses of varying quality for one problem: right, wrong, off-topic, unfinished."""
    wrong = str(int(answer) + rng.choice([-3, -2, -1, 1, 2, 3, 10])) if answer.lstrip("-").isdigit() else "0"
    return [
        f"{solution}\nAnswer: {answer}",
        f"Answer: {answer}",
        f"{solution}\nAnswer: {wrong}",
        f"Answer: {wrong}",
        english_sentence(rng),
        solution.split("=")[0],
    ]


def rate(response: str, answer: str) -> dict[str, int]:
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
        question, answer, solution = math_problem(rng)
        for response in candidate_responses(rng, answer, solution):
            yield {"prompt": question, "response": response, **rate(response, answer)}


def preference_rows(*, n_pairs: int, seed: int) -> Iterator[dict[str, Any]]:
    """Held-out pairs drawn like the ratings: the best-rated response against a worse one.

    Ratings are turned into a scalar with the loop's attribute weights; the rejected side is any
    strictly lower-scored candidate (a wrong answer, an off-topic
    sentence, ...), so accuracy measures the same preferences the ratings express.
    """
    rng = random.Random(seed)
    for _ in range(n_pairs):
        question, answer, solution = math_problem(rng)
        rated = [(scalar(rate(r, answer)), r) for r in candidate_responses(rng, answer, solution)]
        best_score, chosen = max(rated)
        rejected_score, rejected = rng.choice([(s, r) for s, r in rated if s < best_score])
        yield {
            "prompt": [{"role": "user", "content": question}],
            "chosen": chosen,
            "rejected": rejected,
            "chosen_reward": float(best_score),
            "rejected_reward": float(rejected_score),
        }


def jsonl(rows: Iterator[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()


def seed_datasets(store: Any, *, bucket: str, n_problems: int = 300, n_pairs: int = 80) -> dict[str, str]:
    """Upload the rating and preference sets; returns their URIs by name."""
    uris = {
        "ratings": f"s3://{bucket}/datasets/arith-ratings/train.jsonl",
        "pairs": f"s3://{bucket}/datasets/arith-ratings/pairs.jsonl",
        "winrate": f"s3://{bucket}/datasets/arith-ratings/winrate.jsonl",
    }
    store.put_bytes(uris["ratings"], jsonl(helpsteer_rows(n_problems=n_problems, seed=1)))
    store.put_bytes(uris["pairs"], jsonl(preference_rows(n_pairs=n_pairs, seed=2)))
    # held-out prompts for the aligned models' reward-model win rate (pairs format: prompt used)
    store.put_bytes(uris["winrate"], jsonl(preference_rows(n_pairs=32, seed=3)))
    return uris
