"""Promotion gates: min, maxRegression against a baseline, mustBeatParent; messages name the numbers."""

from __future__ import annotations

import pytest

from synthloop.api.v1alpha1.common import Gate
from synthloop.controllers.gates import evaluate_gates

pytestmark = pytest.mark.unit


def gate(**kw: object) -> Gate:
    return Gate.model_validate(kw)


def test_min_passes_at_the_bound_and_fails_below_with_metric_value_and_bound() -> None:
    g = [gate(metric="ifeval.prompt_strict", min=0.7)]
    assert evaluate_gates(g, {"ifeval.prompt_strict": 0.7}).passed
    report = evaluate_gates(g, {"ifeval.prompt_strict": 0.55})
    assert not report.passed
    assert report.message == "ifeval.prompt_strict = 0.55, needs >= 0.7"


def test_missing_metric_fails_and_lists_what_there_is() -> None:
    report = evaluate_gates([gate(metric="mc.mmlu.acc", min=0.1)], {"mc.arithmetic.acc": 0.9})
    assert not report.passed
    assert "mc.mmlu.acc is missing" in report.message and "mc.arithmetic.acc" in report.message


def test_max_regression_against_the_baseline() -> None:
    g = [gate(metric="acc", maxRegression=0.02, baseline={"promoted": "interm-1"})]
    assert evaluate_gates(g, {"acc": 0.79}, baselines={0: {"acc": 0.80}}).passed
    report = evaluate_gates(g, {"acc": 0.70}, baselines={0: {"acc": 0.80}})
    assert not report.passed
    assert report.message == "acc = 0.7, needs >= 0.78 (baseline 0.8 - maxRegression 0.02)"
    missing = evaluate_gates(g, {"acc": 0.9}, baselines={})
    assert not missing.passed and "baseline has no value" in missing.message


def test_must_beat_parent_is_strict() -> None:
    g = [gate(metric="reward.win_rate", mustBeatParent=True)]
    assert evaluate_gates(g, {"reward.win_rate": 0.61}, parent={"reward.win_rate": 0.5}).passed
    tie = evaluate_gates(g, {"reward.win_rate": 0.5}, parent={"reward.win_rate": 0.5})
    assert not tie.passed and tie.message == "reward.win_rate = 0.5, must beat parent's 0.5"
    assert not evaluate_gates(g, {"reward.win_rate": 0.9}, parent=None).passed


def test_all_gates_must_pass_and_the_message_lists_only_failures() -> None:
    gates = [gate(metric="a", min=0.5), gate(metric="b", min=0.5), gate(metric="c", min=0.1, mustBeatParent=True)]
    report = evaluate_gates(gates, {"a": 0.9, "b": 0.1, "c": 0.2}, parent={"c": 0.3})
    assert [r.passed for r in report.results] == [True, False, False]
    assert report.message == "b = 0.1, needs >= 0.5; c = 0.2, must beat parent's 0.3"
    ok = evaluate_gates(gates[:1], {"a": 0.9})
    assert ok.passed and ok.message == "a = 0.9 >= 0.5"


def test_no_gates_pass() -> None:
    assert evaluate_gates([], {}).passed
