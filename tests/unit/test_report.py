"""The loop report is built from CR objects: lineage, gates, data statistics and cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synthloop.report.cli import write_report
from synthloop.report.model import build_report

pytestmark = pytest.mark.unit


def cr(kind: str, name: str, spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name}, "spec": spec, "status": status}


def loop_objects() -> list[dict[str, Any]]:
    gate = {"evaluation": {"gates": [{"metric": "mc.arithmetic.acc", "mustBeatParent": True}]}}
    return [
        cr("PretrainJob", "base", {}, {"phase": "Succeeded", "outputs": [{"name": "model", "sha256": "aa" * 32}],
                                       "gpuHours": 0.5, "startedAt": "2026-01-01T00:00:00Z",
                                       "finishedAt": "2026-01-01T00:01:40Z"}),
        cr("SynthRound", "round-1", {"generator": {"model": {"fromRef": {"kind": "PretrainJob", "name": "base"}}}},
           {"phase": "Succeeded", "counts": {"generated": 40, "accepted": 30, "duplicates": 2},
            "inputs": [{"name": "model", "sha256": "aa" * 32}]}),
        cr("AlignJob", "align-1", {"baseModel": {"fromRef": {"kind": "PretrainJob", "name": "base"}},
                                   "data": {"fromRef": {"kind": "SynthRound", "name": "round-1"}}, **gate},
           {"phase": "Promoted", "promotedAs": "interm-1",
            "metrics": {"mc.arithmetic.acc": 0.6, "parent.mc.arithmetic.acc": 0.4},
            "conditions": [{"type": "Promoted", "status": "True"}]}),
        cr("SynthRound", "round-2", {"generator": {"model": {"promoted": "interm-1"}}}, {"phase": "Succeeded"}),
        cr("AlignJob", "align-2", {"baseModel": {"promoted": "interm-1"},
                                   "data": {"fromRef": {"kind": "SynthRound", "name": "round-2"}}, **gate},
           {"phase": "Rejected", "metrics": {"mc.arithmetic.acc": 0.5, "parent.mc.arithmetic.acc": 0.6},
            "conditions": [{"type": "Promoted", "status": "False",
                            "message": "mc.arithmetic.acc = 0.5, must beat parent's 0.6"}]}),
    ]


def test_lineage_resolves_promotions_and_pins_sha() -> None:
    report = build_report("demo", loop_objects())
    edges = {(e.target, e.role): e for e in report.edges}
    assert edges[("SynthRound/round-2", "generator")].source == "AlignJob/align-1"
    assert edges[("SynthRound/round-1", "generator")].sha256 == "aa" * 32
    assert report.nodes["AlignJob/align-2"].depth > report.nodes["AlignJob/align-1"].depth
    verdicts = {n.name: [g.passed for g in n.gates] for n in report.nodes.values() if n.gates}
    assert verdicts == {"align-1": [True], "align-2": [False]}
    assert report.nodes["PretrainJob/base"].wall_seconds == 100.0


def test_html_is_self_contained_and_says_what_was_rejected(tmp_path: Path) -> None:
    index = write_report(build_report("demo", loop_objects()), tmp_path)
    text = index.read_text()
    assert "data:image/png;base64," in text and "<script src" not in text
    assert "must beat parent" in text and "interm-1" in text
    assert (tmp_path / "loop.png").stat().st_size > 10_000
