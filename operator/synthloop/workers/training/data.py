"""Reading training data: SFT conversations, preference pairs, HelpSteer2 ratings (JSONL).

Malformed lines policy: a line that is not JSON, not an object, or lacks the fields its format
needs is counted and skipped, as long as the malformed lines stay within
``max_malformed_fraction`` of all non-blank lines (default 1%). Past that cap — or when no line
is valid — the whole file is rejected with a :class:`DataError` naming the first bad line
numbers and why, before any training starts. The skipped count is reported in the manifest
(``counts.<role>_malformed``).

Accepted formats:

* SFT: TRL ``{"messages": [{"role", "content"}]}`` or NeMo ``{"system", "conversations":
  [{"from", "value"}]}`` (``from`` is User/Assistant, case-insensitive).
* Preference: ``{"prompt", "chosen", "rejected", "chosen_reward", "rejected_reward"}`` with
  ``prompt`` a string or a message list and ``chosen``/``rejected`` a string or a message list
  (the last assistant turn is taken); NeMo ``chosen_response``/``rejected_response`` too.
* Ratings: ``{"prompt", "response", "helpfulness", "correctness", "coherence", "complexity",
  "verbosity"}`` (0-4; a missing attribute is unrated and carries no loss).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from synthloop.models.reward import ATTRIBUTES

T = TypeVar("T")
Message = dict[str, str]
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "human": "user",
         "gpt": "assistant", "bot": "assistant"}


class DataError(ValueError):
    """A dataset that cannot be used, with the line numbers that show why."""


@dataclass(frozen=True)
class PreferencePair:
    prompt: list[Message]
    chosen: str
    rejected: str
    chosen_reward: float | None = None
    rejected_reward: float | None = None

    def conversation(self, response: str) -> list[Message]:
        return [*self.prompt, {"role": "assistant", "content": response}]


@dataclass(frozen=True)
class Rating:
    prompt: list[Message]
    response: str
    attributes: tuple[float, ...]  # NaN where unrated

    def conversation(self) -> list[Message]:
        return [*self.prompt, {"role": "assistant", "content": self.response}]


def read_jsonl(
    text: str, *, parse: Callable[[dict[str, Any]], T], what: str, max_malformed_fraction: float
) -> tuple[list[T], int]:
    """Parse every line; returns ``(rows, malformed_count)`` or raises :class:`DataError`."""
    rows: list[T] = []
    bad: list[tuple[int, str]] = []
    total = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        total += 1
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise TypeError(f"expected a JSON object, got {type(obj).__name__}")
            rows.append(parse(obj))
        except (ValueError, KeyError, TypeError) as exc:
            bad.append((lineno, f"{type(exc).__name__}: {exc}"))
    detail = "; ".join(f"line {n}: {why}" for n, why in bad[:3])
    if not rows:
        raise DataError(f"{what}: no valid rows in {total} lines" + (f" ({detail})" if bad else ""))
    if len(bad) > max_malformed_fraction * total:
        raise DataError(
            f"{what}: {len(bad)} of {total} lines are malformed, more than the allowed "
            f"{max_malformed_fraction:.1%}; {detail}"
        )
    return rows, len(bad)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {type(value).__name__}")
    return value


def _messages(value: Any, field: str) -> list[Message]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError(f"{field} must be a string or a non-empty list of messages")
    out: list[Message] = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise TypeError(f"{field}[{i}] must be an object")
        raw_role = m.get("role", m.get("from"))
        role = ROLES.get(str(raw_role).lower())
        if role is None:
            raise ValueError(f"{field}[{i}]: unknown role {raw_role!r} (expected user/assistant/system)")
        out.append({"role": role, "content": _text(m.get("content", m.get("value")), f"{field}[{i}].content")})
    return out


def parse_sft(row: dict[str, Any]) -> list[Message]:
    if "messages" in row:
        msgs = _messages(row["messages"], "messages")
    elif "conversations" in row:
        msgs = _messages(row["conversations"], "conversations")
        if row.get("system"):
            msgs = [{"role": "system", "content": _text(row["system"], "system")}, *msgs]
    else:
        raise KeyError("expected 'messages' (TRL) or 'conversations' (NeMo)")
    if not any(m["role"] == "assistant" for m in msgs):
        raise ValueError("conversation has no assistant turn to train on")
    return msgs


def _response(value: Any, field: str) -> str:
    if isinstance(value, list):
        turns = [m for m in _messages(value, field) if m["role"] == "assistant"]
        if not turns:
            raise ValueError(f"{field} has no assistant message")
        return turns[-1]["content"]
    return _text(value, field)


def _opt_float(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{field} must be a number")
    return float(value)


def parse_preference(row: dict[str, Any]) -> PreferencePair:
    chosen = row.get("chosen", row.get("chosen_response"))
    rejected = row.get("rejected", row.get("rejected_response"))
    if chosen is None or rejected is None or "prompt" not in row:
        raise KeyError("expected prompt, chosen (or chosen_response) and rejected (or rejected_response)")
    return PreferencePair(
        prompt=_messages(row["prompt"], "prompt"),
        chosen=_response(chosen, "chosen"),
        rejected=_response(rejected, "rejected"),
        chosen_reward=_opt_float(row.get("chosen_reward"), "chosen_reward"),
        rejected_reward=_opt_float(row.get("rejected_reward"), "rejected_reward"),
    )


def parse_rating(row: dict[str, Any]) -> Rating:
    if "prompt" not in row or "response" not in row:
        raise KeyError("expected prompt and response")
    attrs: list[float] = []
    for name in ATTRIBUTES:
        value = _opt_float(row.get(name), name)
        if value is not None and not 0 <= value <= 4:
            raise ValueError(f"{name}={value}: expected 0..4")
        attrs.append(float("nan") if value is None else value)
    if all(math.isnan(a) for a in attrs):
        raise ValueError(f"no attribute rated (expected some of {list(ATTRIBUTES)})")
    return Rating(prompt=_messages(row["prompt"], "prompt"), response=_text(row["response"], "response"),
                  attributes=tuple(attrs))


def batches(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i: i + size]) for i in range(0, len(items), size)]
