"""Inputs: ``fromRef`` / ``promoted`` / ``uri`` sources resolved to artifact URIs, or a reason to wait.

Resolution is a function of what the cluster and the store hold now (level-triggered): a
producer that has not succeeded, a promotion not written yet, or an artifact not uploaded yet
makes the consumer wait with a message naming exactly that; a reference that can never
resolve (a missing object past the grace period, a cycle) is a permanent failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from synthloop import catalog
from synthloop.api.v1alpha1.common import Source
from synthloop.artifacts.promotion import PromotionPointer
from synthloop.artifacts.uris import join
from synthloop.controllers import reasons as R

SUCCEEDED_PHASES = frozenset({"Succeeded", "Promoted"})
# Roles whose producer output is the model directory.
MODEL_ROLES = frozenset({"model", "reward_model", "tokenizer", "baseline_model", "parent"})


class Lookup(Protocol):
    """Read access to the synthloop objects of one namespace."""

    def get(self, kind: str, name: str) -> dict[str, Any] | None: ...

    def list(self, kind: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Resolved:
    role: str
    uri: str
    sha256: str = ""
    size: int = 0
    source: str = ""  # human-readable: "SynthRound round-1", "promoted interm-1", "uri"
    metrics: dict[str, float] | None = None  # known metrics of a model (promotion pointer, producer status)
    extra: dict[str, str] = field(default_factory=dict)  # more roles, e.g. sft/preference of a data input
    checksums: dict[str, str] = field(default_factory=dict)  # sha256 of the extra roles' objects, by URI


@dataclass(frozen=True)
class Waiting:
    reason: str
    message: str


@dataclass(frozen=True)
class Invalid:
    reason: str
    message: str


Resolution = Resolved | Waiting | Invalid


def iter_refs(node: Any) -> Iterator[tuple[str, str]]:
    """Every ``fromRef`` (kind, name) anywhere in a spec dict (inputs, gate baselines, parent)."""
    if isinstance(node, dict):
        ref = node.get("fromRef")
        if isinstance(ref, dict) and "kind" in ref and "name" in ref:
            yield str(ref["kind"]), str(ref["name"])
        for value in node.values():
            yield from iter_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from iter_refs(value)


def find_cycle(kind: str, name: str, spec: dict[str, Any], lookup: Lookup) -> list[str] | None:
    """The reference path that leads back to ``kind/name``, or None.

    Only objects that exist are followed: a missing one cannot be part of a cycle yet.
    """
    start = (kind, name)
    stack: list[tuple[tuple[str, str], list[str]]] = [
        (ref, [f"{kind}/{name}"]) for ref in iter_refs(spec)
    ]
    seen: set[tuple[str, str]] = set()
    while stack:
        node, path = stack.pop()
        path = [*path, f"{node[0]}/{node[1]}"]
        if node == start:
            return path
        if node in seen:
            continue
        seen.add(node)
        body = lookup.get(*node)
        if body is None:
            continue
        stack.extend((ref, path) for ref in iter_refs(body.get("spec") or {}))
    return None


def _outputs(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    status = body.get("status") or {}
    return {str(o.get("name")): o for o in status.get("outputs") or [] if isinstance(o, dict)}


def _promoter(lookup: Lookup, name: str) -> str:
    """Who is expected to promote ``name`` and how it stands, for the waiting message."""
    for kind in (*catalog.MODEL_PRODUCERS, *catalog.REWARD_PRODUCERS):  # the kinds with spec.promotion
        for body in lookup.list(kind):
            promo = ((body.get("spec") or {}).get("promotion") or {}).get("name")
            if promo == name:
                status = body.get("status") or {}
                phase = status.get("phase") or "Pending"
                meta = body.get("metadata") or {}
                detail = f"{kind} {meta.get('name')} is {phase}"
                for cond in status.get("conditions") or []:
                    if cond.get("type") == "Promoted" and cond.get("status") == "False" and cond.get("message"):
                        detail += f": {cond['message']}"
                return f" ({detail})"
    return " (no object here promotes it yet)"


def resolve_source(
    source: Source,
    *,
    role: str,
    lookup: Lookup,
    promotion: Callable[[str], PromotionPointer | None],
    exists: Callable[[str], bool],
    allow_missing_ref: bool,
) -> Resolution:
    """Resolve one input. ``allow_missing_ref``: a missing producer is waited for (grace period
    after creation, so objects applied together in any order work), else it is an error."""
    if source.uri is not None:
        uri = source.uri
        if not exists(uri):
            return Waiting(R.WAITING_FOR_ARTIFACT, f"waiting for artifact {uri} ({role}) to exist")
        extra = {}
        if role == "data" and uri.endswith("/"):
            extra = {"sft": join(uri, "sft.jsonl"), "preference": join(uri, "preference.jsonl")}
        return Resolved(role=role, uri=uri, source="uri", extra=extra)
    if source.promoted is not None:
        pointer = promotion(source.promoted)
        if pointer is None:
            return Waiting(
                R.WAITING_FOR_PROMOTION,
                f"waiting for promotion {source.promoted}{_promoter(lookup, source.promoted)}",
            )
        return Resolved(role=role, uri=pointer.model_uri, sha256=pointer.model_sha256,
                        source=f"promoted {source.promoted}", metrics=dict(pointer.metrics))
    ref = source.from_ref
    assert ref is not None  # the CEL rule guarantees exactly one of the three
    body = lookup.get(ref.kind, ref.name)
    if body is None:
        if allow_missing_ref:
            return Waiting(R.WAITING_FOR_PRODUCER, f"waiting for {ref.kind} {ref.name} to exist")
        return Invalid(R.REF_NOT_FOUND, f"{role}: {ref.kind} {ref.name} does not exist in this namespace")
    status = body.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase not in SUCCEEDED_PHASES:
        return Waiting(R.WAITING_FOR_PRODUCER, f"waiting for {ref.kind} {ref.name} to succeed (it is {phase})")
    outputs = _outputs(body)
    want = "model" if role in MODEL_ROLES else ("data" if "data" in outputs else role)
    out = outputs.get(want)
    if out is None:
        return Waiting(
            R.WAITING_FOR_PRODUCER,
            f"waiting for {ref.kind} {ref.name} to list output {want!r} (has {', '.join(sorted(outputs)) or 'none'})",
        )
    extra = {r: str(outputs[r]["uri"]) for r in ("sft", "preference") if role == "data" and r in outputs}
    checksums = {str(outputs[r]["uri"]): str(outputs[r].get("sha256") or "") for r in extra}
    metrics = {str(k): float(v) for k, v in (status.get("metrics") or {}).items()}
    return Resolved(role=role, uri=str(out["uri"]), sha256=str(out.get("sha256", "")),
                    size=int(out.get("size", 0)), source=f"{ref.kind} {ref.name}",
                    metrics=metrics or None, extra=extra, checksums=checksums)
