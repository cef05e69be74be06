"""IFEval through our scorer agrees with the reference on the reference's own test cases.

The cases restate google-research ``instruction_following_eval``'s ``instructions_test.py`` and
``instructions_util_test.py`` (responses, arguments and expected verdicts); each runs through
``synthloop.verifiers.REGISTRY`` -- the classes the synth and eval workers use -- not through
the reference's classes directly. Also: the release file's layout loads and scores, and no
check downloads anything (NLTK's punkt model comes from a wheel).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synthloop.verifiers import REGISTRY, score
from synthloop.workers.eval.suites import ifeval

pytestmark = pytest.mark.unit

RELEASE = Path(__file__).parents[1] / "data" / "ifeval" / "input_data.jsonl"


def check(instruction_id: str, response: str, **kwargs: object) -> bool:
    return REGISTRY[instruction_id].build(**kwargs).check(response)


# ---------------------------------------------------------------- instructions_test.py
@pytest.mark.parametrize(("response", "language"), [
    ("The response is English", "en"),
    ("Desayunamos en McDonald's hoy", "es"),
    ("Today we visit the Louvre", "en"),
])
def test_response_language(response: str, language: str) -> None:
    assert check("language:response_language", response, language=language)


def test_language_detection_seed_is_fixed() -> None:
    from synthloop.verifiers import reference

    reference.registry()
    import langdetect

    assert langdetect.DetectorFactory.seed == 0


@pytest.mark.parametrize(("response", "relation", "n", "expected"), [
    ("xx,x. xx,x! xx/x. x{x}x?", "less than", 4, False),
    ("xxxx. xx,x! xxxx. x(x)x?", "less than", 5, True),
    ("xxxx. xx,x! xx|x. x&x x?", "at least", 4, True),
    ("xx-x. xx,x! xx}x. x,xx?", "at least", 5, False),
])
def test_number_sentences(response: str, relation: str, n: int, expected: bool) -> None:
    assert check("length_constraints:number_sentences", response, num_sentences=n, relation=relation) is expected


@pytest.mark.parametrize(("response", "n", "expected"), [
    (("Sure, here is a short template with 5 placeholders:\n[Name]\n[Email]\n[Phone]\n[Address]\n"
      "[Website]\nThis template can be used for a variety of purposes, such ascreating a contact "
      "list, sending out surveys, or creating a sign-up form."), 5, True),
    ("My [adjective] [noun] is [adjective] [noun]. I [verb] and [verb].", 7, False),
])
def test_number_placeholders(response: str, n: int, expected: bool) -> None:
    assert check("detectable_content:number_placeholders", response, num_placeholders=n) is expected


BULLETS = [
    ("""
  A Markdown bullet point is a way of formatting text to create a list. To
  create a bullet point, start each line with an asterisk (*). For example:
  * This is a bullet point.
  *(no space required)Another bullet point.
  * (no newline ending required)Another bullet point.
  markdown bullet points are often used to create to-do lists or to list items
  in a step-by-step guide.""", 3),
    ("""
  Check that inline asterisk (*), *, will not be counted. Only * that starts a
  bullet list will be counted:
    * This is a bullet point.
    * Another bullet point.
    . dot is not counted""", 2),
    ("""
  Here are three bullets starting with asterisk:
  * I am a large language model, also known as a conversational AI.
  * I am trained on a massive amount of text data, and I am able to communicate.
  * I am still under development, but I am learning new things every day.""", 3),
    ("""
  Here are three markdown bullets:
  - I am a large language model, also known as a conversational AI.
  - I am trained on a massive amount of text data, and I am able to communicate.
  -I am still under development, but I am learning new things every day.""", 3),
    ("""
  Paragraph 1
  ***
  Paragraph 2
  ***
  Paragraph 3
  * only one bullet point
  """, 1),
]


@pytest.mark.parametrize(("response", "n"), BULLETS)
def test_number_bullet_lists(response: str, n: int) -> None:
    assert check("detectable_format:number_bullet_lists", response, num_bullets=n)


@pytest.mark.parametrize("response", [
    "\n My answer is no.\n",
    "My answer is no.   ",
    "\n  My answer is no. I am still under development and I am always learning and\n  improving.",
])
def test_constrained_response(response: str) -> None:
    assert check("detectable_format:constrained_response", response)


@pytest.mark.parametrize(("response", "n", "expected"), [
    ("""
  To highlight text with Markdown, you can use the * character before and after
  the text you want to highlight. For example, if you want to highlight the
  word `hello`, you would type:*hello*, You can also use the ** character to
  create bold text. For example, if you want to bold the word `hello`, you
  would type: **hello** """, 2, True),
    ("""
  Sure, here are the numerical methods for solving partial differential
  equations highlighted with Markdown:
  *Finite difference methods
  *Finite element methods*
  *Boundary element methods
  *Monte Carlo methods
  I hope this helps!""", 2, False),
    ("""
  There is allowed to be *two different* highlighted *sections in the same*
  line. **This is also true** for **double markdown highlights.**
  """, 4, True),
])
def test_number_highlights(response: str, n: int, expected: bool) -> None:
    assert check("detectable_format:number_highlighted_sections", response, num_highlights=n) is expected


def test_section_checker() -> None:
    one = """
  Your response must have multiple sections. Mark the beginning of each section
  with "Section X", such as:
  Section 1
  [content of section 1]
  Section 2
  [content of section 2]"""
    two = """SECTION 1
  [content of section 1]
  SECTION 2
  [content of section 2]"""
    assert not check("detectable_format:multiple_sections", one, section_spliter="Section", num_sections=3)
    assert check("detectable_format:multiple_sections", two, section_spliter="SECTION", num_sections=2)


@pytest.mark.parametrize(("response", "n", "expected"), [
    ("\n  paragraph 1\n  ***\n  paragraph 2\n  ***\n  paragraph 3", 3, True),
    ("\n          ***\n  paragraph 1\n          ***\n      paragraph 2\n          ***\n      paragraph 3", 3, True),
    ("\n  paragraph 1\n          ***\n      paragraph 2\n          ***\n      paragraph 3\n          ***", 3, True),
    ("\n  paragraph 1\n          ***\n      paragraph 2\n          ***\n          ***", 2, False),
])
def test_paragraph_checker(response: str, n: int, expected: bool) -> None:
    assert check("length_constraints:number_paragraphs", response, num_paragraphs=n) is expected


POSTSCRIPT_1 = """
  I will do my best to follow your instructions and always start my responses
  with "My response is:". I will try to be as consistent as possible, but
  please be patient with me if I make a mistake. I am still under development,
  and I am always learning new things.

  P.S. I hope this is what you were looking for."""


@pytest.mark.parametrize(("response", "marker", "expected"), [
    (POSTSCRIPT_1, "P.S.", True),
    (POSTSCRIPT_1, "PS:", False),
    ("""
  Sure, here is my response with a postscript starting with P.P.S.:

  My response is: I hope this answers your question.

  P.P.S. I am always happy to answer any other questions you may have.

  Do you have any other questions for me?""", "P.P.S", True),
    ("""
  The radius of a unit circle is 1. However, I can give you a funny and wrong
  answer: the radius of a unit circle is 0. This is because a unit circle is a
  circle with a radius of 1, and if the radius is 0, then the circle has no
  size and is just a point. (not starting a new line) P.S. I hope you enjoyed
  my joke!""", "P.S.", True),
    ("""
  If the length of a square is one, the area of the square will also be one.
  p.p.s what if the entire response was lower case letters?
  """, "P.P.S", True),
    ("""
  The mysteries of space and time are mysterious.
  P. S. Sometimes there are even spaces between P. and S..
  """, "P.S.", True),
])
def test_postscript_checker(response: str, marker: str, expected: bool) -> None:
    assert check("detectable_content:postscript", response, postscript_marker=marker) is expected


PARIS_1 = """
  Paris is a city of beauty and romance. The romantic river Seine winds its way
  through the city, past iconic landmarks like the Eiffel Tower and the Louvre
  Museum, where the Mona Lisa resides. Whether you're taking a boat cruise down
  the river or simply strolling along the banks, you're sure to be captivated
  by the city's charm."""
