"""Output formats of a SynthRound, for TRL and NeMo-Aligner.

``sft.jsonl`` (TRL conversational SFT, one row per conversation)::

    {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...],
     "id": str, "family": str}

``preference.jsonl`` (TRL conversational preference; extra columns are ignored by TRL, and the
rewards are what RPO's reward gap needs)::

    {"prompt": [{"role", "content"}, ...],            # ends with a user turn
     "chosen": [{"role": "assistant", "content": str}],
     "rejected": [{"role": "assistant", "content": str}],
     "chosen_reward": float, "rejected_reward": float, "judge": "verifier"|"reward_model",
     "id": str, "family": str}

``sft.nemo.jsonl`` (NeMo chat SFT, ``GPTSFTChatDataset``; loss on assistant turns only)::

    {"system": str, "conversations": [{"from": "User"|"Assistant", "value": str}, ...],
     "mask": "User"}

``preference.nemo.jsonl`` (NeMo-Aligner DPO/RPO): the prompt rendered with the Nemotron chat
format up to the assistant header; each response ends with the turn token::

    {"prompt": "<extra_id_0>System\\n{system}\\n<extra_id_1>User\\n{user}\\n<extra_id_1>Assistant\\n",
     "chosen_response": "{chosen}\\n<extra_id_1>", "rejected_response": "{rejected}\\n<extra_id_1>",
     "chosen_reward": float, "rejected_reward": float}
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

Message = dict[str, str]
ROLES = ("system", "user", "assistant")
NEMO_SPEAKER = {"user": "User", "assistant": "Assistant"}
SYSTEM_HEADER = "<extra_id_0>System\n"
TURN = "<extra_id_1>"


def _check_messages(messages: Any, *, field: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{field}: expected a non-empty list of {{role, content}} messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise ValueError(f"{field}[{i}]: expected exactly the keys role and content, got {m!r}")
        if m["role"] not in ROLES or not isinstance(m["content"], str):
            raise ValueError(f"{field}[{i}]: role must be one of {ROLES} and content a string")
        if m["role"] == "system" and i != 0:
            raise ValueError(f"{field}[{i}]: a system message may only come first")


def sft_row(messages: Sequence[Message], *, id: str, family: str) -> dict[str, Any]:
    row = {"messages": [{"role": m["role"], "content": m["content"]} for m in messages], "id": id, "family": family}
    validate_trl_sft(row)
    return row


def preference_row(
    prompt: Sequence[Message],
    *,
    chosen: str,
    rejected: str,
    chosen_reward: float,
    rejected_reward: float,
    judge: str,
    id: str,
    family: str,
) -> dict[str, Any]:
    row = {
        "prompt": [{"role": m["role"], "content": m["content"]} for m in prompt],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        "chosen_reward": float(chosen_reward),
        "rejected_reward": float(rejected_reward),
        "judge": judge,
        "id": id,
        "family": family,
    }
    validate_trl_preference(row)
    return row


def validate_trl_sft(row: dict[str, Any]) -> None:
    _check_messages(row.get("messages"), field="messages")
    if row["messages"][-1]["role"] != "assistant":
        raise ValueError("messages: the last message must be the assistant's (what SFT learns)")


def validate_trl_preference(row: dict[str, Any]) -> None:
    for key in ("prompt", "chosen", "rejected"):
        if key not in row:
            raise ValueError(f"preference row: missing {key!r}")
    _check_messages(row["prompt"], field="prompt")
    if row["prompt"][-1]["role"] != "user":
        raise ValueError("prompt: the last message must be a user turn")
    for key in ("chosen", "rejected"):
        _check_messages(row[key], field=key)
        if [m["role"] for m in row[key]] != ["assistant"]:
            raise ValueError(f"{key}: expected exactly one assistant message")


def _split_system(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    if messages and messages[0]["role"] == "system":
        return messages[0]["content"], list(messages[1:])
    return "", list(messages)


def render_nemo_prompt(messages: Sequence[Message]) -> str:
    """Nemotron chat format of ``messages`` followed by the assistant header."""
    system, turns = _split_system(messages)
    out = SYSTEM_HEADER + system + "\n"
    for m in turns:
        out += f"{TURN}{NEMO_SPEAKER[m['role']]}\n{m['content']}\n"
    return out + f"{TURN}Assistant\n"


def to_nemo_sft(row: dict[str, Any]) -> dict[str, Any]:
    validate_trl_sft(row)
    system, turns = _split_system(row["messages"])
    return {
        "system": system,
        "conversations": [{"from": NEMO_SPEAKER[m["role"]], "value": m["content"]} for m in turns],
        "mask": "User",
    }


def to_nemo_preference(row: dict[str, Any]) -> dict[str, Any]:
    validate_trl_preference(row)
    return {
        "prompt": render_nemo_prompt(row["prompt"]),
        "chosen_response": row["chosen"][0]["content"] + "\n" + TURN,
        "rejected_response": row["rejected"][0]["content"] + "\n" + TURN,
        "chosen_reward": float(row["chosen_reward"]),
        "rejected_reward": float(row["rejected_reward"]),
    }


def validate_nemo_sft(row: dict[str, Any]) -> None:
    if set(row) != {"system", "conversations", "mask"}:
        raise ValueError(f"NeMo SFT row: expected keys system, conversations, mask; got {sorted(row)}")
    speakers = [c.get("from") for c in row["conversations"]]
    if not speakers or speakers[0] != "User" or speakers[-1] != "Assistant":
        raise ValueError(f"NeMo SFT row: conversations must go User ... Assistant, got {speakers}")
    if any(a == b for a, b in itertools.pairwise(speakers)):
        raise ValueError(f"NeMo SFT row: speakers must alternate, got {speakers}")
    if row["mask"] != "User":
        raise ValueError("NeMo SFT row: mask must be 'User' (loss on assistant turns only)")


def validate_nemo_preference(row: dict[str, Any]) -> None:
    keys = {"prompt", "chosen_response", "rejected_response", "chosen_reward", "rejected_reward"}
    if set(row) != keys:
        raise ValueError(f"NeMo preference row: expected keys {sorted(keys)}, got {sorted(row)}")
    if not row["prompt"].startswith(SYSTEM_HEADER) or not row["prompt"].endswith(f"{TURN}Assistant\n"):
        raise ValueError("NeMo preference row: prompt must be a rendered chat ending with the assistant header")
    for key in ("chosen_response", "rejected_response"):
        if not row[key].endswith("\n" + TURN):
            raise ValueError(f"NeMo preference row: {key} must end with '\\n{TURN}'")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from exc
