"""Checkpoints in the artifact store: ``<output>/checkpoints/step-<N>/`` with a manifest last.

A checkpoint counts only when its manifest exists and its files match it, so a pod killed while
uploading leaves a directory that resume ignores. Resume takes the highest complete step (or
the one ``config.resume_from`` names, which must be complete).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthloop.artifacts.manifest import (
    ArtifactRef,
    Manifest,
    ManifestError,
    read_manifest,
    verify_manifest,
    write_manifest,
)
from synthloop.artifacts.store import ArtifactStore, ObjectInfo
from synthloop.artifacts.uris import join

_STEP = re.compile(r"/checkpoints/step-(\d+)/manifest\.json$")


class CheckpointError(RuntimeError):
    """A checkpoint that was asked for is missing or incomplete."""


class Checkpoints:
    def __init__(self, store: ArtifactStore, output: str, *, task: str) -> None:
        self.store, self.output, self.task = store, output, task

    def uri(self, step: int) -> str:
        return join(self.output, "checkpoints", f"step-{step}") + "/"

    def save(self, step: int, local_dir: Path, *, state: dict[str, Any]) -> str:
        """Upload ``local_dir`` as checkpoint ``step`` and write its manifest last."""
        infos = self.store.upload_dir(local_dir, self.uri(step))
        return self.finalize(step, state=state, known=infos)

    def finalize(
        self, step: int, *, state: dict[str, Any], known: Sequence[ObjectInfo] = ()
    ) -> str:
        """Write the manifest over everything already uploaded under the checkpoint (several
        ranks may have uploaded parts); sizes from the store, so a torn upload cannot verify."""
        uri = self.uri(step)
        digests = {i.uri: i.sha256 for i in known}
        refs = [ArtifactRef(uri=u, size=self.store.size(u), sha256=digests.get(u, ""), role="checkpoint")
                for u in self.store.list(uri) if not u.endswith("/manifest.json")]
        write_manifest(self.store, uri, Manifest(
            task=f"{self.task}-checkpoint", outputs=refs, extra={"step": step, "state": state},
        ))
        return uri

    def complete_steps(self) -> list[int]:
        steps: list[int] = []
        for uri in self.store.list(join(self.output, "checkpoints") + "/"):
            m = _STEP.search(uri)
            if m:
                steps.append(int(m.group(1)))
        return sorted(steps)

    def latest(self) -> str | None:
        """The newest checkpoint whose manifest verifies (sizes), or None."""
        for step in reversed(self.complete_steps()):
            try:
                verify_manifest(self.store, self.uri(step), check_sha256=False)
            except ManifestError:
                continue
            return self.uri(step)
        return None

    def resolve(self, resume_from: str | None, *, auto: bool) -> str | None:
        """Which checkpoint to resume from.

        ``resume_from`` naming one checkpoint (``.../step-<N>/``) must be complete (else
        :class:`CheckpointError`); naming a checkpoints directory (what the operator passes to
        every training Job, so a retried pod resumes) means its latest complete checkpoint, or
        a fresh start when there is none. Without it, ``auto`` looks under the run's own
        ``checkpoints/``.
        """
        if resume_from and re.search(r"/step-\d+/?$", resume_from):
            return resume_from.rstrip("/") + "/"
        if resume_from:
            return Checkpoints(self.store, resume_from.rstrip("/").removesuffix("/checkpoints"),
                               task=self.task).latest()
        return self.latest() if auto else None

    def load(self, uri: str, local_dir: Path) -> tuple[Path, dict[str, Any]]:
        """Download a complete checkpoint; returns ``(dir, extra)`` with ``extra["step"]``."""
        try:
            manifest = verify_manifest(self.store, uri)
        except ManifestError as exc:
            raise CheckpointError(f"checkpoint {uri} is missing or incomplete: {exc}") from exc
        prefix = uri.rstrip("/") + "/"
        for ref in manifest.outputs:
            self.store.get_file(ref.uri, local_dir / ref.uri[len(prefix):])
        return local_dir, dict(manifest.extra)


def checkpoint_step(store: ArtifactStore, uri: str) -> int:
    return int(read_manifest(store, uri).extra.get("step", 0))
