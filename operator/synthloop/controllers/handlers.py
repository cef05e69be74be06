"""kopf wiring shared by the four kinds: triggers -> one reconcile pass -> kopf's retry semantics.

Passes are triggered by the CR (create, spec update, operator resume), by its Jobs (an
``on.event`` on batch/v1 Jobs carrying the owner label) and by a resync loop as a safety net.
All of them call the same level-triggered pass; triggers for an object whose pass is running
are coalesced into one more pass, so a burst of Job status updates costs two passes, not
hundreds. The resync is one thread over the watched objects, not a ``kopf.timer`` per
object: kopf puts a finalizer on every object a timer watches, and a finalizer belongs only
where cleanup needs one (``keepArtifacts: false``).

Reads come from an informer cache (``cache.py``) that the same watches keep current: a pass
makes no GET or LIST, and a waiting object is woken by the producer it names, not by kopf
retries or a pass over its namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from typing import Any

import kopf

from synthloop.api.v1alpha1 import GROUP, PLURALS, VERSION
from synthloop.artifacts.store import open_store
from synthloop.artifacts.uris import run_prefix
from synthloop.builders.names import OWNER_KIND_LABEL, OWNER_UID_LABEL
from synthloop.controllers import metrics as telemetry
from synthloop.controllers import reasons as R
from synthloop.controllers.cache import Cache, CachedCluster, remote_refs
from synthloop.controllers.config import OperatorConfig, load_config
from synthloop.controllers.reconcile import TERMINAL, Outcome, Reconciler

log = logging.getLogger("synthloop.operator")
FINALIZER = "synthloop.io/artifacts"
CONFIG: OperatorConfig = load_config()


class _Runtime:
    """The reconciler of this process plus trigger coalescing."""

    def __init__(self) -> None:
        self.rec: Reconciler | None = None
        self._guard = threading.Lock()
        self._running: set[tuple[str, str, str]] = set()
        self._dirty: set[tuple[str, str, str]] = set()
        self.stop = threading.Event()

    def reconciler(self) -> Reconciler:
        if self.rec is None:
            store = open_store(on_error=telemetry.store_error)
            telemetry.BOOKS.stores.append(store)
            self.rec = Reconciler(cluster=CachedCluster(CACHE), store=store, config=CONFIG,
                                  ref_grace_seconds=CONFIG.ref_grace_seconds, namespaces=tuple(WATCHED))
        return self.rec

    def coalesced(self, kind: str, namespace: str, name: str) -> Outcome | None:
        """Run a pass unless one is running for this object; then that one runs once more."""
        key = (kind, namespace, name)
        with self._guard:
            if key in self._running:
                self._dirty.add(key)
                return None
            self._running.add(key)
        try:
            while True:
                outcome = self.reconciler().reconcile(kind, namespace, name)
                with self._guard:
                    if key not in self._dirty:
                        self._running.discard(key)
                        return outcome
                    self._dirty.discard(key)
        except BaseException:
            with self._guard:
                self._running.discard(key)
                self._dirty.discard(key)
            raise

    def start_resync(self, namespaces: list[str]) -> None:
        threading.Thread(target=self._resync_loop, args=(list(namespaces),), name="synthloop-resync",
                         daemon=True).start()

    def _resync_loop(self, namespaces: list[str]) -> None:
        """Every ``resync_seconds``: a pass on each watched object that is not finished.

        The objects come from the cache; every ``RELIST_EVERY`` rounds it is refilled by a LIST
        (a safety net under the safety net: an event the watch may have missed).
        """
        rec = self.reconciler()
        rounds = 0
        while not self.stop.wait(CONFIG.resync_seconds):
            result = "ok"
            rounds += 1
            if rounds % RELIST_EVERY == 0:
                try:
                    cluster = rec.cluster
                    assert isinstance(cluster, CachedCluster)
                    cluster.warm(namespaces)
                except Exception:
                    log.exception("resync: refilling the cache failed")
                    result = "error"
            for kind in PLURALS:
                bodies = [b for b in CACHE.items(kind) if not namespaces or b["metadata"]["namespace"] in namespaces]
                telemetry.BOOKS.replace(kind, namespaces or None, bodies)
                for body in bodies:
                    meta, status = body.get("metadata") or {}, body.get("status") or {}
                    if status.get("phase") in TERMINAL and status.get("observedGeneration") == meta.get("generation"):
                        continue
                    if meta.get("deletionTimestamp"):
                        continue
                    if rounds % RELIST_EVERY and woken_by_dependency(body):
                        continue  # its producer's pass wakes it; the safety net looks every 10th round
                    try:
                        self.coalesced(kind, meta["namespace"], meta["name"])
                    except Exception:
                        log.exception("resync: pass on %s %s/%s failed", kind, meta.get("namespace"), meta.get("name"))
            telemetry.RESYNCS.labels(result).inc()
            _trim_heap()


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``): a round's passes free
    what they parsed, and without this the high-water mark of the start-up burst stays RSS."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


RUNTIME = _Runtime()
CACHE = Cache()
RELIST_EVERY = 10  # resync rounds between two LISTs that refill the cache
# Namespaces the operator watches: `--namespace`, else SYNTHLOOP_NAMESPACES (empty: all). Set by
# `synthloop operator` (watch_namespaces) before kopf starts; kopf's watches, the resync's
# lists and the reconciler's refusal of any other namespace all read this one list.
WATCHED: list[str] = []


def woken_by_dependency(body: dict[str, Any]) -> bool:
    """A waiting object whose every wait is on this namespace's objects or promotions: the pass
    of the producer that succeeds wakes it (``Reconciler.kick_waiting``), so the resync need not
    pass it every round. Waits on artifacts (``uri``) and other namespaces' promotions are polled."""
    status = body.get("status") or {}
    ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "InputsReady"), {})
    if status.get("phase") != "WaitingForInputs" or ready.get("reason") not in (
            R.WAITING_FOR_PRODUCER, R.WAITING_FOR_PROMOTION):
        return False
    return not remote_refs(body.get("spec") or {})


