"""Seed material we wrote ourselves: topics, document types, personas, templates.

The report's pipelines start from hand-collected topics and templates as well as generated
ones; these are ours, small, and only used where the spec gives none or a generator's answer
does not parse.
"""

from __future__ import annotations

import random

TOPICS: tuple[str, ...] = (
    "astronomy", "gardening", "personal finance", "ancient history", "cooking", "climate",
    "music theory", "public health", "software engineering", "oceanography", "urban planning",
    "renewable energy", "linguistics", "photography", "nutrition", "geology", "economics",
    "cycling", "chess", "marine biology", "architecture", "psychology", "robotics", "poetry",
)
DOC_TYPES: tuple[str, ...] = (
    "newsletter", "essay", "blog post", "poem", "short story", "product description",
    "cover letter", "speech", "press release", "recipe introduction", "travel guide", "review",
)
QUESTION_TEMPLATES: tuple[str, ...] = (
    "What are the most important ideas someone new to {topic} should understand?",
    "How does {topic} affect everyday life, and what are some concrete examples?",
    "What are common misconceptions about {topic}, and why are they wrong?",
    "Explain how experts in {topic} approach a typical problem in their field.",
    "What changed in {topic} over the last fifty years, and why?",
)
REVISION_SUFFIXES: tuple[str, ...] = (
    " Please give specific examples and explain the reasoning behind each point.",
    " Focus on practical details a beginner could act on, in about three paragraphs.",
    " Compare at least two different viewpoints and say which evidence supports each.",
)
WRITING_TEMPLATES: tuple[str, ...] = (
    "Write a {doc_type} about {topic}.",
    "Compose a {doc_type} for a general audience on the subject of {topic}.",
    "Draft a {doc_type} that introduces {topic} to curious readers.",
)
WRITING_REVISIONS: tuple[str, ...] = (
    " Include a title and at least one concrete example.",
    " Keep it under 300 words and end with a clear takeaway.",
    " Use a friendly tone and mention one surprising fact.",
)
CLOSED_QA_INSTRUCTIONS: tuple[str, ...] = (
    "Summarize the text above in two sentences.",
    "Based on the text, what is the main point the author makes?",
    "List the key facts mentioned in the text.",
    "According to the text, what happened first?",
    "Rewrite the main idea of the text for a ten-year-old.",
)
CLOSED_QA_JOINS: tuple[str, ...] = (
    "{document}\n\n{instruction}",
    "Read the following text and answer.\n\nText: {document}\n\nTask: {instruction}",
    "{instruction}\n\n{document}",
    'Here is a passage:\n"""\n{document}\n"""\n{instruction}',
)
FOLLOWUPS: tuple[str, ...] = (
    "Can you give a concrete example of that?",
    "How would that change if the situation were reversed?",
    "What is the most common mistake people make here?",
    "Could you summarize that in one sentence?",
    "Why does that work the way it does?",
)
PERSONAS: tuple[str, ...] = (
    "a curious high-school student", "a busy parent who wants short answers",
    "a retired engineer who likes details", "a skeptical journalist", "a beginner programmer",
    "a small-business owner",
)
IF_TASKS: tuple[str, ...] = (
    "Write a short note to a friend about {topic}.",
    "Describe {topic} to someone who has never heard of it.",
    "Give advice to a beginner interested in {topic}.",
    "Write a product pitch for an app about {topic}.",
    "Explain why {topic} matters today.",
)
#: Requests a text-only model cannot fulfil: real-time data, private data, physical actions.
UNANSWERABLE: tuple[str, ...] = (
    "What is the exact stock price of {company} right now?",
    "Read my latest email and tell me what my manager wrote.",
    "Turn off the lights in my living room.",
    "What did I eat for breakfast this morning?",
    "Book me a table for two at {company}'s cafeteria tonight.",
    "Check the current weather outside my window and tell me whether to take an umbrella.",
)
COMPANIES: tuple[str, ...] = ("Acme Corp", "Globex", "Initech", "Umbrella Ltd", "Stark Industries")
REFUSALS: tuple[str, ...] = (
    (
        "I'm sorry, but I can't do that: I don't have access to real-time information, your "
        "personal data or devices. If you can share the details, I'm happy to help you work with them."
    ),
    (
        "I'm not able to help with that directly, because it needs live data or an action in the "
        "physical world that I can't take. I can explain how you could find or do it yourself."
    ),
)
_NOUNS = ("village", "river", "engineer", "library", "market", "festival", "orchard", "museum")
_VERBS = ("opened", "flooded", "expanded", "celebrated", "restored", "moved", "welcomed")


def builtin_documents(n: int, *, seed: int = 0) -> list[str]:
    """Short factual-sounding documents made in code (no corpus download)."""
    rng = random.Random(f"documents:{seed}")
    docs = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        year = rng.randint(1850, 2020)
        noun, verb = rng.choice(_NOUNS), rng.choice(_VERBS)
        count = rng.randint(3, 90)
        docs.append(
            f"In {year}, the {noun} of Harwick {verb} after a decade of planning. Local experts in "
            f"{topic} said the change affected about {count} families. The first step was a public "
            f"meeting; later, volunteers wrote a report on {topic} that is still read today. "
            f"Document {i} notes that opinions differed, but most residents agreed the result was useful."
        )
    return docs
