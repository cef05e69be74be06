"""Generate the CRDs in ``crds/`` from the pydantic models (the single schema source).

pydantic emits JSON Schema 2020-12; the apiserver wants a *structural* OpenAPI v3 schema:
no ``$ref``, no ``anyOf`` for optionals, no ``additionalProperties`` beside ``properties``,
``exclusiveMinimum`` as a boolean. This module does exactly that translation, then adds
the CRD envelope: status subresource, printer columns, short names, category.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from synthloop.api.v1alpha1 import GROUP, PLURALS, RESOURCES, SHORT_NAMES, VERSION

DROP_KEYS = {"title", "$defs", "discriminator"}
#: A run is immutable once started, like a Job's pod template: the outputs must be those of the
#: spec the object shows. A transition rule (oldSelf), so create is never affected; status
#: writes go through the status subresource and leave spec as it was.
IMMUTABLE_RUN = {
    "rule": "!has(oldSelf.status) || !has(oldSelf.status.startedAt) || self.spec == oldSelf.spec",
    "message": "spec is immutable once the run has started (status.startedAt is set). To run a changed "
    "spec, apply it under a new metadata.name, or delete this object and create it again (its artifacts "
    "stay in the store unless keepArtifacts is false). To retry a Failed run as it is, keeping its "
    "artifacts: kubectl annotate <kind> <name> --overwrite synthloop.io/retry=<new value>",
}
PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stage", "type": "string", "jsonPath": ".status.stage"},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
    {"name": "Metric", "type": "string", "jsonPath": ".status.keyMetric"},
    {"name": "Promoted", "type": "string", "jsonPath": ".status.promotedAs"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


class _Structural:
    """Rewrites one pydantic JSON schema into a structural schema."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = root.get("$defs", {})

    def convert(self, node: dict[str, Any]) -> dict[str, Any]:
        node = copy.deepcopy(node)
        if "$ref" in node:  # inline the definition; sibling keys (description) win
            target = self.defs[node.pop("$ref").split("/")[-1]]
            node = {**copy.deepcopy(target), **node}
        if "anyOf" in node:  # Optional[X] -> X (absence is the null)
            options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
            if len(options) != 1:
                raise ValueError(f"cannot express a union of {len(options)} types structurally")
            inner = self.convert(options[0])
            node = {**inner, **{k: v for k, v in node.items() if k != "default" or v is not None}}
            if node.get("default", 0) is None:
                node.pop("default")
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in DROP_KEYS:
                continue
            if key == "properties":
                out[key] = {k: self.convert(v) for k, v in value.items()}
            elif key == "items":
                out[key] = self.convert(value)
            elif key == "additionalProperties":
                if isinstance(value, dict):
                    out[key] = self.convert(value) if value else {"x-kubernetes-preserve-unknown-fields": True}
            elif key == "const":
                out["enum"] = [value]
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
                out[key] = value  # already converted (an Optional's inner schema is converted twice)
            elif key in ("exclusiveMinimum", "exclusiveMaximum"):
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                out[bound] = value
                out[key] = True
            else:
                out[key] = value
        if "enum" in out and "type" not in out:
            out["type"] = "string"
        if "properties" in out:
            out["type"] = "object"
        if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
            out["x-kubernetes-preserve-unknown-fields"] = True
        if out.get("default") == {} or out.get("default") == []:
            out.pop("default")
        return out


def _schema_for(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    conv = _Structural(raw)
    props = raw["properties"]
    return {
        "type": "object",
        "description": (model.__doc__ or "").strip(),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": f"{GROUP}/{VERSION}"},
            "kind": {"type": "string", "description": "The kind of this object."},
            # the apiserver allows nothing but the type on metadata (no description)
            "metadata": {"type": "object"},
            "spec": conv.convert(props["spec"]),
            "status": conv.convert(props["status"]),
        },
        "x-kubernetes-validations": [IMMUTABLE_RUN],
    }


def crd_for(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    plural = PLURALS[kind]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": SHORT_NAMES[kind],
                "categories": ["synthloop"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": _schema_for(RESOURCES[kind])},
                }
            ],
        },
    }


def render_all() -> dict[str, str]:
    """File name -> YAML text for every CRD, plus the kustomization that lists them."""
    header = "# Generated by `synthloop crds` from operator/synthloop/api. Do not edit.\n"
    files = {
        f"{GROUP}_{PLURALS[kind]}.yaml": header + yaml.safe_dump(crd_for(kind), sort_keys=False, width=100)
        for kind in RESOURCES
    }
    files["kustomization.yaml"] = header + yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
         "resources": sorted(n for n in files)},
        sort_keys=False,
    )
    return files


def write_or_check(out_dir: Path, *, check: bool) -> list[str]:
    """Write the CRDs, or (check) return a diff for every file that differs from what is rendered."""
    problems: list[str] = []
    for name, text in render_all().items():
        path = out_dir / name
        if check:
            current = path.read_text() if path.exists() else ""
            if current != text:
                diff = difflib.unified_diff(
                    current.splitlines(), text.splitlines(), f"{path} (checked in)", f"{path} (generated)",
                    lineterm="", n=1,
                )
                problems.append("\n".join(list(diff)[:40]))
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check:
        expected = set(render_all())
        extra = sorted(p.name for p in out_dir.glob("*.yaml") if p.name not in expected)
        problems += [f"{out_dir / name}: not generated by synthloop crds" for name in extra]
    return problems


def _run(args: argparse.Namespace) -> int:
    problems = write_or_check(Path(args.out), check=args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("CRDs are out of date: run `make crds` (synthloop crds) and commit.", file=sys.stderr)
        return 1
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser("crds", help="generate crds/ from the pydantic models")
    parser.add_argument("--out", default="crds", help="output directory (default: crds)")
    parser.add_argument("--check", action="store_true", help="fail if the files differ")
    parser.set_defaults(func=_run)
