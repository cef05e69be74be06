"""Multi-turn dialogues: the generator plays the assistant and a simulated user with a persona.

As in the report: three user turns by default, greedy decoding, polite filler ("Thank you for
...") stripped from user turns (it teaches nothing and makes turns repetitive), and the
finished dialogue is kept only if the reward model scores it above the threshold.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from synthloop.api.v1alpha1.synth import Dialogues
from synthloop.workers.synth.backends.base import GenerationBackend, Message, Sampling
from synthloop.workers.synth.families.seeds import FOLLOWUPS, PERSONAS, QUESTION_TEMPLATES, TOPICS
from synthloop.workers.synth.parsing import clean_response, parse_single, strip_polite_filler
from synthloop.workers.synth.stats import Stats

FAMILY = "dialogue"
#: Greedy decoding for both sides of a dialogue, as in the report.
TEMPERATURE = 0.0


def _transcript(messages: Sequence[Message]) -> str:
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages if m["role"] != "system")


def user_turn_prompt(persona: str, messages: Sequence[Message]) -> list[Message]:
    return [
        {"role": "system", "content": f"You are role-playing a user: {persona}. Stay in character."},
        {"role": "user", "content": "Here is your conversation with an AI assistant so far.\n\n"
            + _transcript(messages)
            + "\n\nWrite your next message to the assistant. Output only the message."},
    ]


def make_dialogues(
    params: Dialogues,
    *,
    indices: Sequence[int],
    backend: GenerationBackend,
    max_tokens: int,
    stats: Stats,
    seed: int,
    system_prompt: str = "",
    template_fallback: bool = True,
) -> list[tuple[str, list[Message]]]:
    """``(id, messages)`` of finished dialogues ending with an assistant turn."""
    personas = list(params.personas) or list(PERSONAS)
    rngs = {j: random.Random(f"{seed}:{FAMILY}:{j}") for j in indices}
    sampling = Sampling(max_tokens=max_tokens, temperature=TEMPERATURE, top_p=1.0, n=1, seed=seed)
    convs: dict[int, list[Message]] = {}
    persona: dict[int, str] = {}
    for j in indices:
        rng = rngs[j]
        persona[j] = rng.choice(personas)
        opener = rng.choice(QUESTION_TEMPLATES).format(topic=rng.choice(TOPICS))
        convs[j] = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
            {"role": "user", "content": opener}
        ]
    stats.add(FAMILY, "prompts", len(indices))
    live = list(indices)
    for turn in range(params.turns):
        out = backend.generate([convs[j] for j in live], sampling=sampling)
        stats.add(FAMILY, "generated", len(live))
        still = []
        for j, completions in zip(live, out):
            text = clean_response(completions[0].text)
            if not text:
                stats.add(FAMILY, "parse_failures")
                continue
            convs[j].append({"role": "assistant", "content": text})
            still.append(j)
        live = still
        if turn == params.turns - 1 or not live:
            break
        out = backend.generate([user_turn_prompt(persona[j], convs[j]) for j in live], sampling=sampling)
        still = []
        for j, completions in zip(live, out):
            parsed = parse_single(strip_polite_filler(completions[0].text), min_words=2, sentence=True)
            if parsed:
                text = parsed
            else:
                stats.add(FAMILY, "parse_failures")
                if not template_fallback:
                    continue
                stats.add(FAMILY, "template_fallbacks")
                text = rngs[j].choice(FOLLOWUPS)
            convs[j].append({"role": "user", "content": text})
            still.append(j)
        live = still
    return [(f"{FAMILY}-{j}", convs[j]) for j in live]
