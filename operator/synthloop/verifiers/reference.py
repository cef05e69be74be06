"""IFEval's reference checkers, run offline.

The checkers are google-research's ``instruction_following_eval`` as lm-evaluation-harness
packages it (``lm_eval.tasks.ifeval``), so a score here is the score the field reports.
Two settings follow the upstream reference where the packaging lags it:

- ``langdetect``'s seed is fixed at 0 (the reference's test checks it), so language checks
  are deterministic;
- ``keywords:letter_frequency`` is checked by :class:`synthloop.verifiers.instructions.LetterFrequency`
  (any single non-space character, e.g. ``#`` or ``!`` as in the release file), where the
  packaged checker silently replaces a non-letter with a random letter.

Loading imports NLTK (about 3 s): it happens on the first check, not at import.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from typing import Any

#: Instruction ids of the IFEval release (the reference registry's keys).
RELEASE_IDS = frozenset({
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words",
    "keywords:letter_frequency", "language:response_language",
    "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript",
    "detectable_format:number_bullet_lists", "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections",
    "detectable_format:json_format", "detectable_format:title",
    "combination:two_responses", "combination:repeat_prompt", "startend:end_checker",
    "change_case:capital_word_frequency", "change_case:english_capital",
    "change_case:english_lowercase", "punctuation:no_comma", "startend:quotation",
})


@cache
def registry() -> dict[str, Any]:
    """The reference's ``INSTRUCTION_DICT`` (id -> checker class), loaded without a download."""
    from synthloop.verifiers import punkt_data

    punkt_data.install()
    import langdetect
    from lm_eval.tasks.ifeval import instructions_registry

    langdetect.DetectorFactory.seed = 0
    return dict(instructions_registry.INSTRUCTION_DICT)


@lru_cache(maxsize=4096)
def _checker(instruction_id: str, kwargs_json: str) -> Any:
    try:
        cls = registry()[instruction_id]
    except KeyError:
        raise KeyError(f"{instruction_id!r} is not an IFEval instruction") from None
    checker = cls(instruction_id)
    # As the reference's evaluation does: falsy arguments are dropped before building.
    checker.build_description(**{k: v for k, v in json.loads(kwargs_json).items() if v})
    return checker


def check(instruction_id: str, kwargs: dict[str, Any], response: str) -> bool:
    """The reference checker's verdict on the raw ``response`` (strict; no empty-text rule)."""
    checker = _checker(instruction_id, json.dumps(kwargs, sort_keys=True))
    return bool(checker.check_following(response))
