"""The self-contained HTML report (the PNG is embedded; no external assets)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from synthloop.report.model import LoopReport, held_out, model_label

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}
th{background:#f0f0f0}.pass{color:#2e7d32;font-weight:bold}.fail{color:#c62828;font-weight:bold}
code{font-size:12px}img{max-width:100%;border:1px solid #ddd}
"""
#: (manifest count, column heading) of the synthetic-data table: the synth merge's manifest counts.
DATA_COUNTS = (("prompts", "prompts"), ("generated", "generated"), ("sft_accepted", "accepted (SFT)"),
               ("preference_accepted", "accepted (preference)"), ("sft_rows", "SFT rows"),
               ("preference_rows", "preference pairs"), ("parse_failures", "parse failures"),
               ("filtered_by_reward", "filtered by reward"), ("duplicates", "duplicates"))


def _e(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def render_html(report: LoopReport, *, png: Path | None = None) -> str:
    nodes = sorted(report.nodes.values(), key=lambda n: (n.depth, n.kind, n.name))
    parts = [(f"<!doctype html><html><head><meta charset='utf-8'><title>synthloop report: {_e(report.namespace)}"
             f"</title><style>{STYLE}</style></head><body>"),
             (f"<h1>synthloop loop report</h1><p>Namespace <code>{_e(report.namespace)}</code>: "
             f"{len(nodes)} runs, promotions: {_e(', '.join(sorted(report.promotions)) or 'none')}.</p>")]
    if png is not None and png.exists():
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(f"<img alt='lineage and metrics' src='data:image/png;base64,{data}'>")

    parts.append("<h2>Lineage</h2><table><tr><th>consumer</th><th>role</th><th>producer / artifact</th>"
                 "<th>sha256</th></tr>")
    for e in sorted(report.edges, key=lambda e: (e.target, e.role)):
        parts.append(f"<tr><td>{_e(e.target)}</td><td>{_e(e.role)}</td><td>{_e(e.source)}</td>"
                     f"<td><code>{_e(e.sha256[:16])}</code></td></tr>")
    parts.append("</table>")

    parts.append("<h2>Metrics against gates</h2><table><tr><th>run</th><th>phase</th><th>metric</th>"
                 "<th>value</th><th>gate</th><th>result</th></tr>")
    for n in nodes:
        for g in n.gates:
            verdict = {True: "<span class='pass'>pass</span>", False: "<span class='fail'>fail</span>",
                       None: "—"}[g.passed]
            parts.append(f"<tr><td>{_e(n.key)}</td><td>{_e(n.phase)}</td><td>{_e(g.metric)}</td>"
                         f"<td>{_fmt(g.value)}</td><td>{_e(g.rule)}</td><td>{verdict}</td></tr>")
    parts.append("</table>")
    rejected = [n for n in nodes if n.message]
    for n in rejected:
        parts.append(f"<p><b>{_e(n.key)}</b>: {_e(n.message)}</p>")

    parts.append("<h2>All metrics</h2><table><tr><th>run</th><th>metric</th><th>value</th></tr>")
    for n in nodes:
        for name, value in sorted(n.metrics.items()):
            parts.append(f"<tr><td>{_e(n.key)}</td><td>{_e(name)}</td><td>{_fmt(value)}</td></tr>")
    parts.append("</table>")

    models, held = held_out(report)
    if models and held:
        parts.append("<h2>Held-out verifier metrics</h2><p>Greedy answers to held-out problems, scored by "
                     "the verifiers (value ± standard error, n problems).</p><table><tr><th>metric</th>"
                     + "".join(f"<th>{_e(model_label(m))}</th>" for m in models) + "</tr>")
        for name in held:
            cells = []
            for m in models:
                value, err = m.metrics.get(name), m.metrics.get(f"{name}_stderr")
                n = m.counts.get(name)
                cells.append("—" if value is None else f"{value:.3f} ± {err or 0.0:.3f}" + (f" (n={n})" if n else ""))
            parts.append(f"<tr><td>{_e(name)}</td>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
        parts.append("</table>")

    synth = [n for n in nodes if n.kind == "SynthRound"]
    parts.append("<h2>Synthetic data</h2><p>Per round, from the merge's manifest.</p><table><tr><th>round</th>"
                 + "".join(f"<th>{_e(label)}</th>" for _, label in DATA_COUNTS) + "<th>acceptance rate</th></tr>")
    for n in synth:
        rate = n.metrics.get("acceptance_rate")
        if rate is None and n.counts.get("generated"):
            rate = n.counts.get("sft_accepted", 0) / n.counts["generated"]
        parts.append(f"<tr><td>{_e(n.name)}</td>" + "".join(f"<td>{n.counts.get(c, '—')}</td>" for c, _ in DATA_COUNTS)
                     + f"<td>{_fmt(rate)}</td></tr>")
    parts.append("</table>")

    parts.append("<h2>Cost</h2><table><tr><th>run</th><th>phase</th><th>GPU-hours</th><th>wall time (s)</th>"
                 "<th>outputs</th></tr>")
    for n in nodes:
        outs = "<br>".join(f"<code>{_e(o.get('name', ''))}: {_e(str(o.get('sha256', ''))[:12])}</code>"
                           for o in n.outputs)
        parts.append(f"<tr><td>{_e(n.key)}</td><td>{_e(n.phase)}</td><td>{n.gpu_hours:.4f}</td>"
                     f"<td>{_fmt(n.wall_seconds)}</td><td>{outs}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
