"""One reconcile pass: observe the CR, its Jobs and its artifacts; act; write status once; post Events.

The pass is a short sequence of steps over a typed status (``runstate.RunState``): admit
(``admit.py``), resolve inputs (``inputs.py``), run stages (``stagerun.py``), evaluate
(``evaluate.py``), gate and promote (``promote.py``). What differs between kinds is asked of the
kind's plugin (``kinds.py``), never of ``kind``.

Level-triggered: nothing is remembered between passes except what the CR status and MinIO
hold, so a restarted operator (or two triggers of the same object) computes the same next
step. Children have deterministic names and are created only when missing, which is why a
restart never duplicates a Job (and why Kueue's unsuspend is never undone).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from synthloop.api.v1alpha1 import KINDS
from synthloop.artifacts.manifest import Manifest, ManifestError, verify_outputs
from synthloop.artifacts.store import ArtifactStore
from synthloop.controllers import metrics as telemetry
from synthloop.controllers import reasons as R
from synthloop.controllers.admit import admit
from synthloop.controllers.config import OperatorConfig
from synthloop.controllers.evaluate import evaluate
from synthloop.controllers.inputs import resolve_inputs, uris
from synthloop.controllers.kube import Cluster
from synthloop.controllers.promote import finish
from synthloop.controllers.runstate import SUCCESS, TERMINAL, Outcome, RunState, Stop
from synthloop.controllers.stagerun import observe_jobs, record_outputs, run_stages

__all__ = ["RETRY_ANNOTATION", "TERMINAL", "Outcome", "Reconciler"]

log = logging.getLogger("synthloop.operator")

#: Set to a new value on a Failed run to retry it (docs/deploy.md, "Changing a run").
RETRY_ANNOTATION = "synthloop.io/retry"
VERIFIED_CACHE = 8192  # verified manifests kept in memory (a few KiB each)
INITIAL_CONDITIONS: tuple[tuple[str, bool | str, str], ...] = (
    ("InputsReady", "Unknown", R.NOT_STARTED), ("Running", False, R.NOT_STARTED),
    ("Evaluated", False, R.NOT_STARTED), ("Promoted", False, R.NOT_STARTED),
    ("Failed", False, R.NO_FAILURE),
)


class Reconciler:
    """Runs passes for any of the four kinds; safe to call from several threads."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        store: ArtifactStore,
        config: OperatorConfig,
        ref_grace_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        namespaces: tuple[str, ...] = (),
    ) -> None:
        self.cluster, self.store, self.config = cluster, store, config
        self.namespaces = frozenset(namespaces)  # empty: every namespace
        self.ref_grace = timedelta(seconds=ref_grace_seconds)
        self.clock = clock
        self._locks: dict[tuple[str, str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        # manifest URI -> (ETag, manifest, sha256 of its bytes) of manifests that verified.
        self._verified: OrderedDict[str, tuple[str, Manifest, bytes]] = OrderedDict()

    def verified(self, uri: str) -> tuple[Manifest, bytes]:
        """The manifest at ``uri`` with its outputs HEAD-checked, and the sha256 of its bytes.

        Cached by the manifest's ETag, so a pass over finished stages costs one HEAD per
        manifest; raises ArtifactNotFound, or ManifestError when it does not verify.
        """
        head = self.store.head(uri)
        with self._guard:
            hit = self._verified.get(uri)
            if hit is not None and head.etag and hit[0] == head.etag:
                self._verified.move_to_end(uri)
                return hit[1], hit[2]
        raw = self.store.get_bytes(uri)
        try:
            manifest = Manifest.model_validate_json(raw)
        except ValueError as exc:
            raise ManifestError(f"{uri}: malformed manifest: {exc}") from exc
        verify_outputs(self.store, manifest)
        digest = hashlib.sha256(raw).digest()
        with self._guard:
            self._verified[uri] = (head.etag, manifest, digest)
            while len(self._verified) > VERIFIED_CACHE:
                self._verified.popitem(last=False)
        return manifest, digest

    def promotion_lock(self, namespace: str, name: str) -> threading.Lock:
        """Serialises read-decide-write of one pointer between passes of this process."""
        return self._lock((namespace, "promotion", name))

    def _lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._guard:
            self._locks.pop((namespace, kind, name), None)

    def reconcile(self, kind: str, namespace: str, name: str, *, kick: bool = True) -> Outcome:
        """One pass over ``kind/namespace/name``; wakes objects waiting on it when it succeeds."""
        if self.namespaces and namespace not in self.namespaces:
            log.warning("refusing a pass on %s %s/%s: namespace %s is not watched", kind, namespace, name, namespace)
            return Outcome("gone")
        started = time.monotonic()
        with self._lock((namespace, kind, name)):
            body = self.cluster.get_cr(kind, namespace, name)
            if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                telemetry.BOOKS.record(kind, namespace, name, None)
                return Outcome("gone")
            body.setdefault("kind", kind)
            run = RunState(self, kind, body)
            outcome = run_pass(run)
            written = run.commit()
        telemetry.PASSES.labels(kind, outcome.state).observe(time.monotonic() - started)
        telemetry.BOOKS.record(kind, namespace, name, written)
        phase, before = run.status.phase, run.old.phase
        if run.gate_report is not None and phase != before and phase in TERMINAL:
            telemetry.gate_results(kind, run.gate_report)
        if kick and phase in SUCCESS and before != phase:
            self.kick_waiting(namespace, kind=kind, name=name, promotion=run.status.promoted_as)
        return outcome

    def kick_waiting(self, namespace: str, *, kind: str | None = None, name: str | None = None,
                     promotion: str | None = None) -> None:
        """Run a pass on the waiting objects that reference ``kind/name`` (or the promotion it
        wrote), found in the cache's reverse index; without a cache, on every waiting object of
        the namespace."""
        cache = getattr(self.cluster, "cache", None)
        if cache is not None and kind is not None and name is not None:
            keys = cache.dependents(namespace, kind, name, promotion)
        else:
            keys = [(k, namespace, b["metadata"]["name"]) for k in KINDS for b in self.cluster.list_crs(k, namespace)]
        for dep_kind, dep_ns, dep_name in keys:
            body = self.cluster.get_cr(dep_kind, dep_ns, dep_name)
            if body is None or ((body.get("status") or {}).get("phase")) not in (None, "Pending", "WaitingForInputs"):
                continue
            try:
                self.reconcile(dep_kind, dep_ns, dep_name, kick=False)
            except Exception:
                log.exception("pass on waiting %s %s/%s failed", dep_kind, dep_ns, dep_name)


def _retry_requested(run: RunState) -> bool:
    """``synthloop.io/retry: <new value>`` on a Failed run: run it again under the same uid, so its
    artifacts (verified stages, checkpoints) are kept and the failed stage starts a new attempt."""
    token = ((run.body.get("metadata") or {}).get("annotations") or {}).get(RETRY_ANNOTATION)
    if not token or run.old.phase != "Failed" or str(token) == run.old.retry:
        return False
    run.status.retry, run.status.phase, run.status.finished_at = str(token), None, None
    run.cond("Failed", False, R.RETRY_REQUESTED, f"retry {token} requested")
    run.event("Normal", R.RETRY_REQUESTED, f"retry {token}: running the failed run again")
    return True


def _observe(run: RunState) -> Outcome | None:
    """Start the pass: a finished run of this generation stays as it is; else the conditions all exist."""
    run.retrying = _retry_requested(run)
    if not run.retrying and run.old.phase in TERMINAL and run.old.observed_generation == run.generation:
        return Outcome("failed" if run.old.phase == "Failed" else "done", str(run.old.phase))
    run.status.run_id = run.uid
    run.status.observed_generation = run.generation
    for type_, status, reason in INITIAL_CONDITIONS:
        if not run.has_condition(type_):
            run.cond(type_, status, reason)
    return None


def run_pass(run: RunState) -> Outcome:
    """admit -> resolve inputs -> run stages -> record outputs -> evaluate -> gate and promote."""
    done = _observe(run)
    if done is not None:
        return done
    try:
        adm = admit(run)
        inputs = resolve_inputs(run, adm)
        plans = adm.plugin.stages(adm.spec, prefix=run.prefix, inputs=uris(inputs))
        observe_jobs(run, adm)
        manifests = run_stages(run, adm, plans)
        record_outputs(run, adm, plans, manifests)
        evaluation = adm.plugin.evaluation(adm.spec)
        if evaluation is None:
            run.cond("Evaluated", False, R.NO_EVALUATION, "no evaluation suites or gates")
            return finish(run, adm, None, plans=plans, manifests=manifests)
        evaluated = evaluate(run, adm, evaluation, inputs, plans)
        return finish(run, adm, evaluated, plans=plans, manifests=manifests)
    except Stop as stop:
        return stop.outcome