PARIS_2 = """
  Paris is a city of beauty, romance, and history. It is home to some of the
  most iconic landmarks in the world, including the Eiffel Tower, the Louvre
  Museum, and the Notre Dame Cathedral. The city is also known for its romantic
  river cruises, its delicious food, and its stylish people.
  """


def test_keyword_checker() -> None:
    keywords = ["romantic", "river", "Mona Lisa"]
    assert check("keywords:existence", PARIS_1, keywords=keywords)
    assert not check("keywords:existence", PARIS_2, keywords=keywords)


def test_keyword_frequency_checker() -> None:
    plain = "\n  keyword, Keyword, KEYWORD\n  "
    starred = "\n    *keyword\n    *Keyword\n    *KEYWORD\n  "
    assert check("keywords:frequency", plain, keyword="  keyword ", frequency=4, relation="less than")
    assert check("keywords:frequency", plain, keyword="  keyword ", frequency=3, relation="at least")
    assert not check("keywords:frequency", starred, keyword="KEYWORD", frequency=4, relation="at least")


def test_num_words_checker() -> None:
    one = "\n  d3sCRi7 lArge lAnguagE M0del w1tH 20 w0RdS."
    two = ("\n  L4RGE L4NGU4GE M0DEL: AI syst3m th4t und3rstands, g3n3r4tes, or tr4nsforms\n"
           "  l4ngu4g3 b4s3d on pr3vious l3arning & d4t4.")
    assert check("length_constraints:number_words", one, num_words=8, relation="less than")
    assert not check("length_constraints:number_words", two, num_words=16, relation="less than")
    assert check("length_constraints:number_words", two, num_words=16, relation="at least")


