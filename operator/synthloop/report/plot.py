"""The report's picture, one PNG: the lineage graph, the gated metrics per run (each with its
gate's bound), and base / interm-1 / interm-2 side by side on the held-out verifier metrics
with standard-error bars."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from synthloop.report.model import LoopReport, held_out, model_label

COLORS = {"Promoted": "#2e7d32", "Succeeded": "#66bb6a", "Rejected": "#ef6c00", "Failed": "#c62828"}


def render_png(report: LoopReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns: dict[int, list[str]] = defaultdict(list)
    for node in sorted(report.nodes.values(), key=lambda n: (n.depth, n.kind, n.name)):
        columns[node.depth].append(node.key)
    height = max((len(v) for v in columns.values()), default=1)
    pos = {key: (depth * 3.2, -i * 1.6 - (height - len(keys)) * 0.8)
           for depth, keys in columns.items() for i, key in enumerate(keys)}

    gated = [n for n in report.nodes.values() if n.gates]
    models, held = held_out(report)
    fig, (ax, bx, cx) = plt.subplots(
        3, 1, figsize=(max(8.0, 3.2 * len(columns) + 2), 3 + 1.6 * height + 7.5),
        gridspec_kw={"height_ratios": [1.6 * height + 1, 3.5, 3.5]},
    )
    labels_drawn = []
    for edge in report.edges:
        if edge.source in pos and edge.target in pos and not edge.role.startswith("gate:"):
            (x0, y0), (x1, y1) = pos[edge.source], pos[edge.target]
            span = round(abs(x1 - x0) / 3.2)
            # Edges that skip a column arc above the boxes instead of crossing them.
            rad = -0.12 - 0.02 * min(span, 6) if span > 1 else 0.0
            ax.annotate("", xy=(x1 - 1.1, y1 + (0.3 if span > 1 else 0)),
                        xytext=(x0 + 1.1, y0 + (0.3 if span > 1 else 0)),
                        arrowprops={"arrowstyle": "->", "color": "#555",
                                    "connectionstyle": f"arc3,rad={rad}"})
            label = edge.role + (f" {edge.sha256[:8]}" if edge.sha256 else "")
            lift = 0.15 + (0.3 + 0.45 * span * abs(rad) * 3.2 / 2 if span > 1 else 0)
            labels_drawn.append(ax.text((x0 + x1) / 2, (y0 + y1) / 2 + lift, label, fontsize=6, ha="center",
                                        color="#333", bbox={"boxstyle": "round,pad=0.1", "fc": "white",
                                                            "ec": "none", "alpha": 0.9}))
    for key, (x, y) in pos.items():
        node = report.nodes[key]
        color = COLORS.get(node.phase, "#90a4ae")
        ax.add_patch(plt.Rectangle((x - 1.1, y - 0.45), 2.2, 0.9, color=color, alpha=0.85))
        text = f"{node.kind}\n{node.name}" + (f"\n→ {node.promoted_as}" if node.promoted_as else "")
        ax.text(x, y, text, ha="center", va="center", fontsize=7, color="white", weight="bold")
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
    widest = max((round(abs(pos[e.target][0] - pos[e.source][0]) / 3.2) for e in report.edges
                  if e.source in pos and e.target in pos), default=1)
    ax.set_ylim(min(ys) - 1, max(ys) + 1.2 + 0.75 * widest)
    ax.axis("off")
    ax.set_title(f"Lineage of the loop in namespace {report.namespace}")

    labels, values, colors, bounds = [], [], [], []
    for node in gated:
        for gate in node.gates:
            if gate.value is not None:
                labels.append(f"{node.name}\n{gate.metric}")
                values.append(gate.value)
                colors.append({True: "#2e7d32", False: "#c62828"}.get(gate.passed, "#90a4ae"))
                bounds.append((gate.bound, gate.rule))
    if values:
        bx.bar(range(len(values)), values, color=colors)
        for i, (bound, rule) in enumerate(bounds):
            if bound is not None:
                bx.hlines(bound, i - 0.45, i + 0.45, colors="black", linestyles="dashed")
                bx.text(i, bound, f"gate {rule}", fontsize=6, ha="center", va="bottom")
        bx.set_xticks(range(len(values)), labels, fontsize=7)
        bx.set_ylabel("metric value")
        bx.set_title("Gated metrics; dashed: the gate's bound (green: passed, red: failed, grey: not known)")
    else:
        bx.text(0.5, 0.5, "no gated metrics yet", ha="center")
        bx.axis("off")

    if models and held:
        width = 0.8 / len(models)
        for k, node in enumerate(models):
            xs = [i + (k - (len(models) - 1) / 2) * width for i in range(len(held))]
            ys = [node.metrics.get(m, float("nan")) for m in held]
            errs = [node.metrics.get(f"{m}_stderr", 0.0) for m in held]
            cx.bar(xs, ys, width=width * 0.95, yerr=errs, capsize=3, label=model_label(node))
            for x, y, e in zip(xs, ys, errs, strict=True):
                if not math.isnan(y):
                    cx.text(x + width * 0.25, y + e + 0.01, f"{y:.2f}±{e:.2f}", fontsize=6, ha="center", va="bottom")
        cx.set_xticks(range(len(held)), held, fontsize=8)
        cx.set_ylabel("accuracy (± standard error)")
        cx.set_ylim(0, 1.05)
        cx.legend(fontsize=7)
        cx.set_title("Held-out verifier metrics, model by model (generated answers, greedy)")
    else:
        cx.text(0.5, 0.5, "no held-out verifier metrics", ha="center")
        cx.axis("off")
    fig.tight_layout()
    _separate(fig, ax, labels_drawn)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _separate(fig: Any, ax: Any, texts: list[Any], *, step: float = 0.12, tries: int = 40) -> None:
    """Move edge labels up until none overlaps another (measured extents, not guesses)."""
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for text in texts:
        for _ in range(tries):
            box = text.get_window_extent(renderer).expanded(1.05, 1.15)
            if not any(box.overlaps(other) for other in placed):
                break
            x, y = text.get_position()
            text.set_position((x, y + step))
        placed.append(text.get_window_extent(renderer).expanded(1.05, 1.15))
