"""An informer cache of the four kinds and their Jobs, so a pass reads memory, not the API server.

Filled by one LIST per kind and namespace at start-up and kept current by the watch events
kopf already receives (``handlers.py`` feeds them in); the operator's own status writes go in
as they are made. A pass then makes no GET or LIST: its requests are the writes it decides
on. The cache also answers "who waits on this object" (``dependents``), so a producer that
succeeds wakes exactly its consumers instead of a pass over the whole namespace.

Bodies are kept as compact JSON without ``metadata.managedFields`` and kopf's copy of the
last-handled spec (most of an object's size, never read here): about 2 KiB per object
instead of the ~20 KiB of a parsed dict, so 1,000 objects cost a few MiB.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from synthloop.api.v1alpha1 import KINDS
from synthloop.builders.names import OWNER_UID_LABEL
from synthloop.controllers.kube import Cluster

Key = tuple[str, str, str]  # (kind, namespace, name)
_DROP_ANNOTATIONS = ("kopf.synthloop.io/last-handled-configuration",)


def _slim(body: dict[str, Any]) -> dict[str, Any]:
    meta = dict(body.get("metadata") or {})
    meta.pop("managedFields", None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _DROP_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**body, "metadata": meta}


def _pack(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _unpack(raw: bytes) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(raw)
    return body


def _newer(old_rv: str | None, new: dict[str, Any]) -> bool:
    """Whether ``new`` is not older than the cached version (etcd resourceVersions are integers)."""
    if old_rv is None:
        return True
    a = old_rv
    b = str((new.get("metadata") or {}).get("resourceVersion") or "")
    return not (a.isdigit() and b.isdigit()) or int(b) >= int(a)


def _refs(spec: Any) -> frozenset[tuple[str, str]]:
    """What an object waits on: ``(kind, name)`` of every fromRef, ``("promoted", name)`` of
    every promotion it names (its own namespace's)."""
    out: set[tuple[str, str]] = set()
    stack = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("fromRef")
            if isinstance(ref, dict) and "kind" in ref and "name" in ref:
                out.add((str(ref["kind"]), str(ref["name"])))
            promoted = node.get("promoted")
            if isinstance(promoted, str) and "/" not in promoted:
                out.add(("promoted", promoted))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(out)


def remote_refs(spec: Any) -> bool:
    """Whether a spec names an artifact by ``uri`` or another namespace's promotion (things
    no watch event announces)."""
    stack = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            promoted = node.get("promoted")
            if "uri" in node or (isinstance(promoted, str) and "/" in promoted):
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


class Cache:
    """The four kinds by (kind, namespace, name) and their Jobs by owner uid; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crs: dict[Key, bytes] = {}
        self._rv: dict[Key, str] = {}
        self._refs: dict[Key, frozenset[tuple[str, str]]] = {}
        self._jobs: dict[str, dict[str, bytes]] = {}
        self._job_rv: dict[tuple[str, str], str] = {}
        self._listed: set[tuple[str, str]] = set()  # (kind or "Job", namespace) filled by a LIST

    # -- feeding ---------------------------------------------------------------------------
    def fill(self, kind: str, namespace: str, bodies: Iterable[dict[str, Any]]) -> None:
        """The result of a LIST of ``kind`` ("Job" for the children) in ``namespace``."""
        bodies = list(bodies)
        with self._lock:
            if kind == "Job":
                for job in bodies:
                    self._put_job(job)
            else:
                for key in [k for k in self._crs if k[0] == kind and k[1] == namespace]:
                    self._drop(key)
                for body in bodies:
                    self._put_cr(kind, body)
            self._listed.add((kind, namespace))

    def event(self, kind: str, type_: str | None, body: dict[str, Any]) -> None:
        """A watch event (kopf's ``event``): ADDED/MODIFIED/None put, DELETED removes."""
        with self._lock:
            if kind == "Job":
                if type_ == "DELETED":
                    uid = ((body.get("metadata") or {}).get("labels") or {}).get(OWNER_UID_LABEL, "")
                    self._jobs.get(uid, {}).pop(body["metadata"]["name"], None)
                    self._job_rv.pop((uid, body["metadata"]["name"]), None)
                else:
                    self._put_job(body)
            elif type_ == "DELETED":
                self._drop((kind, body["metadata"]["namespace"], body["metadata"]["name"]))
            else:
                self._put_cr(kind, body)

    def _drop(self, key: Key) -> None:
        self._crs.pop(key, None)
        self._rv.pop(key, None)
        self._refs.pop(key, None)

    def _put_cr(self, kind: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (kind, str(meta.get("namespace")), str(meta.get("name")))
        if _newer(self._rv.get(key), body):
            self._crs[key] = _pack(_slim({**body, "kind": kind}))
            self._rv[key] = str(meta.get("resourceVersion") or "")
            self._refs[key] = _refs(body.get("spec") or {})

    def _put_job(self, job: dict[str, Any]) -> None:
        meta = job.get("metadata") or {}
        uid = (meta.get("labels") or {}).get(OWNER_UID_LABEL)
        if uid:
            key = (uid, meta["name"])
            if _newer(self._job_rv.get(key), job):
                self._jobs.setdefault(uid, {})[meta["name"]] = _pack(_slim(job))
                self._job_rv[key] = str(meta.get("resourceVersion") or "")

    # -- reading ---------------------------------------------------------------------------
    def listed(self, kind: str, namespace: str) -> bool:
        with self._lock:
            return (kind, namespace) in self._listed

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A fresh copy (a pass may change what it reads)."""
        with self._lock:
            raw = self._crs.get((kind, namespace, name))
        return _unpack(raw) if raw is not None else None

    def items(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            raws = [b for (k, ns, _), b in self._crs.items() if k == kind and (namespace is None or ns == namespace)]
        return [_unpack(r) for r in raws]

    def jobs(self, owner_uid: str) -> list[dict[str, Any]]:
        with self._lock:
            raws = list(self._jobs.get(owner_uid, {}).values())
        return [_unpack(r) for r in raws]

    def dependents(self, namespace: str, kind: str, name: str, promotion: str | None) -> list[Key]:
        """Objects of ``namespace`` that reference ``kind/name`` or the promotion it writes."""
        wanted = {(kind, name)} | ({("promoted", promotion)} if promotion else set())
        with self._lock:
            return sorted(k for k, refs in self._refs.items() if k[1] == namespace and refs & wanted)

    def __len__(self) -> int:
        with self._lock:
            return len(self._crs)

    def keys(self) -> Iterator[Key]:
        with self._lock:
            return iter(list(self._crs))


class CachedCluster(Cluster):
    """``Cluster`` whose reads come from the cache once its namespace was listed.

    Until then (start-up), and for anything the cache does not hold, it asks the API server.
    """

    def __init__(self, cache: Cache, client: Any | None = None) -> None:
        super().__init__(client)
        self.cache = cache

    def warm(self, namespaces: list[str]) -> None:
        """One LIST per kind (and of the Jobs) per namespace; ``[]`` means every namespace."""
        for kind in KINDS:
            bodies = ([b for ns in namespaces for b in Cluster.list_crs(self, kind, ns)] if namespaces
                      else Cluster.list_crs_all(self, kind))
            for ns in namespaces or sorted({b["metadata"]["namespace"] for b in bodies}):
                self.cache.fill(kind, ns, [b for b in bodies if b["metadata"]["namespace"] == ns])
            if not namespaces:
                self.cache.fill(kind, "*", [])
        for ns in namespaces:
            self.cache.fill("Job", ns, Cluster.list_owned_jobs(self, ns))
        if not namespaces:
            self.cache.fill("Job", "*", Cluster.list_owned_jobs(self, None))

    def _listed(self, kind: str, namespace: str) -> bool:
        return self.cache.listed(kind, namespace) or self.cache.listed(kind, "*")

    def get_cr(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        if self._listed(kind, namespace):
            return self.cache.get(kind, namespace, name)
        return super().get_cr(kind, namespace, name)

    def list_crs(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        if self._listed(kind, namespace):
            return self.cache.items(kind, namespace)
        return super().list_crs(kind, namespace)

    def list_jobs(self, namespace: str, owner_uid: str) -> list[dict[str, Any]]:
        if self._listed("Job", namespace):
            return self.cache.jobs(owner_uid)
        return super().list_jobs(namespace, owner_uid)

    def patch_status(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Write, then put the server's answer into the cache (the watch event comes later)."""
        body = self.patch_status_returning(kind, namespace, name, patch)
        if isinstance(body, dict) and body.get("metadata"):
            self.cache.event(kind, "MODIFIED", body)

    def apply(self, obj: dict[str, Any]) -> Any:
        """Apply, then put a Job into the cache at once (so the next pass sees it)."""
        body = super().apply(obj)
        if obj["kind"] == "Job" and isinstance(body, dict) and body.get("metadata"):
            self.cache.event("Job", "MODIFIED", body)
        return body
