"""The instruction types: IFEval's groups (keywords, language, length, content, format,
combination, start/end, case, punctuation) plus two of the project's own.

Each class holds what the synth worker needs to *ask* for a constraint (random parameters, a
description appended to a prompt). Whether a response *follows* it is decided by IFEval's
reference checker (:mod:`synthloop.verifiers.reference`: punkt sentences, NLTK word tokens,
substring keywords, langdetect), which ``Instruction.check`` calls; so the synth worker's
rankings and the eval worker's IFEval scores are the reference's. Only the instructions the
release lacks (``startend:start_checker``, ``detectable_format:final_answer``) and
``keywords:letter_frequency`` (see ``reference``) are checked here.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from synthloop.verifiers.base import Instruction

AT_LEAST = "at least"
LESS_THAN = "less than"
RELATIONS = (AT_LEAST, LESS_THAN)

#: Common, topic-neutral words the keyword instructions draw from.
WORDS = (
    "balance", "bridge", "candle", "compass", "harvest", "journey", "lantern", "river",
    "signal", "garden", "engine", "mirror", "puzzle", "season", "thunder", "window",
    "anchor", "crystal", "forest", "harbor", "island", "meadow", "orbit", "pattern",
)
END_PHRASES = ("Is there anything else I can help with?", "Let me know if you have additional questions.", "Any other questions?")
START_PHRASES = ("Certainly.", "Here is my answer.", "In short,")
#: ISO 639-1 codes (langdetect's) and names, for language:response_language descriptions.
LANGUAGES = {
    "en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
    "pt": "Portuguese", "ru": "Russian", "ja": "Japanese", "zh-cn": "Chinese", "ko": "Korean",
    "ar": "Arabic", "hi": "Hindi", "bn": "Bengali", "kn": "Kannada", "pa": "Punjabi",
    "ta": "Tamil", "te": "Telugu", "mr": "Marathi", "gu": "Gujarati", "ur": "Urdu",
    "fa": "Persian", "sw": "Swahili", "th": "Thai", "vi": "Vietnamese", "fi": "Finnish",
    "bg": "Bulgarian", "ne": "Nepali",
}


def _compare(count: int, relation: str, n: int) -> bool:
    if relation == AT_LEAST:
        return count >= n
    if relation == LESS_THAN:
        return count < n
    raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")


def _relation_text(relation: str, n: int, unit: str) -> str:
    return f"{relation} {n} {unit}"


# --------------------------------------------------------------------------- keywords
@dataclass(frozen=True)
class KeywordsExistence(Instruction):
    id: ClassVar[str] = "keywords:existence"
    keywords: tuple[str, ...] = ()

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"keywords": tuple(rng.sample(WORDS, 2))}

    def description(self) -> str:
        return "Include the keywords " + ", ".join(repr(k) for k in self.keywords) + " in the response."



@dataclass(frozen=True)
class KeywordFrequency(Instruction):
    id: ClassVar[str] = "keywords:frequency"
    keyword: str = "river"
    frequency: int = 2
    relation: str = AT_LEAST

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"keyword": rng.choice(WORDS), "frequency": rng.randint(1, 3), "relation": rng.choice(RELATIONS)}

    def description(self) -> str:
        return f"In your response, the word {self.keyword!r} should appear {_relation_text(self.relation, self.frequency, 'times')}."



@dataclass(frozen=True)
class ForbiddenWords(Instruction):
    id: ClassVar[str] = "keywords:forbidden_words"
    forbidden_words: tuple[str, ...] = ()

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"forbidden_words": tuple(rng.sample(WORDS, 2))}

    def description(self) -> str:
        return "Do not include the words " + ", ".join(repr(w) for w in self.forbidden_words) + " in the response."



@dataclass(frozen=True)
class LetterFrequency(Instruction):
    id: ClassVar[str] = "keywords:letter_frequency"
    letter: str = "z"
    let_frequency: int = 2
    let_relation: str = AT_LEAST

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {
            "letter": rng.choice("abcdefghijklmnopqrstuvwxyz"),
            "let_frequency": rng.randint(1, 8),
            "let_relation": rng.choice(RELATIONS),
        }

    def description(self) -> str:
        return f"In your response, the letter {self.letter!r} should appear {_relation_text(self.let_relation, self.let_frequency, 'times')}."

    def __post_init__(self) -> None:
        if len(self.letter) != 1 or self.letter.isspace():
            raise ValueError(f"letter must be a single non-whitespace character, got {self.letter!r}")
        if self.let_frequency < 0:
            raise ValueError(f"let_frequency must be non-negative, got {self.let_frequency}")

    def check(self, response: str) -> bool:
        """Case-insensitive count of one character (a letter, ``#`` or ``!`` alike)."""
        return _compare(response.lower().count(self.letter.lower()), self.let_relation, self.let_frequency)


# --------------------------------------------------------------------------- language
@dataclass(frozen=True)
class ResponseLanguage(Instruction):
    """The whole response in one language, as langdetect (seed 0) identifies it."""

    id: ClassVar[str] = "language:response_language"
    #: Tiny models answer in English: not drawn for synthetic prompts, only read from task files.
    sampled: ClassVar[bool] = False
    conflicts: ClassVar[frozenset[str]] = frozenset(
        {"detectable_format:multiple_sections", "keywords:existence", "keywords:frequency",
         "keywords:forbidden_words", "startend:end_checker", "change_case:english_capital",
         "change_case:english_lowercase"}
    )
    language: str = "en"

    def description(self) -> str:
        name = LANGUAGES.get(self.language, self.language)
        return f"Your ENTIRE response should be in {name} language, no other language is allowed."


# --------------------------------------------------------------------------- length
@dataclass(frozen=True)
class NumberSentences(Instruction):
    id: ClassVar[str] = "length_constraints:number_sentences"
    num_sentences: int = 3
    relation: str = AT_LEAST

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"num_sentences": rng.randint(1, 6), "relation": rng.choice(RELATIONS)}

    def description(self) -> str:
        return f"Your response should contain {_relation_text(self.relation, self.num_sentences, 'sentences')}."



