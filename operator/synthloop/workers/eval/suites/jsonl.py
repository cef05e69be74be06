"""Task files are JSONL: one reader for every suite, so a bad line is reported the same way."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def parse_jsonl(text: str, *, label: str, parse: Callable[[dict[str, Any], str], T]) -> list[T]:
    """``parse(row, where)`` for every non-blank line; any bad line rejects the file with its number."""
    items: list[T] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from None
        try:
            items.append(parse(row, where))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where}: {exc}") from None
    if not items:
        raise ValueError(f"{label}: no items")
    return items
