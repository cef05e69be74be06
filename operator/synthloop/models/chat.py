"""Tokenising conversations for training: which tokens carry loss, and where a response ends.

Labels come from character offsets into the text the chat template renders, so training sees
exactly the tokens inference sees (tokenising turn by turn could merge differently at the
boundaries). The tokens that end an assistant turn, the following ``<extra_id_1>`` or the final
``</s>``, carry loss too: that is how the model learns to stop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

IGNORE_INDEX = -100
Message = Mapping[str, str]


def render(tokenizer: Any, messages: Sequence[Message], *, generation_prompt: bool = False) -> str:
    return str(tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=generation_prompt
    ))


def encode_conversation(
    tokenizer: Any,
    messages: Sequence[Message],
    *,
    max_length: int,
    train_on: Literal["assistant", "last"] = "assistant",
    add_eos: bool = True,
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)``; labels are ``-100`` except on assistant content (all or last turn).

    Sequences longer than ``max_length`` keep their end (the response and its end token matter
    more than the start of a long prompt).
    """
    if not messages:
        raise ValueError("conversation is empty: expected at least one message")
    spans: list[tuple[int, int]] = []
    last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or (train_on == "last" and i != last_assistant):
            continue
        start = len(render(tokenizer, messages[:i], generation_prompt=True))
        end = len(render(tokenizer, messages[: i + 1]))
        # the next turn marker (or </s>) follows `end` and belongs to the answer
        spans.append((start, end))
    text = render(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = list(enc["offset_mapping"])
    labels = [IGNORE_INDEX] * len(ids)
    for k, (s, e) in enumerate(offsets):
        for a, b in spans:
            if (s < b and e > a) or (s == b and k > 0 and labels[k - 1] != IGNORE_INDEX):
                labels[k] = ids[k]
                break
    if add_eos:
        eos = int(tokenizer.eos_token_id)
        ids.append(eos)
        labels.append(eos if messages[-1]["role"] == "assistant" and spans else IGNORE_INDEX)
    if len(ids) > max_length:
        ids, labels = ids[-max_length:], labels[-max_length:]
    return ids, labels


def pad_batch(
    rows: Sequence[tuple[list[int], list[int]]], *, pad_id: int
) -> tuple[Any, Any, Any]:
    """Right-pad ``(ids, labels)`` rows into ``input_ids``, ``attention_mask``, ``labels``."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    return input_ids, mask, labels
