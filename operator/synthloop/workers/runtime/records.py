"""Data files as the field releases them, read with no conversion step.

A URI may name JSONL (``.jsonl``/``.json``, one object per line, or one JSON array), the same
gzipped (``.jsonl.gz``/``.json.gz``: HelpSteer2's ``train.jsonl.gz``, C4's
``c4-train.00000-of-01024.json.gz``) or a Parquet file (an HF dataset export,
``data/train-00000-of-00001.parquet``). Gzip is recognised by its magic bytes, Parquet by its
``PAR1`` header, so a file's name need not say. Every reader turns the bytes into JSONL text,
which the format parsers (SFT, preference, ratings, documents, task files) read line by line
with their own malformed-line policy and line numbers.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"


def is_parquet(data: bytes) -> bool:
    return data[:4] == PARQUET_MAGIC and data[-4:] == PARQUET_MAGIC


def parquet_rows(data: bytes) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return [dict(r) for r in pq.read_table(io.BytesIO(data)).to_pylist()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):  # timestamps in Parquet exports
        return value.isoformat()
    return value


def as_jsonl_text(data: bytes, *, name: str) -> str:
    """The records of ``data`` (JSONL, gzipped JSONL, a JSON array or Parquet) as JSONL text."""
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{name}: gzip data that does not decompress ({exc})") from None
    if is_parquet(data):
        import pyarrow as pa

        try:
            rows = parquet_rows(data)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ValueError(f"{name}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
        return "".join(json.dumps(_jsonable(r), ensure_ascii=False) + "\n" for r in rows)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: expected JSONL, gzipped JSONL or Parquet; not UTF-8 text ({exc})") from None
    stripped = text.lstrip()
    if stripped.startswith("["):  # one JSON array of records
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError:
            return text
        if isinstance(rows, list):
            return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return text
