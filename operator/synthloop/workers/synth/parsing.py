"""Parsing of messy generator output: lists, single items, dialogue turns, responses.

Generators wrap what we asked for in chatter ("Sure! Here are 5 topics:"), number it in
different styles, answer in JSON or YAML, or stop mid-item at the token limit. Every parser
here returns an empty result for garbage instead of raising, so the caller counts a parse
failure and moves on.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

_FENCE = re.compile(r"```[a-zA-Z]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
_LIST_ITEM = re.compile(
    r"^\s*(?:(?:\d{1,3}|[a-zA-Z])[.)\]:]|\(\d{1,3}\)|[-*•+]|#{1,6}|(?:Step|Item|Question|Topic)\s+\d+\s*[:.)-])\s+(?P<item>.+?)\s*$",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^\s*(?:sure|certainly|of course|okay|ok|here(?:'s| is| are)|below (?:is|are)|great)\b.*?[:!.]\s*$",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:revised |rewritten |new |improved |final )?(?:question|prompt|instruction|task|answer|response|user|topic)(?:\*\*)?\s*[:：-]\s*(?:\*\*)?\s*",
    re.IGNORECASE,
)
_SPECIAL = re.compile(r"</?s>|<extra_id_\d+>|<pad>|<unk>")
_TURN_HEADER = re.compile(r"\n(?:User|Assistant|System)\s*\n", re.IGNORECASE)
_REFUSAL = re.compile(
    r"\b(?:i(?:'m| am) (?:sorry|afraid)[^.]{0,40}\b(?:can(?:no|')t|unable|not able)|"
    r"i (?:can(?:no|')t|won't|am unable to|am not able to) (?:help|assist|do|provide|answer|comply|browse|access)|"
    r"as an ai(?: language model)?,? i (?:can(?:no|')t|don't|do not|am unable))",
    re.IGNORECASE,
)
_FILLER = re.compile(
    r"^(?:(?:thank(?:s| you) (?:so much |very much )?for[^.!?\n]*|thanks?(?: you)?(?: so much| very much)?|"
    r"i appreciate[^.!?\n]*|that(?:'s| is| was) (?:a )?(?:great|helpful|very helpful|interesting|useful)[^.!?\n]*|"
    r"great(?: answer| explanation| question)?|awesome|perfect|wonderful|got it|"
    r"(?:ok|okay)(?: thanks)?)[.!,]*\s*)+",
    re.IGNORECASE,
)


def _strip_item(item: str) -> str:
    item = re.sub(r"^\*\*(.+?)\*\*\s*[:.-]?\s*", r"\1: ", item).strip()
    item = item.strip().strip('"').strip("'").strip()
    item = re.sub(r"[:\s]+$", "", item)
    return item.strip()


def _from_structured(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        for key in ("items", "topics", "subtopics", "questions", "instructions", "keywords", "list"):
            if isinstance(value.get(key), list):
                return _from_structured(value[key])
        lists = [v for v in value.values() if isinstance(v, list)]
        return _from_structured(lists[0]) if len(lists) == 1 else None
    if isinstance(value, list):
        out: list[str] = []
        for entry in value:
            if isinstance(entry, (str, int, float)):
                out.append(str(entry))
            elif isinstance(entry, dict):
                texts = [v for v in entry.values() if isinstance(v, str)]
                if texts:
                    out.append(max(texts, key=len))
        out = [_strip_item(x) for x in out]
        return [x for x in out if x]
    return None


def _json_array_prefix(text: str) -> list[str] | None:
    """Complete string items of a JSON array, even when the array was cut off."""
    start = text.find("[")
    if start < 0:
        return None
    body = text[start:]
    try:
        return _from_structured(json.loads(body[: body.rfind("]") + 1]))
    except ValueError:
        pass
    items = re.findall(r'"((?:[^"\\]|\\.)*)"\s*(?=[,\]])', body)
    if not items:
        return None
    return [_strip_item(json.loads(f'"{s}"')) for s in items if s.strip()]


def parse_list(text: str, *, truncated: bool = False, max_items: int | None = None) -> list[str]:
    """Items of a list in ``text``: JSON array/object, YAML list, numbered or bulleted lines.

    ``truncated`` (the generation hit its token limit) drops a last line-item that may be cut
    off. Returns ``[]`` when no list is found.
    """
    text = _SPECIAL.sub("", text or "")
    candidates = [m.strip() for m in _FENCE.findall(text) if m.strip()] + [text.strip()]
    items: list[str] | None = None
    for chunk in candidates:
        if chunk.lstrip().startswith(("[", "{")):
            try:
                items = _from_structured(json.loads(chunk))
            except ValueError:
                items = _json_array_prefix(chunk)
            if items:
                break
        lines = chunk.splitlines()
        matched = [m.group("item") for m in map(_LIST_ITEM.match, lines) if m]
        if len(matched) >= 1 and len(matched) >= len([ln for ln in lines if ln.strip()]) // 3:
            items = [_strip_item(x) for x in matched]
            items = [x for x in items if x]
            if truncated and items and not chunk.rstrip().endswith((".", "?", "!", ")", '"')) and not text.rstrip().endswith("```"):
                last_line = [ln for ln in lines if ln.strip()][-1]
                if _LIST_ITEM.match(last_line):
                    items = items[:-1]
            if items:
                break
        if "[" in chunk and '"' in chunk:
            items = _json_array_prefix(chunk)
            if items:
                break
        try:
            loaded = yaml.safe_load(chunk)
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, (list, dict)):
            items = _from_structured(loaded)
            if items:
                break
        items = None
    if not items:
        return []
    seen: set[str] = set()
    unique = []
    for x in items:
        if x.lower() not in seen:
            seen.add(x.lower())
            unique.append(x)
    return unique[:max_items] if max_items else unique


def parse_single(text: str, *, min_words: int = 3, question: bool = False, sentence: bool = False) -> str | None:
    """One item (a question, a revised prompt): the text without chatter, labels or quotes.

    ``question`` requires a question (cut after its first ``?``); ``sentence`` requires final
    punctuation, which a generation cut off mid-way or pure noise rarely has.
    """
    text = _SPECIAL.sub("", text or "")
    fenced = [m.strip() for m in _FENCE.findall(text) if m.strip()]
    body = fenced[0] if fenced and not text.strip().startswith(fenced[0][:10]) else text
    lines = [ln for ln in body.strip().splitlines()]
    while lines and (not lines[0].strip() or _PREAMBLE.match(lines[0])):
        lines.pop(0)
    if not lines:
        return None
    paragraph: list[str] = []
    for line in lines:
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    value = _LABEL.sub("", " ".join(paragraph)).strip().strip('"').strip("'").strip("*").strip()
    if question:
        mark = value.find("?")
        if mark < 0:
            return None
        value = value[: mark + 1].strip()
    elif sentence and not re.search(r"[.?!:)]$", value):
        return None
    words = re.findall(r"[A-Za-z]{2,}", value)
    if len(words) < min_words:
        return None
    return value


def clean_response(text: str) -> str:
    """A response without special tokens and without a hallucinated next turn."""
    text = text or ""
    header = _TURN_HEADER.search("\n" + text)
    if header:
        text = ("\n" + text)[: header.start()]
    text = text.split("<extra_id_1>")[0]
    return _SPECIAL.sub("", text).strip()


def is_refusal(text: str) -> bool:
    return _REFUSAL.search(text or "") is not None


def strip_polite_filler(text: str) -> str:
    """A simulated user's turn without "Thank you for ..." openers and closers."""
    value = clean_response(_LABEL.sub("", (text or "").strip()))
    value = _FILLER.sub("", value).strip()
    sentences = re.split(r"(?<=[.!?])\s+", value)
    while sentences and _FILLER.fullmatch(sentences[-1] + " "):
        sentences.pop()
    return " ".join(s for s in sentences if s).strip().strip('"').strip()


def parse_yes_no(text: str) -> bool | None:
    """A classification answer: True for yes, False for no, None when it says neither."""
    words = re.findall(r"[a-z]+", _SPECIAL.sub("", text or "").lower())[:6]
    yes, no = "yes" in words, "no" in words
    if yes == no:
        return None
    return yes