FIRST_WORD = {
    1: "\n  paragraph 1\n\n  I paragraph 2\n\n  paragraph 3",
    2: "\n  paragraph 1\n\n  I paragraph 2",
    3: "\n  paragraph 1\n\n  fail paragraph 2\n\n  paragraph 3",
    4: ("\n  Wow this is a very long response.\n\n  I can't believe there is more than three paragraphs."
        "\n\n  Really more than three? No way!\n\n  I can't believe it but I guess I am living proof."
        "\n\n  Haha, you go that right."),
    5: ("\n  Wow this is a very long response.\n\n  I can't believe there is more than three paragraphs."
        "\n\n  \"Really?! more than three? No way!\"\n\n  I can't believe it but I guess I am living proof."
        "\n\n  Haha, you go that right."),
    6: ("\n  Wow this is a very long response.\n\n  I can't believe there is more than three paragraphs."
        "\n\n  Rea!lly more than three? No way!\n\n  I can't believe it but I guess I am living proof."
        "\n\n  Haha, you go that right."),
}


@pytest.mark.parametrize(("case", "n", "nth", "word", "expected"), [
    (1, 3, 2, "I", True), (2, 3, 2, "I", False), (3, 3, 2, "I", False),
    (4, 5, 5, "haha", True), (5, 5, 3, "Really", True), (6, 5, 3, "Really", False),
])
def test_paragraph_first_word(case: int, n: int, nth: int, word: str, expected: bool) -> None:
    got = check("length_constraints:nth_paragraph_first_word", FIRST_WORD[case],
                num_paragraphs=n, nth_paragraph=nth, first_word=word)
    assert got is expected