def watch_namespaces(cli: list[str] | None) -> list[str]:
    """Fix the watched namespaces for this process: the CLI's, else the config's."""
    WATCHED[:] = list(dict.fromkeys(cli or CONFIG.namespaces))
    return list(WATCHED)


#: Seconds between tries of a failed startup. kopf's default is 60; the usual failure is an
#: operator started right after `kubectl apply -k crds`, while the apiserver still answers the
#: new kinds' LISTs with 429 "storage is (re)initializing" for a second or two.
STARTUP_BACKOFF = 2.0


@kopf.on.startup(backoff=STARTUP_BACKOFF)
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # kopf's own bookkeeping goes into annotations: the CRD's status schema is typed and
    # would prune a `status.kopf` field, and our status must hold only what people read.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="kopf.synthloop.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kopf.synthloop.io", key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # We post our own Events after each status write; kopf's per-handler ones would be noise.
    settings.posting.enabled = False
    settings.execution.max_workers = 8
    settings.watching.server_timeout = 300
    if WATCHED:
        # An exact list of namespaces: kopf need not list or watch Namespaces and CRDs
        # cluster-wide, which a RoleBinding-only install may not (a CRD installed later
        # needs a restart to be noticed).
        settings.scanning.disabled = True
    rec = RUNTIME.reconciler()
    assert isinstance(rec.cluster, CachedCluster)
    rec.cluster.warm(WATCHED)  # one LIST per kind and namespace; watch events keep it current
    RUNTIME.start_resync(WATCHED)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf's own readers of the pod's ServiceAccount or the kubeconfig: not its default,
    which would import the ``kubernetes`` package only to read credentials."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.cleanup()
def stop_resync(**_: Any) -> None:
    RUNTIME.stop.set()


