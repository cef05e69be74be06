"""The state of one pass: the CR as observed, its typed status (old, and the new one being built),
the Events to post, and how a pass stops early.

The status is the API's own ``Status`` model, so every step sets typed fields; it is turned
back into the CR's JSON once, at the end of the pass, and written only when it changed.
Fields the pass never touched keep exactly what the CR held (``exclude_unset``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from synthloop.api.v1alpha1 import KINDS
from synthloop.api.v1alpha1.common import Condition, Output, Status
from synthloop.artifacts.manifest import Manifest
from synthloop.artifacts.store import ArtifactStore
from synthloop.artifacts.uris import run_prefix
from synthloop.builders.jobs import Owner
from synthloop.controllers import conditions as C
from synthloop.controllers.config import OperatorConfig
from synthloop.controllers.gates import GateReport
from synthloop.controllers.kube import Cluster
from synthloop.controllers.status import status_patch

log = logging.getLogger("synthloop.operator")

TERMINAL = frozenset({"Succeeded", "Promoted", "Rejected", "Failed"})
SUCCESS = frozenset({"Succeeded", "Promoted"})
STATUS_KEYS = frozenset(f.alias or name for name, f in Status.model_fields.items())


@dataclass(frozen=True)
class Outcome:
    """What a pass ended in; the kopf handlers map it to return / TemporaryError / PermanentError."""

    state: Literal["gone", "waiting", "running", "done", "failed"]
    message: str = ""


class Stop(Exception):
    """Ends a pass early with an outcome (the status built so far is still written)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


@dataclass
class Event:
    type: str
    reason: str
    message: str
    name: str | None = None  # a deterministic Event name: posted once across passes


class Lookup:
    """The namespace's synthloop objects, cached for one pass."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self._lists: dict[str, list[dict[str, Any]]] = {}

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        if kind not in KINDS:
            return None
        return self.cluster.get_cr(kind, self.namespace, name)

    def list(self, kind: str) -> list[dict[str, Any]]:
        if kind not in self._lists:
            self._lists[kind] = self.cluster.list_crs(kind, self.namespace)
        return self._lists[kind]


def parse_status(raw: dict[str, Any]) -> Status:
    """The CR's status as the typed model (an unreadable one starts empty and is rewritten)."""
    try:
        return Status.model_validate(raw)
    except ValidationError as exc:
        log.warning("status does not parse, rewriting it: %s", exc)
        return Status()


def wire(status: Status) -> dict[str, Any]:
    """The status JSON of the fields that are set and not None."""
    return status.model_dump(by_alias=True, exclude_unset=True, exclude_none=True, mode="json")


class PassContext(Protocol):
    """What a pass needs of the reconciler that runs it (``reconcile.Reconciler`` is one): the
    steps depend on this, not on the reconciler, so the dependency runs one way."""

    @property
    def cluster(self) -> Cluster: ...

    @property
    def store(self) -> ArtifactStore: ...

    @property
    def config(self) -> OperatorConfig: ...

    @property
    def ref_grace(self) -> timedelta: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def verified(self, uri: str) -> tuple[Manifest, bytes]: ...

    def promotion_lock(self, namespace: str, name: str) -> AbstractContextManager[Any]: ...


class RunState:
    """One pass over one CR: identity, the typed old and new status, Events, and the write."""

    def __init__(self, rec: PassContext, kind: str, body: dict[str, Any]) -> None:
        self.rec, self.kind, self.body = rec, kind, body
        self.cluster, self.store, self.config = rec.cluster, rec.store, rec.config
        meta = body.get("metadata") or {}
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.uid: str = meta["uid"]
        self.generation = int(meta.get("generation") or 0)
        self.created = meta.get("creationTimestamp")
        self.raw_old: dict[str, Any] = dict(body.get("status") or {})
        self.old: Status = parse_status(self.raw_old)
        self.status: Status = self.old.model_copy(deep=True)
        self.now: datetime = rec.clock()
        self.now_s = self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.events: list[Event] = []
        self.owner = Owner(kind=kind, name=self.name, namespace=self.namespace, uid=self.uid)
        self.prefix = run_prefix(bucket=self.config.bucket, namespace=self.namespace, kind=kind,
                                 name=self.name, uid=self.uid)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.verified_outputs: list[Output] = []  # manifest:<stage> entries of the stages that verified
        # sha256 by object URI of everything this pass knows (inputs, verified stage outputs):
        # a Job's worker checks what it downloads against the entries under its inputs.
        self.expected: dict[str, str] = {}
        self.gate_report: GateReport | None = None  # set when the gates were evaluated (counted once, as a metric)
        self.retrying = False

    # -- status helpers --------------------------------------------------------------------
    def cond(self, type_: str, status: bool | str, reason: str, message: str = "") -> None:
        current = [c.model_dump(by_alias=True, exclude_unset=True) for c in self.status.conditions]
        updated = C.set_condition(current, type_, status, reason, message, now=self.now_s, generation=self.generation)
        self.status.conditions = [Condition.model_validate(c) for c in updated]

    def has_condition(self, type_: str) -> bool:
        return any(c.type == type_ for c in self.status.conditions)

    def event(self, type_: str, reason: str, message: str, *, name: str | None = None) -> None:
        self.events.append(Event(type_, reason, message, name))

    def fail(self, reason: str, message: str) -> Stop:
        self.cond("Failed", True, reason, message)
        self.cond("Running", False, reason, "stopped: " + message)
        self.status.phase = "Failed"
        if not self.status.finished_at:
            self.status.finished_at = self.now_s
        if self.old.phase != "Failed":
            self.event("Warning", reason, message)
        return Stop(Outcome("failed", message))

    def add_outputs(self, outputs: list[Output]) -> None:
        """Append the outputs not listed yet (by name)."""
        names = {o.name for o in self.status.outputs}
        self.status.outputs = [*self.status.outputs, *(o for o in outputs if o.name not in names)]

    # -- write -----------------------------------------------------------------------------
    def new(self) -> dict[str, Any]:
        """The status JSON this pass leaves (keys of the CR's status the model does not know are kept)."""
        kept = {k: v for k, v in self.raw_old.items() if k not in STATUS_KEYS and v is not None}
        return kept | wire(self.status)

    def commit(self) -> dict[str, Any]:
        """Write the status once if it changed, then post the Events of this pass; returns the status."""
        new = self.new()
        old = {k: v for k, v in self.raw_old.items() if v is not None}
        patch = status_patch(old, new)
        if patch is not None:
            self.cluster.patch_status(self.kind, self.namespace, self.name, patch)
        for ev in self.events:
            if ev.name:
                self.cluster.post_event(self.body, type_=ev.type, reason=ev.reason, message=ev.message,
                                        name=ev.name)
            else:
                self.cluster.post_event(self.body, type_=ev.type, reason=ev.reason, message=ev.message)
        return new
