"""The report's picture: the lineage graph and the gated metrics per model, as one PNG."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from synthloop.report.model import LoopReport

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
    fig, (ax, bx) = plt.subplots(
        2, 1, figsize=(max(8.0, 3.2 * len(columns) + 2), 3 + 1.6 * height + 3.5),
        gridspec_kw={"height_ratios": [1.6 * height + 1, 3.5]},
    )
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
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + lift, label, fontsize=6, ha="center", color="#333")
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

    labels, values, colors, parents = [], [], [], []
    for node in gated:
        for gate in node.gates:
            if gate.value is not None:
                labels.append(f"{node.name}\n{gate.metric}")
                values.append(gate.value)
                colors.append({True: "#2e7d32", False: "#c62828"}.get(gate.passed, "#90a4ae"))
                parents.append(node.metrics.get(f"parent.{gate.metric}"))
    if values:
        bx.bar(range(len(values)), values, color=colors)
        for i, parent in enumerate(parents):
            if parent is not None:
                bx.hlines(parent, i - 0.4, i + 0.4, colors="black", linestyles="dashed")
                bx.text(i + 0.42, parent, "parent", fontsize=7, va="center")
        bx.set_xticks(range(len(values)), labels, fontsize=7)
        bx.set_ylabel("metric value")
        bx.set_title("Gated metrics (green: gate passed, red: failed, grey: not known)")
    else:
        bx.text(0.5, 0.5, "no gated metrics yet", ha="center")
        bx.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
