"""What the report shows, gathered from CR objects (plain dicts, as the apiserver returns them).

Kept free of I/O so it is tested on dicts and used on live objects alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ORDER = {"PretrainJob": 0, "RewardTrain": 1, "SynthRound": 2, "AlignJob": 3}
SOURCE_FIELDS = ("baseModel", "data", "rewardModel", "parent", "preferenceData")
#: spec field -> the worker input role its artifact is recorded under in status.inputs
ROLE_OF = {"baseModel": "model", "generator": "model", "rewardModel": "reward_model",
           "data": "data", "preferenceData": "preference", "parent": "baseline_model"}


@dataclass
class Edge:
    """``source`` fed ``target`` as ``role``; ``sha256`` pins the artifact when known."""

    source: str
    target: str
    role: str
    sha256: str = ""


@dataclass
class Gate:
    metric: str
    rule: str
    value: float | None
    passed: bool | None
    #: The number the value must reach (min, baseline - maxRegression, or the parent's), if known.
    bound: float | None = None


@dataclass
class Node:
    key: str  # "Kind/name"
    kind: str
    name: str
    phase: str
    promoted_as: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    gates: list[Gate] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    gpu_hours: float = 0.0
    wall_seconds: float | None = None
    message: str = ""
    depth: int = 0


@dataclass
class LoopReport:
    namespace: str
    nodes: dict[str, Node]
    edges: list[Edge]
    promotions: dict[str, str]  # promotion name -> node key


def _sources(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(f, spec[f]) for f in SOURCE_FIELDS if isinstance(spec.get(f), dict)]
    model = (spec.get("generator") or {}).get("model")
    if isinstance(model, dict):
        found.append(("generator", model))
    found += [(f"gate:{g.get('metric')}", g["baseline"]) for g in (spec.get("evaluation") or {}).get("gates", [])
              if isinstance(g.get("baseline"), dict)]
    return found


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    try:
        return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds()
    except ValueError:
        return None


def _gates(spec: dict[str, Any], metrics: dict[str, float], conditions: list[dict[str, Any]],
           baseline_metrics: Any = None) -> list[Gate]:
    """``baseline_metrics(source) -> metrics | None`` resolves a maxRegression gate's baseline, and
    a mustBeatParent gate's parent (``spec.parent``, else ``spec.baseModel``) when the status has
    no ``parent.<metric>`` (the operator reuses a parent's known metrics without recording them)."""
    out = []
    for gate in (spec.get("evaluation") or {}).get("gates", []):
        metric = gate["metric"]
        value = metrics.get(metric)
        bound: float | None = None
        if "min" in gate:
            bound = float(gate["min"])
            rule = f">= {gate['min']}"
            passed = None if value is None else value >= bound
        elif gate.get("mustBeatParent"):
            parent = metrics.get(f"parent.{metric}")
            if parent is None and baseline_metrics:  # the parent's own status (its eval ran before)
                source = spec.get("parent") or spec.get("baseModel") or {}
                parent = (baseline_metrics(source) or {}).get(metric)
            bound = parent
            rule = "> parent" + (f" ({parent:.3f})" if parent is not None else "")
            passed = None if value is None or parent is None else value > parent
        else:
            base = (baseline_metrics(gate.get("baseline") or {}) or {}) if baseline_metrics else {}
            reg = float(gate.get("maxRegression") or 0.0)
            if metric in base:
                bound = float(base[metric]) - reg
                rule = f">= baseline {base[metric]:.3f} - {reg:g}"
                passed = None if value is None else value >= bound - 1e-12
            else:
                rule = f"regression <= {gate.get('maxRegression')}"
                passed = None
        out.append(Gate(metric=metric, rule=rule, value=value, passed=passed, bound=bound))
    promoted = next((c for c in conditions if c.get("type") == "Promoted"), None)
    if promoted is not None and promoted.get("status") == "True":
        for g in out:  # promotion means every gate passed, including ones we cannot recompute
            g.passed = True if g.passed is None else g.passed
    elif promoted is not None and out and all(g.passed is None for g in out):
        for g in out:
            g.passed = False
    return out


def build_report(namespace: str, objects: list[dict[str, Any]]) -> LoopReport:
    """Turn the namespace's synthloop objects into nodes and lineage edges."""
    nodes: dict[str, Node] = {}
    promotions: dict[str, str] = {}
    metrics_by_source: dict[str, dict[str, float]] = {}

    def baseline_metrics(src: dict[str, Any]) -> dict[str, float] | None:
        if "fromRef" in src:
            return metrics_by_source.get(f"{src['fromRef']['kind']}/{src['fromRef']['name']}")
        if "promoted" in src:
            return metrics_by_source.get(f"promoted:{src['promoted']}")
        return None

    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        status = obj.get("status") or {}
        key = f"{kind}/{name}"
        conditions = status.get("conditions") or []
        failed = next((c for c in conditions if c.get("type") in ("Failed", "Promoted") and c.get("status") != "True"
                       and c.get("message")), None)
        metrics = {k: float(v) for k, v in (status.get("metrics") or {}).items()}
        if promoted_as := status.get("promotedAs"):
            metrics_by_source[f"promoted:{promoted_as}"] = metrics
        metrics_by_source[key] = metrics
        nodes[key] = Node(
            key=key, kind=kind, name=name, phase=status.get("phase") or "Pending",
            promoted_as=status.get("promotedAs") or "", metrics=metrics,
            counts={k: int(v) for k, v in (status.get("counts") or {}).items()},
            gates=[], outputs=list(status.get("outputs") or []),
            gpu_hours=float(status.get("gpuHours") or 0.0),
            wall_seconds=_seconds(status.get("startedAt"), status.get("finishedAt")),
            message=(failed or {}).get("message", ""),
        )
        if status.get("promotedAs"):
            promotions[status["promotedAs"]] = key
    for obj in objects:  # gates last: a baseline may be listed after the run it gates
        node = nodes[f"{obj['kind']}/{obj['metadata']['name']}"]
        node.gates = _gates(obj.get("spec") or {}, node.metrics, (obj.get("status") or {}).get("conditions") or [],
                            baseline_metrics)
    inputs_by_node = {
        f"{o['kind']}/{o['metadata']['name']}": {i.get("name"): i for i in (o.get("status") or {}).get("inputs") or []}
        for o in objects
    }
    edges: list[Edge] = []
    for obj in objects:
        target = f"{obj['kind']}/{obj['metadata']['name']}"
        for role, src in _sources(obj.get("spec") or {}):
            if "fromRef" in src:
                source = f"{src['fromRef']['kind']}/{src['fromRef']['name']}"
            elif "promoted" in src:
                source = promotions.get(src["promoted"], f"promoted:{src['promoted']}")
            else:
                source = str(src.get("uri"))
            recorded = inputs_by_node[target].get(ROLE_OF.get(role, role)) or {}
            sha = recorded.get("sha256", "")
            edges.append(Edge(source=source, target=target, role=role, sha256=sha))
    _assign_depths(nodes, edges)
    return LoopReport(namespace=namespace, nodes=nodes, edges=edges, promotions=promotions)


def _assign_depths(nodes: dict[str, Node], edges: list[Edge]) -> None:
    """Longest-path layering so producers sit left of consumers in the lineage picture."""
    for _ in range(len(nodes) + 1):
        changed = False
        for e in edges:
            if e.source in nodes and e.target in nodes and not e.role.startswith("gate:"):
                want = nodes[e.source].depth + 1
                if nodes[e.target].depth < want:
                    nodes[e.target].depth, changed = want, True
        if not changed:
            break


def held_out(report: LoopReport, *, prefix: str = "gen.") -> tuple[list[Node], list[str]]:
    """The models that report held-out verifier metrics (``gen.<task>.acc`` with ``_stderr``),
    in lineage order, and those metric names: what the side-by-side picture and table show."""
    models = sorted((n for n in report.nodes.values()
                     if n.kind in ("PretrainJob", "AlignJob") and any(k.startswith(prefix) for k in n.metrics)),
                    key=lambda n: (n.depth, n.name))
    names = sorted({k for n in models for k in n.metrics
                    if k.startswith(prefix) and not k.endswith("_stderr")})
    return models, names


def model_label(node: Node) -> str:
    """``base``, ``interm-1 (align-1)``: the promotion name first, for the held-out picture."""
    return f"{node.promoted_as} ({node.name})" if node.promoted_as else node.name
