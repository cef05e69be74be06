"""`synthloop report`: read the CRs of a namespace and write ``index.html`` + ``loop.png``."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from synthloop.api.v1alpha1 import GROUP, PLURALS
from synthloop.report.html import render_html
from synthloop.report.model import LoopReport, build_report
from synthloop.report.plot import render_png


def fetch_objects(
    namespace: str, *, kubectl: str = "kubectl", env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """All synthloop objects of a namespace, through kubectl (so any kubeconfig works)."""
    kinds = ",".join(f"{plural}.{GROUP}" for plural in PLURALS.values())
    proc = subprocess.run([kubectl, "get", kinds, "-n", namespace, "-o", "json"],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl get {kinds} -n {namespace}: {proc.stderr.strip()}")
    out = proc.stdout
    return list(json.loads(out).get("items", []))


def write_report(report: LoopReport, out_dir: Path) -> Path:
    png = render_png(report, out_dir / "loop.png")
    index = out_dir / "index.html"
    index.write_text(render_html(report, png=png))
    return index


def _run(args: argparse.Namespace) -> int:
    report = build_report(args.namespace, fetch_objects(args.namespace))
    index = write_report(report, Path(args.out))
    print(f"report written to {index}")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("report", help="write an HTML report of the loop in a namespace")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("--out", default="report", help="output directory (default: report)")
    parser.set_defaults(func=_run)
