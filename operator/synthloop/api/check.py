"""`synthloop validate FILE...`: check CRs offline with the same rules the apiserver applies.

The schema and every CEL rule of the CRDs are enforced by the pydantic models too (one source,
two enforcers), so a spec can be checked before it reaches a cluster, e.g. in a CI job that
lints a GitOps repository. Needs only the base install (no torch, no cluster).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from synthloop.api.validate import SpecError, parse_resource


def documents(path: Path) -> list[dict[str, Any]]:
    """The CRs of a YAML file (a ``List`` is unpacked; empty documents are skipped)."""
    docs: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        docs.extend(doc.get("items") or [] if doc.get("kind") == "List" else [doc])
    return docs


def run(args: argparse.Namespace) -> int:
    bad = 0
    for name in args.files:
        path = Path(name)
        for doc in documents(path):
            label = f"{path}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            try:
                parse_resource(doc)
            except SpecError as exc:
                bad += 1
                print(f"{label}: invalid: {exc}", file=sys.stderr)
            else:
                print(f"{label}: valid")
    return 1 if bad else 0


def register(sub: Any) -> None:
    parser = sub.add_parser("validate", help="check CR files against the API (schema and CEL rules), offline")
    parser.add_argument("files", nargs="+", help="YAML files of synthloop CRs")
    parser.set_defaults(func=run)