@dataclass(frozen=True)
class NumberParagraphs(Instruction):
    id: ClassVar[str] = "length_constraints:number_paragraphs"
    conflicts: ClassVar[frozenset[str]] = frozenset({"length_constraints:nth_paragraph_first_word"})
    num_paragraphs: int = 2

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"num_paragraphs": rng.randint(2, 4)}

    def description(self) -> str:
        return (
            f"There should be {self.num_paragraphs} paragraphs. Paragraphs are separated with the "
            "markdown divider: ***"
        )



@dataclass(frozen=True)
class NumberWords(Instruction):
    id: ClassVar[str] = "length_constraints:number_words"
    num_words: int = 50
    relation: str = AT_LEAST

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"num_words": rng.choice((10, 20, 40, 80, 150)), "relation": rng.choice(RELATIONS)}

    def description(self) -> str:
        return f"Answer with {_relation_text(self.relation, self.num_words, 'words')}."



@dataclass(frozen=True)
class NthParagraphFirstWord(Instruction):
    id: ClassVar[str] = "length_constraints:nth_paragraph_first_word"
    conflicts: ClassVar[frozenset[str]] = frozenset({"length_constraints:number_paragraphs"})
    num_paragraphs: int = 3
    nth_paragraph: int = 2
    first_word: str = "harbor"

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        n = rng.randint(2, 4)
        return {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n), "first_word": rng.choice(WORDS)}

    def description(self) -> str:
        return (
            f"There should be {self.num_paragraphs} paragraphs, separated from each other by two new "
            f"lines. Paragraph {self.nth_paragraph} must start with the word {self.first_word!r}."
        )



# --------------------------------------------------------------------------- content
@dataclass(frozen=True)
class NumberPlaceholders(Instruction):
    id: ClassVar[str] = "detectable_content:number_placeholders"
    num_placeholders: int = 1

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"num_placeholders": rng.randint(1, 3)}

    def description(self) -> str:
        return (
            f"The response must contain at least {self.num_placeholders} placeholders represented by "
            "square brackets, such as [address]."
        )



@dataclass(frozen=True)
class Postscript(Instruction):
    id: ClassVar[str] = "detectable_content:postscript"
    postscript_marker: str = "P.S."

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"postscript_marker": rng.choice(("P.S.", "P.P.S"))}

    def description(self) -> str:
        return f"At the end of your response, please explicitly add a postscript starting with {self.postscript_marker}"