def outcome_to_kopf(outcome: Outcome | None, *, retry: int) -> None:
    """failed -> PermanentError (no retry loop); waiting -> done for kopf.

    A waiting object is woken by its dependency (the producer's pass wakes the objects the
    cache says reference it) and by the resync, not by kopf retries: a retry is a pass plus a
    PATCH of kopf's progress annotation, per waiting object, every few seconds.
    """
    if outcome is None:
        return
    if outcome.state == "failed":
        raise kopf.PermanentError(outcome.message)


def _keep_artifacts_false(spec: Any, **_: Any) -> bool:
    return bool(spec) and spec.get("keepArtifacts") is False


def register_kind(kind: str) -> None:
    """kopf handlers for one kind (main.py registers every kind of the registry, controllers/kinds.py)."""
    plural = PLURALS[kind]

    @kopf.on.resume(GROUP, VERSION, plural, id=f"{plural}-resume")
    @kopf.on.create(GROUP, VERSION, plural, id=f"{plural}-create")
    @kopf.on.update(GROUP, VERSION, plural, field="spec", id=f"{plural}-update")
    @kopf.on.update(GROUP, VERSION, plural, field=("metadata", "annotations", "synthloop.io/retry"),
                    id=f"{plural}-retry")
    def on_change(name: str, namespace: str | None, retry: int, **_: Any) -> None:
        assert namespace is not None  # the four kinds are namespaced
        outcome_to_kopf(RUNTIME.coalesced(kind, namespace, name), retry=retry)

    @kopf.on.event(GROUP, VERSION, plural, id=f"{plural}-cache")
    async def cache_event(event: Any, **_: Any) -> None:
        """Every watch event of the kind keeps the cache current (kopf runs these first; async,
        so the events of 1,000 objects take no worker threads)."""
        if isinstance(event.get("object"), dict):
            CACHE.event(kind, event.get("type"), event["object"])

    @kopf.on.delete(GROUP, VERSION, plural, when=_keep_artifacts_false, id=f"{plural}-cleanup")
    def cleanup(name: str, namespace: str | None, uid: str, **_: Any) -> None:
        """``keepArtifacts: false``: delete the run prefix (the only cleanup owner refs cannot do)."""
        assert namespace is not None
        rec = RUNTIME.reconciler()
        prefix = run_prefix(bucket=CONFIG.bucket, namespace=namespace, kind=kind, name=name, uid=uid)
        uris = rec.store.list(prefix)
        for uri in uris:
            rec.store.delete(uri)
        rec.forget(kind, namespace, name)
        log.info("deleted %d artifact(s) under %s", len(uris), prefix)


def _job_settled(body: Any, type: str | None, **_: Any) -> bool:
    """Job events worth a pass: it finished, failed a pod, or was deleted.

    A 768-pod Job updates its status hundreds of times while its pods start; each update is
    not news to the operator (progress comes from the workers' reports on the resync), and
    passes on all of them would compete with the scheduler for the control plane.
    """
    if type == "DELETED":
        return True
    status = body.get("status") or {}
    settled = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    return bool(settled & {"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"}) or bool(status.get("failed"))


@kopf.on.event("batch", "v1", "jobs", labels={OWNER_UID_LABEL: kopf.PRESENT, OWNER_KIND_LABEL: kopf.PRESENT})
def on_job(event: Any, body: Any, type: str | None, **_: Any) -> None:
    """A child Job changed: into the cache; when it settled, a pass on its owner (coalesced, the
    owner is its controller ref), which then reads this very version from the cache."""
    if isinstance(event.get("object"), dict):
        CACHE.event("Job", type, event["object"])
    if not _job_settled(body, type):
        return
    meta = body.get("metadata", {})
    namespace = meta.get("namespace")
    owner = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if owner is None or owner.get("kind") not in PLURALS or not namespace:
        return
    try:
        RUNTIME.coalesced(owner["kind"], namespace, owner["name"])
    except Exception:
        log.exception("pass on %s %s/%s after a Job event failed", owner["kind"], namespace, owner["name"])
