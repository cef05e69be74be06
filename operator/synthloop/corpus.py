"""A deterministic synthetic corpus: simple English, arithmetic word problems, tiny code, chat Q/A.

The demo's domain is arithmetic word problems with known answers plus formatting constraints, so
the same generator feeds pretraining (named sources for blend weights), SFT seeds and the
multiple-choice eval task files. Everything is a pure function of a seed: no downloads, and two
pods (or a resumed run) generate the same text.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from synthloop.problems import training_problem
from synthloop.verifiers.math import format_answer

NAMES = ("Tom", "Ana", "Ben", "Mia", "Leo", "Zoe", "Sam", "Ivy", "Max", "Eva", "Kai", "Lia")
ITEMS = ("apples", "books", "coins", "pens", "cards", "stones", "shells", "cups", "stamps", "eggs")
PLACES = ("park", "market", "school", "garden", "river", "library", "kitchen", "harbor")
ADJECTIVES = ("small", "red", "quiet", "happy", "old", "bright", "green", "tall", "warm", "cold")
NOUNS = ("cat", "dog", "bird", "tree", "house", "boat", "child", "teacher", "farmer", "horse")
VERBS = ("sees", "likes", "finds", "helps", "watches", "follows", "visits", "paints")
#: Facts with a fixed answer: the multiple-choice "facts" task asks for them.
COLORS = {"sky": "blue", "grass": "green", "snow": "white", "coal": "black", "sun": "yellow",
          "blood": "red", "orange": "orange", "violet": "purple"}


def english_sentence(rng: random.Random) -> str:
    a, n, v = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(VERBS)
    a2, n2, p = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(PLACES)
    forms = (
        f"The {a} {n} {v} the {a2} {n2} near the {p}.",
        f"A {n} lives by the {p}. It is {a} and {a2}.",
        f"Every morning the {n} goes to the {p}.",
    )
    if rng.random() < 0.3:
        thing = rng.choice(sorted(COLORS))
        return f"The {thing} is {COLORS[thing]}."
    return rng.choice(forms)


def arithmetic_problem(rng: random.Random) -> tuple[str, int]:
    """A one-step word problem and its integer answer."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, b = rng.randint(1, 20), rng.randint(1, 20)
    op = rng.choice(("add", "sub", "mul"))
    if op == "add":
        q = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        return q, a + b
    if op == "sub":
        a, b = max(a, b), min(a, b)
        q = f"{name} has {a} {item} and gives away {b}. How many {item} does {name} have left?"
        return q, a - b
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    q = f"{name} has {a} bags with {b} {item} in each. How many {item} are there in all?"
    return q, a * b


#: The synth worker's level-1 math keywords (workers/synth/families/math.py): the demo's domain.
MATH_KEYWORDS = ("addition", "subtraction", "multiplication", "division")
MATH_MAX = 9  # its level-1 operands: one digit


def equation(rng: random.Random) -> str:
    """One fact of the level-1 tables (``7 + 5 = 12.``, ``84 / 7 = 12.``): what a pretraining
    corpus teaches about numbers, whichever word problem later asks for it."""
    a, b = rng.randint(2, MATH_MAX), rng.randint(2, MATH_MAX)
    op = rng.choice(MATH_KEYWORDS)
    if op == "addition":
        return f"{a} + {b} = {a + b}."
    if op == "subtraction":
        return f"{a + b} - {a} = {b}."
    if op == "multiplication":
        return f"{a} x {b} = {a * b}."
    return f"{a * b} / {a} = {b}."


def math_word_problem(rng: random.Random) -> str:
    """A level-1 word problem of the synth worker's templates with its worked answer, never one
    held out for evaluation (``synthloop.problems.held_out``)."""
    text, answer, solution = training_problem(rng.choice(MATH_KEYWORDS), rng, 1)
    return f"Question: {text}\nAnswer: {solution} The answer is {format_answer(answer)}."


def arithmetic_text(rng: random.Random) -> str:
    """A page of arithmetic: table facts, the synth templates' word problems and the corpus's own."""
    q, ans = arithmetic_problem(rng)
    lines = [f"Question: {q}\nAnswer: The answer is {ans}."]
    lines += [equation(rng) if rng.random() < 0.6 else math_word_problem(rng) for _ in range(rng.randint(3, 6))]
    rng.shuffle(lines)
    return "\n".join(lines)


def code_text(rng: random.Random) -> str:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    fn = rng.choice(("add", "total", "combine"))
    return f"def {fn}(x, y):\n    return x + y\n\nprint({fn}({a}, {b}))  # {a + b}"


def chat_text(rng: random.Random) -> str:
    """A QA exchange in the Nemotron chat format: alignment-style data for continued training
    (the corpus's own problems, or a synth template's worked one that is not held out)."""
    if rng.random() < 0.5:
        q, ans = arithmetic_problem(rng)
        reply = f"The answer is {ans}."
    else:
        q, _, reply = math_word_problem(rng).removeprefix("Question: ").partition("\nAnswer: ")
    return (f"<extra_id_0>System\n\n<extra_id_1>User\n{q}\n"
            f"<extra_id_1>Assistant\n{reply}\n")