# --------------------------------------------------------------------------- format
@dataclass(frozen=True)
class NumberBulletLists(Instruction):
    id: ClassVar[str] = "detectable_format:number_bullet_lists"
    num_bullets: int = 3

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"num_bullets": rng.randint(1, 5)}

    def description(self) -> str:
        return (
            f"Your answer must contain exactly {self.num_bullets} bullet points. Use the markdown "
            "bullet points such as:\n* This is point 1.\n* This is point 2"
        )



@dataclass(frozen=True)
class HighlightedSections(Instruction):
    id: ClassVar[str] = "detectable_format:number_highlighted_sections"
    num_highlights: int = 2

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"num_highlights": rng.randint(1, 3)}

    def description(self) -> str:
        return (
            f"Highlight at least {self.num_highlights} sections in your answer with markdown, "
            "i.e. *highlighted section*."
        )



@dataclass(frozen=True)
class MultipleSections(Instruction):
    id: ClassVar[str] = "detectable_format:multiple_sections"
    section_spliter: str = "SECTION"
    num_sections: int = 2

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"section_spliter": rng.choice(("SECTION", "Section", "PART")), "num_sections": rng.randint(2, 4)}

    def description(self) -> str:
        return (
            f"Your response must have {self.num_sections} sections. Mark the beginning of each "
            f"section with {self.section_spliter} X, such as:\n{self.section_spliter} 1\n[content]"
        )



@dataclass(frozen=True)
class JsonFormat(Instruction):
    id: ClassVar[str] = "detectable_format:json_format"
    conflicts: ClassVar[frozenset[str]] = frozenset(
        {
            "detectable_format:title", "detectable_content:postscript", "combination:two_responses",
            "startend:end_checker", "startend:start_checker", "startend:quotation",
            "detectable_format:number_bullet_lists", "detectable_format:multiple_sections",
            "length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word",
            "combination:repeat_prompt", "detectable_format:constrained_response",
            "detectable_format:final_answer", "punctuation:no_comma",
        }
    )

    def description(self) -> str:
        return "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```."



@dataclass(frozen=True)
class Title(Instruction):
    id: ClassVar[str] = "detectable_format:title"

    def description(self) -> str:
        return "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>."



@dataclass(frozen=True)
class ConstrainedResponse(Instruction):
    id: ClassVar[str] = "detectable_format:constrained_response"
    OPTIONS: ClassVar[tuple[str, ...]] = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

    def description(self) -> str:
        return "Answer with one of the following options: " + ", ".join(f'"{o}"' for o in self.OPTIONS)



@dataclass(frozen=True)
class FinalAnswer(Instruction):
    """Not in IFEval: the math family's answer format, checkable without knowing the answer."""

    id: ClassVar[str] = "detectable_format:final_answer"

    def description(self) -> str:
        return "End your response with a final line of the form 'Answer: <value>'."

    def check(self, response: str) -> bool:
        lines = [line for line in response.strip().splitlines() if line.strip()]
        return bool(lines) and re.fullmatch(r"\s*Answer:\s*\S.*", lines[-1]) is not None


# --------------------------------------------------------------------------- combination
@dataclass(frozen=True)
class RepeatPrompt(Instruction):
    id: ClassVar[str] = "combination:repeat_prompt"
    requires: ClassVar[tuple[str, ...]] = ("prompt_to_repeat",)
    conflicts: ClassVar[frozenset[str]] = frozenset(
        {"startend:start_checker", "startend:quotation", "detectable_format:json_format", "change_case:english_lowercase", "change_case:english_capital"}
    )
    prompt_to_repeat: str = ""

    def description(self) -> str:
        return (
            "First repeat the request word for word without change, then give your answer (do not say "
            "anything before repeating the request)."
        )



@dataclass(frozen=True)
class TwoResponses(Instruction):
    id: ClassVar[str] = "combination:two_responses"
    conflicts: ClassVar[frozenset[str]] = frozenset({"detectable_format:json_format", "startend:quotation"})

    def description(self) -> str:
        return "Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: ******."



