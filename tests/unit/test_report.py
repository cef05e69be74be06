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
                                       "metrics": {"gen.arithmetic.acc": 0.25, "gen.arithmetic.acc_stderr": 0.05},
                                       "counts": {"gen.arithmetic.acc": 64},
                                       "gpuHours": 0.5, "startedAt": "2026-01-01T00:00:00Z",
                                       "finishedAt": "2026-01-01T00:01:40Z"}),
        cr("SynthRound", "round-1", {"generator": {"model": {"fromRef": {"kind": "PretrainJob", "name": "base"}}}},
           {"phase": "Succeeded", "counts": {"generated": 40, "sft_accepted": 30, "preference_accepted": 12,
                                             "sft_rows": 31, "preference_rows": 11, "duplicates": 2},
            "inputs": [{"name": "model", "sha256": "aa" * 32}]}),
        cr("AlignJob", "align-1", {"baseModel": {"fromRef": {"kind": "PretrainJob", "name": "base"}},
                                   "data": {"fromRef": {"kind": "SynthRound", "name": "round-1"}}, **gate},
           {"phase": "Promoted", "promotedAs": "interm-1",
            "metrics": {"mc.arithmetic.acc": 0.6, "parent.mc.arithmetic.acc": 0.4,
                        "gen.arithmetic.acc": 0.40, "gen.arithmetic.acc_stderr": 0.06},
            "conditions": [{"type": "Promoted", "status": "True"}]}),
        cr("SynthRound", "round-2", {"generator": {"model": {"promoted": "interm-1"}}}, {"phase": "Succeeded"}),
        cr("AlignJob", "align-2", {"baseModel": {"promoted": "interm-1"},
                                   "data": {"fromRef": {"kind": "SynthRound", "name": "round-2"}}, **gate},
           {"phase": "Rejected", "metrics": {"mc.arithmetic.acc": 0.5, "parent.mc.arithmetic.acc": 0.6,
                                             "gen.arithmetic.acc": 0.30, "gen.arithmetic.acc_stderr": 0.06},
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


def test_gate_bounds_come_from_min_parent_and_the_baseline() -> None:
    objs = loop_objects()
    align2 = objs[-1]
    align2["spec"]["evaluation"]["gates"] = [
        {"metric": "gen.arithmetic.acc", "maxRegression": 0.05, "baseline": {"promoted": "interm-1"}},
        {"metric": "mc.arithmetic.acc", "min": 0.45}, {"metric": "mc.arithmetic.acc", "mustBeatParent": True}]
    gates = build_report("demo", objs).nodes["AlignJob/align-2"].gates
    assert [g.bound for g in gates] == [pytest.approx(0.35), 0.45, 0.6]
    assert [g.passed for g in gates] == [False, True, False]


def test_held_out_metrics_side_by_side_and_the_data_table(tmp_path: Path) -> None:
    from synthloop.report.model import held_out, model_label

    report = build_report("demo", loop_objects())
    models, names = held_out(report)
    assert [model_label(m) for m in models] == ["base", "interm-1 (align-1)", "align-2"]
    assert names == ["gen.arithmetic.acc"]
    text = write_report(report, tmp_path).read_text()
    assert "0.250 ± 0.050 (n=64)" in text and "0.400 ± 0.060" in text
    assert "<td>31</td>" in text and "<td>11</td>" in text and "preference pairs" in text


def test_edge_labels_are_moved_apart() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from synthloop.report.plot import _separate

    fig, ax = plt.subplots()
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 10)
    texts = [ax.text(0.5, 1.0, f"label number {i}", fontsize=6) for i in range(5)]
    renderer = fig.canvas.get_renderer()
    assert texts[0].get_window_extent(renderer).overlaps(texts[1].get_window_extent(renderer))
    _separate(fig, ax, texts)
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


def test_the_demo_summary_lists_each_models_held_out_accuracy_with_its_stderr() -> None:
    from synthloop.demo.follow import held_out_table

    lines = held_out_table(build_report("demo", loop_objects())).splitlines()
    assert lines[0].split() == ["MODEL", "PHASE", "gen.arithmetic.acc"]
    assert lines[1].split() == ["base", "Succeeded", "0.250", "±", "0.050"]
    assert lines[2].split() == ["interm-1", "(align-1)", "Promoted", "0.400", "±", "0.060"]
    assert lines[3].split() == ["align-2", "Rejected", "0.300", "±", "0.060"]
    assert held_out_table(build_report("demo", [])) == ""


def test_a_must_beat_parent_bound_falls_back_to_the_parents_own_metrics() -> None:
    objects = loop_objects()
    align1 = objects[2]
    align1["spec"]["evaluation"] = {"gates": [{"metric": "gen.arithmetic.acc", "mustBeatParent": True}]}
    report = build_report("demo", objects)
    (gate,) = report.nodes["AlignJob/align-1"].gates
    assert gate.bound == 0.25 and gate.passed is True and "0.250" in gate.rule  # the base's status
