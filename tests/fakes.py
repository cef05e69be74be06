"""In-memory stand-ins for the apiserver and the object store: exactly the calls the operator makes.

One copy, shared by the unit tests of the reconcile pass (tests/unit/test_reconcile_pass.py and
the tests that import from it) and by the operator benchmarks (bench/operator_bytes.py,
bench/handoff.py). The benchmarks also run a baseline revision's operator against them, so
nothing is imported from ``synthloop`` at module level: whichever ``synthloop`` is first on
``sys.path`` provides ``Head`` and ``ArtifactNotFound`` when they are needed.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

API_VERSION = "synthloop.io/v1alpha1"
DEFAULT_SECRETS = frozenset({"synthloop-minio"})  # the operator config's default s3Secret


def _not_found(uri: str) -> Exception:
    from synthloop.artifacts.store import ArtifactNotFound

    return ArtifactNotFound(uri)


class DirBackend:
    """``s3://bucket/key`` objects as files under a directory (the store's backend protocol).

    Counts what the operator costs the store: every HEAD (``heads``), every GET (``gets``, the
    URIs in order) and the bytes the GETs that found their object downloaded (``get_bytes``,
    and by sort in ``got``: manifest, json, output).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.meta: dict[str, str] = {}
        self.heads = 0
        self.gets: list[str] = []
        self.get_bytes = 0
        self.got: dict[str, int] = {}

    def _path(self, loc: Any) -> Path:
        return self.root / loc.bucket / loc.key

    def put(self, loc: Any, path: Path, *, sha256: str = "") -> None:
        dest = self._path(loc)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        self.meta[str(loc)] = sha256

    def get(self, loc: Any, path: Path) -> None:
        self.gets.append(str(loc))
        src = self._path(loc)
        if not src.is_file():
            raise _not_found(str(loc))
        shutil.copyfile(src, path)
        size = src.stat().st_size
        self.get_bytes += size
        sort = "manifest" if src.name == "manifest.json" else ("json" if src.suffix == ".json" else "output")
        self.got[sort] = self.got.get(sort, 0) + size

    def exists(self, loc: Any) -> bool:
        return self._path(loc).is_file()

    def head(self, loc: Any) -> Any:
        """Size and recorded sha256 (what S3 keeps as x-amz-meta-sha256), as a ``Head``."""
        from synthloop.artifacts.store import Head  # type: ignore[attr-defined,unused-ignore]

        self.heads += 1
        if not self._path(loc).is_file():
            raise _not_found(str(loc))
        st = self._path(loc).stat()
        return Head(size=st.st_size, sha256=self.meta.get(str(loc), ""), etag=f"{st.st_mtime_ns}-{st.st_size}")

    def stat(self, loc: Any) -> int:
        """The size alone: the store protocol of revisions before ``head``."""
        self.heads += 1
        if not self._path(loc).is_file():
            raise _not_found(str(loc))
        return self._path(loc).stat().st_size

    def keys(self, loc: Any) -> Iterator[str]:
        base = self.root / loc.bucket
        for p in sorted(base.rglob("*")):
            key = p.relative_to(base).as_posix()
            if p.is_file() and key.startswith(loc.key):
                yield f"s3://{loc.bucket}/{key}"

    def delete(self, loc: Any) -> None:
        self._path(loc).unlink(missing_ok=True)


def complete_job(job: dict[str, Any], *, ok: bool = True) -> None:
    """What the Job controller writes when a Job ends (all completions succeeded, or backoff exceeded)."""
    status = job.setdefault("status", {})
    status.update({"startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:06:00Z",
                   "succeeded": (job["spec"].get("completions") or 1) if ok else 0, "failed": 0 if ok else 3})
    status["conditions"] = [{"type": "Complete" if ok else "Failed", "status": "True",
                             "reason": "" if ok else "BackoffLimitExceeded"}]


class ApiServer:
    """The objects the operator reads and writes, with a count of status writes and Events."""

    def __init__(self, namespace: str = "team") -> None:
        self.namespace = namespace
        self.crs: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.secrets = set(DEFAULT_SECRETS)
        self.status_writes = 0
        self.events: list[tuple[str, str, str]] = []
        self.event_names: set[str] = set()
        self.pods: dict[str, list[dict[str, Any]]] = {}  # Job name -> its pods, as the kubelet left them
        self.workloads: list[dict[str, Any]] = []  # Kueue's, as its controller would write them

    def add(self, kind: str, name: str, spec: dict[str, Any], *, age_s: float = 3600) -> None:
        self.add_doc({"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}, age_s=age_s)

    def add_doc(self, doc: dict[str, Any], *, age_s: float = 3600) -> None:
        """A CR as ``kubectl apply`` leaves it: uid, generation 1, created ``age_s`` ago."""
        created = (datetime.now(UTC) - timedelta(seconds=age_s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        name = doc["metadata"]["name"]
        self.crs[(doc["kind"], name)] = {**doc, "metadata": {
            "name": name, "namespace": self.namespace, "uid": f"uid-{name}", "generation": 1,
            "creationTimestamp": created,
        }}

    def status(self, kind: str, name: str) -> dict[str, Any]:
        return dict(self.crs[(kind, name)].get("status") or {})

    def condition(self, kind: str, name: str, type_: str) -> dict[str, Any]:
        return next(c for c in self.status(kind, name)["conditions"] if c["type"] == type_)

    # -- the Cluster interface ----------------------------------------------------------
    def get_cr(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.crs.get((kind, name))
        return copy.deepcopy(body) if body else None

    def list_crs(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(b) for (k, _), b in self.crs.items() if k == kind]

    def patch_status(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        status = self.crs[(kind, name)].setdefault("status", {})
        for k, v in patch.items():
            if v is None:
                status.pop(k, None)
            else:
                status[k] = v
        self.status_writes += 1

    def list_jobs(self, namespace: str, owner_uid: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(j) for j in self.jobs.values()
                if j["metadata"]["labels"]["synthloop.io/owner-uid"] == owner_uid]

    def apply(self, obj: dict[str, Any]) -> None:
        target = self.jobs if obj["kind"] == "Job" else self.services
        target.setdefault(obj["metadata"]["name"], copy.deepcopy(obj))

    def list_workloads(self, namespace: str, job_uid: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(w) for w in self.workloads
                if w["metadata"]["labels"].get("kueue.x-k8s.io/job-uid") == job_uid]

    def secret_exists(self, namespace: str, name: str) -> bool:
        return name in self.secrets

    def post_event(self, body: dict[str, Any], *, type_: str, reason: str, message: str,
                   name: str | None = None) -> None:
        if name is not None and name in self.event_names:
            return  # 409 AlreadyExists: posted by an earlier pass
        if name is not None:
            self.event_names.add(name)
        self.events.append((body["metadata"]["name"], reason, message))

    def list_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(p) for p in self.pods.get(job_name, [])]

    # -- the Job controller, played by the caller ----------------------------------------
    def finish(self, job: str, *, ok: bool = True) -> None:
        complete_job(self.jobs[job], ok=ok)