NAZIS = """
  The Nazis came to power in 1933 through a combination of legal and illegal
  means. Hitler was appointed chancellor by President Paul von Hindenburg, and
  the Nazis quickly consolidated their power by passing a series of laws that
  restricted the rights of opposition parties and individuals. By 1934, Hitler
  had become dictator of Germany.
  """
DINOSAURS = """
  Dinosaurs were a diverse group of reptiles that dominated the Earth for over
  160 million years. They came in all shapes and sizes, from the tiny
  Compsognathus to the massive Argentinosaurus. Dinosaurs were the most
  successful land animals on Earth until they went extinct about 66 million
  years ago. The exact cause of their extinction is still unknown, but it
  is thought to have been a combination of factors, including an asteroid
  impact and climate change.
  """
GPT = """
  GPT, or Generative Pre-trained Transformer, is a family of neural network
  models that uses the transformer architecture. GPT models are trained on a
  massive dataset of text and code, and can be used for a variety of tasks,
  including text generation, translation, and question answering. GPT models
  have been shown to be very effective at these tasks, and are being used by
  a variety of companies and organizations like Google.
  """


@pytest.mark.parametrize(("response", "words", "expected"), [
    (NAZIS, ["HOUSE", "POWER", "BECOME"], False),
    (DINOSAURS, ["HOUSE", "POWER", "BECOME"], True),
    (GPT, ["HOUSE", "POWER", "BECOME"], True),
    (NAZIS, ["GOOGLE", "TEXT"], True),
    (DINOSAURS, ["GOOGLE", "TEXT"], True),
    (GPT, ["GOOGLE", "TEXT"], False),
    (GPT, ["GENE", "TRANSFORM"], True),
])
def test_forbidden_words(response: str, words: list[str], expected: bool) -> None:
    assert check("keywords:forbidden_words", response, forbidden_words=words) is expected


@pytest.mark.parametrize(("response", "expected"), [
    ("\n  This is response 1.\n  ******\n  This is response 2.\n  ", True),
    ("\n  This is response 1.\n  ******\n  This is response 1.\n  ", False),
    ("\n  This is response 1.\n  ******\n  This is response 2.\n  ******\n  This is response 3.\n  ", False),
    ("\n  ******\n  Response 1.\n  ******\n  ******\n  Response 2.\n  ******\n  ", False),
    ("\n  ******\n  Response 1\n  ******\n  Response 2\n  ******\n  ", True),
])
def test_two_responses(response: str, expected: bool) -> None:
    assert check("combination:two_responses", response) is expected


def test_prompt_repeat_answer() -> None:
    prompt = "Write a CL description."
    good = "Write a CL description. Hi, Le and TJ, please\n  check this out. Thanks.\n  "
    bad = "Hi, Le and TJ. Write a CL description. Thanks.\n  "
    assert check("combination:repeat_prompt", good, prompt_to_repeat=prompt)
    assert not check("combination:repeat_prompt", bad, prompt_to_repeat=prompt)


@pytest.mark.parametrize(("response", "phrase", "expected"), [
    ("\n  The answer is 7. Any more questions?\n  ", "\n  Any more questions?\n  ", True),
    ("\n  At the end of this prompt I am required to say that this is the end.\n  ",
     "\n  This is the end.\n  ", True),
    ("\n  This will fail. Paris is cool.\n  ", "\n  This will fail.\n  ", False),
])
def test_end_checker(response: str, phrase: str, expected: bool) -> None:
    assert check("startend:end_checker", response, end_phrase=phrase) is expected


@pytest.mark.parametrize(("response", "expected"), [
    ("\n  <<Song of Joy>>\n  La la la. Happy song.\n  ", True),
    ("\n  Is it fine for title to be at the end?\n  <<This is the title>>\n  ", True),
    ("\n  << >>\n  There is no title.\n  ", False),
    ("\n  <<This is not a title.\n  This is a paragraph.>>\n  ", False),
])
def test_title_checker(response: str, expected: bool) -> None:
    assert check("detectable_format:title", response) is expected


