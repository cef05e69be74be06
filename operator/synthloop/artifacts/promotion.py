"""Promotion pointers: ``<namespace>/promoted/<name>.json`` names the model a passed gate promoted.

The pointer is what a later SynthRound's ``generator.model.promoted: <name>`` resolves to, so the
next round generates with exactly the model that passed (weak-to-strong lineage).

Namespaces are boundaries: each namespace has its own pointers, and ``promoted: <ns>/<name>``
from another namespace resolves only when the pointer lists that namespace in ``shared_with``
(copied from the producer's ``spec.promotion.shareWith``, i.e. granted by the producing team).
A pointer another run wrote is replaced only when the new run's gates passed and its spec says
``replace: true`` (:func:`may_replace`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from synthloop.artifacts.manifest import ManifestError
from synthloop.artifacts.store import ArtifactNotFound, ArtifactStore
from synthloop.artifacts.uris import promotion_uri


class PromotionPointer(BaseModel):
    name: str
    namespace: str = ""
    model_uri: str
    model_sha256: str = ""
    manifest_uri: str
    source: str  # "<namespace>/<Kind>/<name>/<uid>"
    metrics: dict[str, float] = {}
    promoted_at: str = ""
    shared_with: list[str] = Field(default_factory=list)

    def readable_by(self, namespace: str) -> bool:
        """Whether a CR in ``namespace`` may use this pointer."""
        return namespace == self.namespace or namespace in self.shared_with


@dataclass(frozen=True)
class Decision:
    """Whether a run may write its pointer, and why (the Promoted condition's message)."""

    write: bool
    reason: str


def may_replace(existing: PromotionPointer | None, new: PromotionPointer, *, gates_passed: bool,
                replace: bool) -> Decision:
    """The one rule for writing a pointer: free names and the run's own pointer are written;
    another run's pointer only when this run's gates passed and ``spec.promotion.replace``."""
    if existing is None:
        return Decision(True, "new")
    if existing.source == new.source:
        # The same run again (a later pass): keep its pointer unless shared_with changed.
        return Decision(existing.shared_with != new.shared_with, "own")
    if gates_passed and replace:
        return Decision(True, f"replaced the pointer of {existing.source}")
    why = ("spec.promotion.replace is not set" if gates_passed
           else "this run has no passed gates (a promotion replaces another run's only after its gates pass)")
    return Decision(False, f"{new.name} is already promoted by {existing.source}; not replaced: {why}")


def write_promotion(store: ArtifactStore, *, bucket: str, pointer: PromotionPointer) -> str:
    """Write the pointer under its own namespace (``pointer.namespace``)."""
    uri = promotion_uri(bucket=bucket, namespace=pointer.namespace, name=pointer.name)
    store.put_bytes(uri, pointer.model_dump_json(indent=2).encode())
    return uri


def read_promotion(store: ArtifactStore, *, bucket: str, namespace: str, name: str) -> PromotionPointer | None:
    """Namespace ``namespace``'s pointer for ``name``, or None when it promoted nothing under it yet."""
    uri = promotion_uri(bucket=bucket, namespace=namespace, name=name)
    try:
        raw = store.get_bytes(uri)
    except ArtifactNotFound:
        return None
    try:
        pointer = PromotionPointer.model_validate_json(raw)
    except ValueError as exc:
        raise ManifestError(f"{uri}: malformed promotion pointer: {exc}") from exc
    if not pointer.namespace:
        pointer = pointer.model_copy(update={"namespace": namespace})
    return pointer


def split_reference(ref: str, *, namespace: str) -> tuple[str, str]:
    """``promoted: <name>`` or ``<namespace>/<name>`` -> (namespace, name)."""
    ns, sep, name = ref.partition("/")
    return (ns, name) if sep else (namespace, ref)