# --------------------------------------------------------------------------- start / end
@dataclass(frozen=True)
class EndChecker(Instruction):
    id: ClassVar[str] = "startend:end_checker"
    conflicts: ClassVar[frozenset[str]] = frozenset(
        {"detectable_content:postscript", "startend:quotation", "detectable_format:final_answer", "detectable_format:json_format"}
    )
    end_phrase: str = "Any other questions?"

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"end_phrase": rng.choice(END_PHRASES)}

    def description(self) -> str:
        return f"Finish your response with this exact phrase {self.end_phrase!r}. No other words should follow this phrase."



@dataclass(frozen=True)
class StartChecker(Instruction):
    id: ClassVar[str] = "startend:start_checker"
    conflicts: ClassVar[frozenset[str]] = frozenset(
        {"combination:repeat_prompt", "startend:quotation", "detectable_format:json_format", "detectable_format:title"}
    )
    start_phrase: str = "Certainly."

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"start_phrase": rng.choice(START_PHRASES)}

    def description(self) -> str:
        return f"Begin your response with the exact phrase {self.start_phrase!r}."

    def check(self, response: str) -> bool:
        return response.strip().lower().startswith(self.start_phrase.strip().lower())


@dataclass(frozen=True)
class Quotation(Instruction):
    id: ClassVar[str] = "startend:quotation"
    conflicts: ClassVar[frozenset[str]] = frozenset(
        {"startend:end_checker", "startend:start_checker", "combination:repeat_prompt", "combination:two_responses", "detectable_format:json_format", "detectable_format:final_answer", "detectable_content:postscript"}
    )

    def description(self) -> str:
        return "Wrap your entire response with double quotation marks."



# --------------------------------------------------------------------------- case
@dataclass(frozen=True)
class Lowercase(Instruction):
    id: ClassVar[str] = "change_case:english_lowercase"
    conflicts: ClassVar[frozenset[str]] = frozenset(
        {"change_case:english_capital", "change_case:capital_word_frequency", "detectable_format:final_answer",
         "detectable_format:constrained_response", "detectable_format:multiple_sections", "detectable_content:postscript",
         "startend:end_checker", "startend:start_checker", "combination:repeat_prompt"}
    )

    def description(self) -> str:
        return "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed."



@dataclass(frozen=True)
class Capital(Instruction):
    id: ClassVar[str] = "change_case:english_capital"
    conflicts: ClassVar[frozenset[str]] = frozenset(
        {"change_case:english_lowercase", "change_case:capital_word_frequency", "detectable_format:final_answer",
         "detectable_format:constrained_response", "detectable_format:multiple_sections", "detectable_content:postscript",
         "startend:end_checker", "startend:start_checker", "combination:repeat_prompt"}
    )

    def description(self) -> str:
        return "Your entire response should be in English, and in all capital letters."



@dataclass(frozen=True)
class CapitalWordFrequency(Instruction):
    id: ClassVar[str] = "change_case:capital_word_frequency"
    conflicts: ClassVar[frozenset[str]] = frozenset({"change_case:english_lowercase", "change_case:english_capital"})
    capital_frequency: int = 2
    capital_relation: str = AT_LEAST

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        return {"capital_frequency": rng.randint(1, 4), "capital_relation": rng.choice(RELATIONS)}

    def description(self) -> str:
        return (
            "In your response, words with all capital letters should appear "
            f"{_relation_text(self.capital_relation, self.capital_frequency, 'times')}."
        )



# --------------------------------------------------------------------------- punctuation
@dataclass(frozen=True)
class NoComma(Instruction):
    id: ClassVar[str] = "punctuation:no_comma"
    conflicts: ClassVar[frozenset[str]] = frozenset({"detectable_format:json_format"})

    def description(self) -> str:
        return "In your entire response, refrain from the use of any commas."



ALL_INSTRUCTIONS: tuple[type[Instruction], ...] = (
    KeywordsExistence, KeywordFrequency, ForbiddenWords, LetterFrequency, ResponseLanguage,
    NumberSentences, NumberParagraphs, NumberWords, NthParagraphFirstWord,
    NumberPlaceholders, Postscript,
    NumberBulletLists, HighlightedSections, MultipleSections, JsonFormat, Title,
    ConstrainedResponse, FinalAnswer,
    RepeatPrompt, TwoResponses,
    EndChecker, StartChecker, Quotation,
    Lowercase, Capital, CapitalWordFrequency,
    NoComma,
)
