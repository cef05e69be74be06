"""Drop and acceptance statistics, per family: every record that is not kept is counted."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

#: Counters that every family reports (the manifest's counts/metrics read these).
CORE = ("prompts", "generated", "parse_failures", "filtered_by_reward", "duplicates",
        "sft_accepted", "preference_accepted")


class Stats:
    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, family: str, key: str, n: int = 1) -> None:
        self.counts[family][key] += n

    def get(self, family: str, key: str) -> int:
        return self.counts.get(family, {}).get(key, 0)

    def total(self, key: str) -> int:
        return sum(c.get(key, 0) for c in self.counts.values())

    def merge(self, other: dict[str, dict[str, int]]) -> None:
        for family, counters in other.items():
            for key, value in counters.items():
                self.counts[family][key] += int(value)

    def acceptance_rate(self, family: str) -> float:
        """Accepted SFT records per prompt made (dialogues count as prompts)."""
        prompts = self.get(family, "prompts")
        return self.get(family, "sft_accepted") / prompts if prompts else 0.0

    def as_dict(self) -> dict[str, Any]:
        families = {f: dict(sorted(c.items())) for f, c in sorted(self.counts.items())}
        totals = {k: self.total(k) for k in sorted({k for c in self.counts.values() for k in c})}
        prompts = totals.get("prompts", 0)
        return {
            "families": families,
            "totals": totals,
            "acceptance_rate": {f: round(self.acceptance_rate(f), 6) for f in sorted(self.counts)},
            "overall_acceptance_rate": round(totals.get("sft_accepted", 0) / prompts, 6) if prompts else 0.0,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stats:
        stats = cls()
        stats.merge(data.get("families", {}))
        return stats

    def manifest_counts(self) -> dict[str, int]:
        out = {key: self.total(key) for key in CORE}
        for family, counters in self.counts.items():
            for key in CORE:
                out[f"{family}.{key}"] = counters.get(key, 0)
        return out

    def manifest_metrics(self) -> dict[str, float]:
        data = self.as_dict()
        out = {f"acceptance_rate.{f}": r for f, r in data["acceptance_rate"].items()}
        out["acceptance_rate"] = data["overall_acceptance_rate"]
        return out