@pytest.mark.parametrize(("response", "letter", "n", "relation", "expected"), [
    ("\n  There is the T. Four T's.\n  ", "T", 4, "at least", True),
    ("\n  asdfghjkl!!aA\n  ", "a", 4, "less than", True),
    ("\n  asdfghjkl!!aA\n  ", "p", 4, "at least", False),
    ("#one #two #three #four", "#", 4, "at least", True),
    ("#one #two #three", "#", 4, "at least", False),
])
def test_letter_frequency_checker(response: str, letter: str, n: int, relation: str, expected: bool) -> None:
    got = check("keywords:letter_frequency", response, letter=letter, let_frequency=n, let_relation=relation)
    assert got is expected


def test_letter_frequency_checker_rejects_invalid_explicit_args() -> None:
    with pytest.raises(ValueError, match="single non-whitespace character"):
        REGISTRY["keywords:letter_frequency"].build(letter="ab", let_frequency=1, let_relation="at least")
    with pytest.raises(ValueError, match="let_frequency must be non-negative"):
        REGISTRY["keywords:letter_frequency"].build(letter="a", let_frequency=-1, let_relation="at least")


def test_english_capital_and_lowercase_checkers() -> None:
    capital = "\n  THIS IS AN ENGLISH SENTENCE. EVERY LETTER IS CAPITALIZED!!! AMAZING.\n  "
    assert check("change_case:english_capital", capital)
    assert not check("change_case:english_capital", "\n  Every Word Is Capitalized.\n  ")
    assert check("change_case:english_lowercase", "\n  every letter is lowercase.\n  ")
    assert not check("change_case:english_lowercase", "\n  Almost every letter is lowercase.\n  ")


def test_comma() -> None:
    assert check("punctuation:no_comma", "\n  Every sentence is short. There is no need for a comma.\n  ")
    assert not check("punctuation:no_comma",
                     "\n  Since the start of time, people have always found a way to punctuate.\n  ")


def test_capital_word_frequency() -> None:
    three = "\n  HERE there are THREE FUlly CAPITAL words.\n  "
    four = "\n  THERE are Four FULLY CAPITAL WORDS. Many Others Are Only Partially So.\n  "
    cid = "change_case:capital_word_frequency"
    assert check(cid, three, capital_frequency=3, capital_relation="at least")
    assert check(cid, four, capital_frequency=5, capital_relation="less than")
    assert not check(cid, four, capital_frequency=4, capital_relation="less than")


def test_quotation() -> None:
    assert check("startend:quotation", '\n  "This entire message is wrapped in double quotation marks."\n  ')
    assert not check("startend:quotation",
                     '\n  "This message is wrapped in double quotation marks." But not everything.\n  ')


# ---------------------------------------------------------------- instructions_util_test.py
@pytest.mark.parametrize(("text", "words"), [
    ("word1, word2, word3, word4.", 4),
    (("\n      Bard can you tell me which is the best optimization method for the\n      transition "
      "from an hydro-thermal system to an hydro-renewables system"), 24),
    ("\n      Hyphenated-word has two word counts.\n      ", 6),
])
def test_word_count(text: str, words: int) -> None:
    cid = "length_constraints:number_words"
    assert check(cid, text, num_words=words, relation="at least")
    assert not check(cid, text, num_words=words + 1, relation="at least")


@pytest.mark.parametrize(("text", "sentences"), [
    ("xx,x. xx,x! xx/x. x{x}x? x.", 5),
    ("xx,x! xxxx. x(x)x?", 3),
    ("xxxx. xx,x! xx|x. x&x x?", 4),
    ("xx-x]xx,x! x{x}xx,x.", 2),
    # punkt, not a regex: abbreviations do not end sentences
    (("\n  The U.S.A has many Ph.D. students. They will often haven a .com website\n"
      "sharing the research that they have done.\n  "), 2),
    (("\n  Google is a technology company. It was founded in 1998 by Larry Page\nand Sergey Brin. "
      "Google's mission is to organize the world's information\nand make it universally accessible "
      "and useful.\n  "), 3),
])
def test_count_sentences(text: str, sentences: int) -> None:
    cid = "length_constraints:number_sentences"
    assert check(cid, text, num_sentences=sentences, relation="at least")
    assert not check(cid, text, num_sentences=sentences + 1, relation="at least")