SOURCES: dict[str, Callable[[random.Random], str]] = {
    "english": lambda r: " ".join(english_sentence(r) for _ in range(r.randint(2, 5))),
    "arithmetic": arithmetic_text,
    "code": code_text,
    "qa": chat_text,
}


def source_names() -> list[str]:
    return sorted(SOURCES)


def generate(source: str, *, seed: int) -> Iterator[str]:
    """An endless deterministic stream of documents from a builtin source."""
    try:
        make = SOURCES[source]
    except KeyError:
        raise ValueError(f"unknown corpus source {source!r}: expected one of {source_names()}") from None
    rng = random.Random(f"{source}:{seed}")
    while True:
        yield make(rng)


def sample_texts(*, n: int, seed: int = 0) -> list[str]:
    """``n`` documents spread over every source (tokenizer training, tiny test models)."""
    rng = random.Random(seed)
    names = source_names()
    streams = {s: generate(s, seed=seed) for s in names}
    return [next(streams[rng.choice(names)]) for _ in range(n)]


def arithmetic_mc_rows(*, n: int, seed: int = 0, num_choices: int = 4) -> list[dict[str, object]]:
    """Multiple-choice arithmetic problems with the right answer at a known index."""
    rng = random.Random(f"mc-arith:{seed}")
    rows: list[dict[str, object]] = []
    for _ in range(n):
        q, ans = arithmetic_problem(rng)
        wrong: set[int] = set()
        while len(wrong) < num_choices - 1:
            cand = ans + rng.choice((-3, -2, -1, 1, 2, 3, 5, 10))
            if cand >= 0 and cand != ans:
                wrong.add(cand)
        choices = [ans, *sorted(wrong)]
        rng.shuffle(choices)
        rows.append({
            "query": f"Question: {q}\nAnswer: The answer is",
            "choices": [f" {c}." for c in choices],
            "gold": choices.index(ans),
        })
    return rows


def colors_mc_rows() -> list[dict[str, object]]:
    """'The sky is ...' facts that the english source states: knowable after pretraining."""
    palette = sorted(set(COLORS.values()))
    rows: list[dict[str, object]] = []
    for i, (thing, color) in enumerate(sorted(COLORS.items())):
        others = [c for c in palette if c != color]
        rng = random.Random(f"mc-colors:{i}")
        choices = [color, *rng.sample(others, 3)]
        rng.shuffle(choices)
        rows.append({"query": f"The {thing} is", "choices": [f" {c}." for c in choices],
                     "gold": choices.index(color)})
    return rows


WRONG_RESPONSES = ("I do not know.", "Maybe ask someone else.", "Numbers are hard today.",
                   "banana banana banana.")


def _rated(q: str, response: str, good: bool) -> dict[str, object]:
    score = 4 if good else 0
    return {"prompt": q, "response": response, "helpfulness": 4 if good else 1,
            "correctness": score, "coherence": 4 if good else 2, "complexity": 1,
            "verbosity": 1}


def rating_rows(*, n: int, seed: int = 0) -> list[dict[str, object]]:
    """HelpSteer2-style rows where the rating is knowable: a direct answer vs an evasion."""
    rng = random.Random(f"ratings:{seed}")
    rows: list[dict[str, object]] = []
    for i in range(n):
        q, ans = arithmetic_problem(rng)
        good = i % 2 == 0
        text = f"The answer is {ans}." if good else rng.choice(WRONG_RESPONSES)
        rows.append(_rated(q, text, good))
    return rows


def preference_rows(*, n: int, seed: int = 0, rewards: bool = True) -> list[dict[str, object]]:
    """Preference pairs (TRL style plus rewards): the direct answer is chosen."""
    rng = random.Random(f"prefs:{seed}")
    rows: list[dict[str, object]] = []
    for _ in range(n):
        q, ans = arithmetic_problem(rng)
        row: dict[str, object] = {
            "prompt": [{"role": "user", "content": q}],
            "chosen": f"The answer is {ans}.",
            "rejected": rng.choice(WRONG_RESPONSES),
        }
        if rewards:
            row.update(chosen_reward=4.0, rejected_reward=1.0)
        rows.append(row)
    return rows


def sft_rows(*, n: int, seed: int = 0) -> list[dict[str, object]]:
    """SFT conversations (TRL ``messages``) answering arithmetic questions."""
    rng = random.Random(f"sft:{seed}")
    rows: list[dict[str, object]] = []
    for _ in range(n):
        q, ans = arithmetic_problem(rng)
        rows.append({"messages": [{"role": "user", "content": q},
                                  {"role": "assistant", "content": f"The answer is {ans}."}]})
    return rows
