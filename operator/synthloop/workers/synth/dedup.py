"""Exact and near-duplicate removal (MinHash over word shingles, LSH banding).

Duplicates are judged on the *prompt* (the user turns), as in the report's prompt dedup: two
records asking the same thing add no information, whatever the responses. Hashing uses
blake2b, not ``hash()``, so results do not depend on PYTHONHASHSEED across shards and merge.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
_MERSENNE = (1 << 61) - 1


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.findall(r"\w+", text))


def _h64(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "little")


def shingles(text: str, *, k: int = 3) -> set[str]:
    words = normalize(text).split()
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class MinHasher:
    """``num_perm`` universal hashes of each shingle; signature = per-hash minima."""

    num_perm: int = 64
    seed: int = 1
    _params: list[tuple[int, int]] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self._params = [(rng.randrange(1, _MERSENNE), rng.randrange(0, _MERSENNE)) for _ in range(self.num_perm)]

    def signature(self, items: set[str]) -> tuple[int, ...]:
        hashes = [_h64(s) for s in items] or [0]
        return tuple(min((a * h + b) % _MERSENNE for h in hashes) for a, b in self._params)


@dataclass
class DedupResult:
    kept: list[int]
    exact: int = 0
    near: int = 0

    @property
    def duplicates(self) -> int:
        return self.exact + self.near


def dedup(
    records: Sequence[T],
    *,
    key: Callable[[T], str],
    exact: bool = True,
    near_threshold: float | None = 0.9,
    bands: int = 16,
) -> DedupResult:
    """Indices of ``records`` to keep (first occurrence wins) and how many of each kind went.

    Near duplicates: candidate pairs share an LSH band of their MinHash signatures, then are
    confirmed with the exact Jaccard of their shingle sets (so no false positives).
    """
    hasher = MinHasher(num_perm=bands * 4)
    rows = hasher.num_perm // bands
    seen_exact: set[str] = set()
    buckets: dict[tuple[int, tuple[int, ...]], list[int]] = defaultdict(list)
    kept_shingles: dict[int, set[str]] = {}
    result = DedupResult(kept=[])
    for index, record in enumerate(records):
        text = normalize(key(record))
        if exact:
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in seen_exact:
                result.exact += 1
                continue
            seen_exact.add(digest)
        if near_threshold is not None:
            sh = shingles(text)
            sig = hasher.signature(sh)
            keys = [(b, sig[b * rows : (b + 1) * rows]) for b in range(bands)]
            candidates = {j for k in keys for j in buckets.get(k, ())}
            if any(jaccard(sh, kept_shingles[j]) >= near_threshold for j in candidates):
                result.near += 1
                continue
            kept_shingles[index] = sh
            for k in keys:
                buckets[k].append(index)
        result.kept.append(index)
    return result


def prompt_text(messages: Iterable[dict[str, str]]) -> str:
    """The dedup key of a conversation: its user turns."""
    return "\n".join(m["content"] for m in messages if m.get("role") == "user")
