"""Promotion pointers: ``promoted/<name>.json`` names the model a passed gate promoted.

The pointer is what a later SynthRound's ``generator.model.promoted: <name>`` resolves to, so the
next round generates with exactly the model that passed (weak-to-strong lineage).
"""

from __future__ import annotations

from pydantic import BaseModel

from synthloop.artifacts.manifest import ManifestError
from synthloop.artifacts.store import ArtifactNotFound, ArtifactStore
from synthloop.artifacts.uris import promotion_uri


class PromotionPointer(BaseModel):
    name: str
    model_uri: str
    model_sha256: str = ""
    manifest_uri: str
    source: str  # "<namespace>/<Kind>/<name>/<uid>"
    metrics: dict[str, float] = {}
    promoted_at: str = ""


def write_promotion(store: ArtifactStore, *, bucket: str, pointer: PromotionPointer) -> str:
    uri = promotion_uri(bucket=bucket, name=pointer.name)
    store.put_bytes(uri, pointer.model_dump_json(indent=2).encode())
    return uri


def read_promotion(store: ArtifactStore, *, bucket: str, name: str) -> PromotionPointer | None:
    """The pointer for ``name``, or None when nothing was promoted under that name yet."""
    uri = promotion_uri(bucket=bucket, name=name)
    try:
        raw = store.get_bytes(uri)
    except ArtifactNotFound:
        return None
    try:
        return PromotionPointer.model_validate_json(raw)
    except ValueError as exc:
        raise ManifestError(f"{uri}: malformed promotion pointer: {exc}") from exc
