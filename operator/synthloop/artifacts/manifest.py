"""Run manifests: the single object that says a run finished, and what it produced.

A worker writes ``manifest.json`` as the very last object of a run, after every output it lists.
So an existing manifest whose checksums verify means the run finished; anything else (a pod that
died half-way, a KWOK pod that never ran) means it did not. The operator trusts nothing else.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from synthloop.artifacts.store import ArtifactNotFound, ArtifactStore, ObjectInfo
from synthloop.artifacts.uris import join

MANIFEST_NAME = "manifest.json"


class ManifestError(RuntimeError):
    """A manifest is missing, malformed, or does not match the objects it lists."""


class ArtifactRef(BaseModel):
    """An input or output of a run, pinned by content."""

    uri: str
    sha256: str = ""
    size: int = 0
    role: str = ""

    @classmethod
    def of(cls, info: ObjectInfo, *, role: str = "") -> ArtifactRef:
        return cls(uri=info.uri, sha256=info.sha256, size=info.size, role=role)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Manifest(BaseModel):
    """What a run consumed and produced; written last, verified by the operator."""

    task: str
    namespace: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    inputs: list[ArtifactRef] = Field(default_factory=list)
    outputs: list[ArtifactRef] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    counts: dict[str, int] = Field(default_factory=dict)
    spec_hash: str = ""
    image: str = ""
    created_at: str = Field(default_factory=_now)
    extra: dict[str, Any] = Field(default_factory=dict)

    def output(self, role: str) -> ArtifactRef:
        """The output with ``role``; raises ManifestError naming the roles there are."""
        for ref in self.outputs:
            if ref.role == role:
                return ref
        roles = sorted({r.role for r in self.outputs})
        raise ManifestError(f"manifest of {self.task} has no output with role {role!r} (has {roles})")


def write_manifest(store: ArtifactStore, prefix_uri: str, manifest: Manifest) -> ObjectInfo:
    """Write ``<prefix>/manifest.json``. Call it only after every listed output was written."""
    return store.put_bytes(
        join(prefix_uri, MANIFEST_NAME), manifest.model_dump_json(indent=2).encode()
    )


def read_manifest(store: ArtifactStore, prefix_uri: str) -> Manifest:
    uri = join(prefix_uri, MANIFEST_NAME)
    try:
        raw = store.get_bytes(uri)
    except ArtifactNotFound as exc:
        raise ManifestError(f"{uri}: no manifest (the run has not finished)") from exc
    try:
        return Manifest.model_validate_json(raw)
    except ValueError as exc:
        raise ManifestError(f"{uri}: malformed manifest: {exc}") from exc


def verify_outputs(store: ArtifactStore, manifest: Manifest, *, check_sha256: bool = True,
                   download: bool = False) -> None:
    """Check that every output exists with the listed size and the sha256 recorded at upload.

    One HEAD request per output: the sha256 compared is the one the worker stored with the
    object (its metadata), so a replaced or truncated object is caught without its bytes.
    Bytes flipped in place under intact metadata are caught only by reading them: by the
    consumer that downloads them anyway (it is given the expected sha256), or ``download``.
    """
    for ref in manifest.outputs:
        try:
            head = store.head(ref.uri)
        except ArtifactNotFound as exc:
            raise ManifestError(f"output {ref.uri} listed in the manifest is missing") from exc
        if head.size != ref.size:
            raise ManifestError(
                f"output {ref.uri}: size {head.size} does not match the manifest's {ref.size}"
            )
        if not (check_sha256 and ref.sha256):
            continue
        if head.sha256 != ref.sha256:
            recorded = f"sha256 {head.sha256[:16]}..." if head.sha256 else "no sha256"
            raise ManifestError(
                f"output {ref.uri}: the object carries {recorded}, the manifest lists {ref.sha256[:16]}... "
                "(sha256 does not match: rewritten after its run finished)"
            )
        if download and store.sha256(ref.uri) != ref.sha256:
            raise ManifestError(f"output {ref.uri}: content sha256 does not match the manifest")


def verify_manifest(
    store: ArtifactStore, prefix_uri: str, *, check_sha256: bool = True, download: bool = False
) -> Manifest:
    """Read a manifest and check its outputs (:func:`verify_outputs`: HEAD requests only,
    unless ``download``)."""
    manifest = read_manifest(store, prefix_uri)
    verify_outputs(store, manifest, check_sha256=check_sha256, download=download)
    return manifest


def report_progress(
    store: ArtifactStore,
    prefix_uri: str,
    *,
    task: str,
    index: int,
    done: int,
    total: int,
    **extra: Any,
) -> bool:
    """Publish ``<prefix>/progress/<task>-<index>.json`` so the operator can show progress.

    Best effort: a report that cannot be written (the store down past its retries) is logged
    and skipped, never raised; the next report or the manifest carries the state. Returns
    whether it was written.
    """
    body = {"task": task, "index": index, "done": done, "total": total, "updated": _now(), **extra}
    try:
        store.put_bytes(
            join(prefix_uri, "progress", f"{task}-{index}.json"),
            json.dumps(body, sort_keys=True).encode(),
        )
    except Exception as exc:  # noqa: BLE001 - progress is advisory; the work must go on
        print(json.dumps({"event": "progress-skipped", "task": task, "index": index, "done": done,
                          "error": f"{type(exc).__name__}: {exc}"}), file=sys.stderr, flush=True)
        return False
    return True