# ---------------------------------------------------------------- the release file
def test_release_file_loads_with_every_instruction_and_scores_both_levels() -> None:
    items = ifeval.parse_items(RELEASE.read_text(), name="input_data")
    rows = [json.loads(line) for line in RELEASE.read_text().splitlines()]
    assert len(items) == len(rows) == 29
    assert [[i.id for i in it.instructions] for it in items] == [r["instruction_id_list"] for r in rows]
    assert sum(i.id == "language:response_language" for it in items for i in it.instructions) == 2
    # responses that follow each prompt's first instruction only, and a perfect one for key 1122
    responses = ["" for _ in items]
    k1122 = next(n for n, r in enumerate(rows) if r["key"] == 1122)
    responses[k1122] = "so happy to be here at the pool party tonight #fun #summer #friends #party"
    metrics, counts = ifeval.score_responses(items, responses)
    assert counts["ifeval.prompt_strict"] == 29
    assert counts["ifeval.instruction_strict"] == sum(len(r["instruction_id_list"]) for r in rows)
    assert metrics["ifeval.prompt_strict"] == pytest.approx(1 / 29)
    assert metrics["ifeval.instruction_strict"] == pytest.approx(2 / counts["ifeval.instruction_strict"])


def test_loose_passes_a_wrapped_response_that_strict_fails() -> None:
    item = ifeval.parse_items(json.dumps({
        "key": 1, "prompt": "p", "instruction_id_list": ["startend:quotation"], "kwargs": [{}]}), name="t")
    response = 'Sure, here it is:\n"All of it quoted."'
    metrics, _ = ifeval.score_responses(item, [response])
    assert metrics["ifeval.prompt_strict"] == 0.0
    assert metrics["ifeval.prompt_loose"] == 1.0
    assert score(response, item[0].instructions, loose=True) == [True]


def test_hf_export_rows_with_null_kwargs_load() -> None:
    row = {"key": 7, "prompt": "p", "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
           "kwargs": [{"num_words": None, "relation": None, "keywords": None},
                      {"num_words": 3, "relation": "at least", "keywords": None}]}
    [item] = ifeval.parse_items(json.dumps(row), name="hf")
    assert item.instructions[1].kwargs() == {"num_words": 3, "relation": "at least"}


def test_nothing_is_downloaded(tmp_path: Path) -> None:
    """A fresh process with no NLTK data anywhere and the network cut scores every type."""
    program = textwrap.dedent("""
        import socket, sys
        def refuse(*a, **k):
            raise RuntimeError("network access")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        import nltk
        nltk.download = refuse
        from synthloop.verifiers import REGISTRY
        from synthloop.verifiers.reference import registry
        assert "tokenizers/punkt_tab" not in str(nltk.data.path)
        ok = REGISTRY["length_constraints:number_sentences"].build(num_sentences=2, relation="at least")
        assert ok.check("The U.S.A has many Ph.D. students. They will often have a .com website.")
        assert REGISTRY["change_case:capital_word_frequency"].build(
            capital_frequency=3, capital_relation="at least").check("HERE there are THREE FUlly CAPITAL words.")
        print(len(registry()))
    """)
    env = {**os.environ, "SYNTHLOOP_NLTK_DATA": str(tmp_path / "nltk"), "NLTK_DATA": str(tmp_path / "none"),
           "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "25"
    assert (tmp_path / "nltk" / "tokenizers" / "punkt_tab" / "english" / "abbrev_types.txt").is_file()
