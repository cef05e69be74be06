"""Packed pretraining rows drawn from a weighted blend of named sources.

Row ``i`` of the run is a pure function of ``(seed, i, phase blend)``: it picks its source by
weight and packs documents (each ended by ``</s>``) up to the sequence length. So the data
position of a run is just the number of rows consumed, a resumed run reads exactly what the
uninterrupted run would have, and data-parallel ranks split a global batch by row index.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from synthloop import corpus


def documents_from_text(text: str) -> list[str]:
    """Documents of a text source: JSONL rows with ``text`` (or ``messages``), else paragraphs."""
    docs: list[str] = []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].lstrip().startswith("{"):
        for n, line in enumerate(lines, start=1):
            row = json.loads(line)
            if "text" in row:
                docs.append(str(row["text"]))
            else:
                raise ValueError(f"text source line {n}: expected a 'text' field")
        return docs
    return [p.strip() for p in text.split("\n\n") if p.strip()]


class BlendData:
    def __init__(
        self, tokenizer: Any, *, seq_length: int, seed: int,
        file_sources: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.tokenizer, self.seq_length, self.seed = tokenizer, seq_length, seed
        self.files = {k: list(v) for k, v in (file_sources or {}).items()}
        self.eos = int(tokenizer.eos_token_id)

    def known_sources(self) -> list[str]:
        return sorted(set(corpus.source_names()) | set(self.files))

    def check_blend(self, names: Sequence[str], *, phase: str) -> None:
        unknown = sorted(set(names) - set(self.known_sources()))
        if unknown:
            raise ValueError(
                f"phase {phase!r}: unknown blend sources {unknown}; expected builtin "
                f"{corpus.source_names()} or an input named like the source "
                f"(have {sorted(self.files)})"
            )

    def _document(self, source: str, rng: random.Random) -> str:
        if source in self.files:
            return rng.choice(self.files[source])
        return corpus.SOURCES[source](rng)

    def row(self, index: int, blend: Sequence[tuple[str, float]]) -> list[int]:
        rng = random.Random(f"{self.seed}:{index}")
        names = [n for n, _ in blend]
        source = rng.choices(names, weights=[w for _, w in blend])[0]
        ids: list[int] = []
        while len(ids) < self.seq_length:
            doc = self._document(source, rng)
            ids.extend(self.tokenizer(doc, add_special_tokens=False)["input_ids"])
            ids.append(self.eos)
        return ids[: self.seq_length]

    def texts(self, n: int, blend: Sequence[tuple[str, float]]) -> list[str]:
        """Raw documents for training a tokenizer on the same distribution."""
        rng = random.Random(f"tokenizer:{self.seed}")
        names, weights = [s for s, _ in blend], [w for _, w in blend]
        return [self._document(rng.choices(names, weights=weights)[0], rng) for _ in range(n)]
