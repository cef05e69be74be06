"""Promotion gates: a pure function of the evaluation metrics and the reference models' metrics.

The operator gathers the numbers (its own eval, the parent's and baselines' metrics from
promotion pointers, producer status or extra eval Jobs); this module only compares, so every
rule and message is unit-tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from synthloop.api.v1alpha1.common import Gate


@dataclass(frozen=True)
class GateResult:
    metric: str
    passed: bool
    message: str


@dataclass(frozen=True)
class GateReport:
    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def message(self) -> str:
        """The failures (or all results when every gate passed), joined for a condition message."""
        failed = [r.message for r in self.results if not r.passed]
        return "; ".join(failed) if failed else "; ".join(r.message for r in self.results)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def needs_parent(gates: Sequence[Gate]) -> bool:
    return any(g.must_beat_parent for g in gates)


def evaluate_gates(
    gates: Sequence[Gate],
    metrics: Mapping[str, float],
    *,
    parent: Mapping[str, float] | None = None,
    baselines: Mapping[int, Mapping[str, float]] | None = None,
) -> GateReport:
    """Check every gate; ``baselines`` is keyed by the gate's index in ``gates``.

    A gate whose metric is missing fails (a typo in a metric name must not promote), and so
    does a comparison whose reference metric is missing.
    """
    results: list[GateResult] = []
    for i, gate in enumerate(gates):
        name = gate.metric
        if name not in metrics:
            have = ", ".join(sorted(metrics)) or "none"
            results.append(GateResult(name, False, f"{name} is missing from the evaluation metrics (have: {have})"))
            continue
        value = float(metrics[name])
        problems: list[str] = []
        notes: list[str] = []
        if gate.min is not None:
            if value >= gate.min:
                notes.append(f"{name} = {_fmt(value)} >= {_fmt(gate.min)}")
            else:
                problems.append(f"{name} = {_fmt(value)}, needs >= {_fmt(gate.min)}")
        if gate.max_regression is not None:
            base = (baselines or {}).get(i)
            if base is None or name not in base:
                problems.append(f"{name}: the baseline has no value for this metric")
            else:
                bound = float(base[name]) - gate.max_regression
                if value >= bound:
                    notes.append(f"{name} = {_fmt(value)} >= baseline {_fmt(float(base[name]))} - {_fmt(gate.max_regression)}")
                else:
                    problems.append(
                        f"{name} = {_fmt(value)}, needs >= {_fmt(bound)} "
                        f"(baseline {_fmt(float(base[name]))} - maxRegression {_fmt(gate.max_regression)})"
                    )
        if gate.must_beat_parent:
            if parent is None or name not in parent:
                problems.append(f"{name}: the parent model has no value for this metric")
            else:
                p = float(parent[name])
                if value > p:
                    notes.append(f"{name} = {_fmt(value)} beats parent's {_fmt(p)}")
                else:
                    problems.append(f"{name} = {_fmt(value)}, must beat parent's {_fmt(p)}")
        if problems:
            results.append(GateResult(name, False, "; ".join(problems)))
        else:
            results.append(GateResult(name, True, "; ".join(notes)))
    return GateReport(tuple(results))
