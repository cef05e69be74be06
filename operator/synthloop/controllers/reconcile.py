"""One reconcile pass: observe the CR, its Jobs and its artifacts; act; write status once; post Events.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from synthloop.api.v1alpha1 import KINDS
from synthloop.api.v1alpha1.common import Gate, Source
from synthloop.api.validate import SpecError, parse_spec
from synthloop.artifacts.manifest import MANIFEST_NAME, Manifest, ManifestError, verify_outputs
from synthloop.artifacts.promotion import (
    PromotionPointer,
    may_replace,
    read_promotion,
    split_reference,
    write_promotion,
)
from synthloop.artifacts.store import WEIGHTS_NAME, ArtifactNotFound, ArtifactStore
from synthloop.artifacts.uris import join, promotion_uri, run_prefix
from synthloop.builders.jobs import Owner, Platform, build_job, build_service
from synthloop.builders.names import attempt_job_name
from synthloop.builders.podtemplate import pod_template_of
from synthloop.builders.profiles import HardwareProfile
from synthloop.builders.stages import StagePlan, eval_stage, job_request
from synthloop.controllers import attempts as gang
from synthloop.controllers import conditions as C
from synthloop.controllers import kueue
from synthloop.controllers import metrics as telemetry
from synthloop.controllers import reasons as R
from synthloop.controllers.admission import first_pass_problems
from synthloop.controllers.config import OperatorConfig
from synthloop.controllers.gates import evaluate_gates
from synthloop.controllers.kube import Cluster
from synthloop.controllers.plan import evaluation_of, input_sources, reward_weights, training_stages
from synthloop.controllers.resolve import (
    MODEL_ROLES,
    Invalid,
    Resolved,
    Waiting,
    find_cycle,
    resolve_source,
)
from synthloop.controllers.status import (
    PodFailure,
    attempts,
    failure_reason,
    gpu_hours,
    job_state,
    pod_failures,
    progress_from_reports,
    status_patch,
)

log = logging.getLogger("synthloop.operator")

TERMINAL = frozenset({"Succeeded", "Promoted", "Rejected", "Failed"})
#: Set to a new value on a Failed run to retry it (docs/deploy.md, "Changing a run").
RETRY_ANNOTATION = "synthloop.io/retry"
SUCCESS = frozenset({"Succeeded", "Promoted"})
MANIFEST_OUTPUT = "manifest:"
VERIFIED_CACHE = 8192  # verified manifests kept in memory (a few KiB each)


@dataclass(frozen=True)
class Outcome:
    """What a pass ended in; the kopf handlers map it to return / TemporaryError / PermanentError."""

    state: Literal["gone", "waiting", "running", "done", "failed"]
    message: str = ""


class _Stop(Exception):
    """Ends a pass early with an outcome (the status built so far is still written)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


@dataclass
class _Event:
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


def _digest_of(digests: list[bytes]) -> str:
    """One sha256 over several (the sha256 digests of a stage's manifests, in order)."""
    h = hashlib.sha256()
    for d in digests:
        h.update(d)
    return h.hexdigest()


def content_sha256(files: dict[str, tuple[str, str, int]]) -> str:
    """A data set's hash from its files' content hashes alone (role -> (uri, sha256, size)):
    the same bytes hash the same in every run, whatever their URIs."""
    return hashlib.sha256("".join(f"{role}:{sha}\n" for role, (_, sha, _) in sorted(files.items())).encode()).hexdigest()


def _model_output(manifest: Manifest, model_uri: str) -> tuple[str, int]:
    """sha256 of the weights file and total size of a model directory listed in a manifest."""
    files = [o for o in manifest.outputs if o.uri.startswith(model_uri)]
    size = sum(o.size for o in files)
    weights = next((o for o in files if o.uri.endswith("/" + WEIGHTS_NAME)), None)
    return (weights.sha256 if weights else ""), size


def _data_outputs(manifest: Manifest) -> dict[str, tuple[str, str, int]]:
    """Role -> (uri, sha256, size) of a merged SynthRound's files (by role, else by file name)."""
    out: dict[str, tuple[str, str, int]] = {}
    for ref in manifest.outputs:
        base = ref.uri.rsplit("/", 1)[-1]
        for role in ("sft", "preference"):
            if ref.role == role or base == f"{role}.jsonl":
                out.setdefault(role, (ref.uri, ref.sha256, ref.size))
    return out


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
            p = _Pass(self, kind, body)
            outcome = p.run()
            p.commit()
        telemetry.PASSES.labels(kind, outcome.state).observe(time.monotonic() - started)
        telemetry.BOOKS.record(kind, namespace, name, p.new)
        if p.gate_report is not None and p.new.get("phase") != p.old.get("phase") and p.new.get("phase") in TERMINAL:
            telemetry.gate_results(kind, p.gate_report)
        if kick and p.new.get("phase") in SUCCESS and p.old.get("phase") != p.new.get("phase"):
            self.kick_waiting(namespace, kind=kind, name=name, promotion=p.new.get("promotedAs"))
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


class _Pass:
    """The state of one pass: the old status, the new one being built, the Events to post."""

    def __init__(self, rec: Reconciler, kind: str, body: dict[str, Any]) -> None:
        self.rec, self.kind, self.body = rec, kind, body
        self.cluster, self.store, self.config = rec.cluster, rec.store, rec.config
        meta = body.get("metadata") or {}
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.uid: str = meta["uid"]
        self.generation = int(meta.get("generation") or 0)
        self.created = meta.get("creationTimestamp")
        self.old: dict[str, Any] = dict(body.get("status") or {})
        self.new: dict[str, Any] = {k: v for k, v in self.old.items()}
        self.now = rec.clock()
        self.now_s = self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.events: list[_Event] = []
        self.owner = Owner(kind=kind, name=self.name, namespace=self.namespace, uid=self.uid)
        self.prefix = run_prefix(bucket=self.config.bucket, namespace=self.namespace, kind=kind,
                                 name=self.name, uid=self.uid)
        self.jobs: dict[str, dict[str, Any]] = {}
        self._verified_outputs: list[dict[str, Any]] = []
        # sha256 by object URI of everything this pass knows (inputs, verified stage outputs):
        # a Job's worker checks what it downloads against the entries under its inputs.
        self._expected: dict[str, str] = {}
        self.gate_report: Any = None  # set when the gates were evaluated (counted once, as a metric)

    # -- status helpers --------------------------------------------------------------------
    def cond(self, type_: str, status: bool | str, reason: str, message: str = "") -> None:
        self.new["conditions"] = C.set_condition(
            list(self.new.get("conditions") or []), type_, status, reason, message,
            now=self.now_s, generation=self.generation,
        )

    def event(self, type_: str, reason: str, message: str, *, name: str | None = None) -> None:
        self.events.append(_Event(type_, reason, message, name))

    def fail(self, reason: str, message: str) -> _Stop:
        self.cond("Failed", True, reason, message)
        self.cond("Running", False, reason, "stopped: " + message)
        self.new["phase"] = "Failed"
        self.new.setdefault("finishedAt", self.now_s)
        if self.old.get("phase") != "Failed":
            self.event("Warning", reason, message)
        return _Stop(Outcome("failed", message))

    # -- the pass --------------------------------------------------------------------------
    def run(self) -> Outcome:
        self.retrying = self._retry_requested()
        if not self.retrying and self.old.get("phase") in TERMINAL and self.old.get("observedGeneration") == self.generation:
            return Outcome("failed" if self.old["phase"] == "Failed" else "done", str(self.old["phase"]))
        self.new["runId"] = self.uid
        self.new["observedGeneration"] = self.generation
        for type_, status, reason in (
            ("InputsReady", "Unknown", R.NOT_STARTED), ("Running", False, R.NOT_STARTED),
            ("Evaluated", False, R.NOT_STARTED), ("Promoted", False, R.NOT_STARTED),
            ("Failed", False, R.NO_FAILURE),
        ):
            if C.get_condition(self.new.get("conditions") or [], type_) is None:
                self.cond(type_, status, reason)
        try:
            return self._run()
        except _Stop as stop:
            return stop.outcome

    def _retry_requested(self) -> bool:
        """``synthloop.io/retry: <new value>`` on a Failed run: run it again under the same uid, so its
        artifacts (verified stages, checkpoints) are kept and the failed stage starts a new attempt."""
        token = ((self.body.get("metadata") or {}).get("annotations") or {}).get(RETRY_ANNOTATION)
        if not token or self.old.get("phase") != "Failed" or str(token) == self.old.get("retry"):
            return False
        self.new.update(retry=str(token), phase=None, finishedAt=None)
        self.cond("Failed", False, R.RETRY_REQUESTED, f"retry {token} requested")
        self.event("Normal", R.RETRY_REQUESTED, f"retry {token}: running the failed run again")
        return True

    def _run(self) -> Outcome:
        try:
            spec = parse_spec(self.kind, self.name, self.body.get("spec") or {})
        except SpecError as exc:
            raise self.fail(R.INVALID_SPEC, str(exc)) from None
        try:
            profile = self.config.profiles.get(spec.resources.profile)
        except KeyError as exc:
            raise self.fail(R.PROFILE_MISSING, f"spec.resources.profile: {exc.args[0]}") from None
        lookup = Lookup(self.cluster, self.namespace)
        problems = first_pass_problems(self.kind, spec, profile, lookup=lookup,
                                       secret_exists=lambda n: self.cluster.secret_exists(self.namespace, n))
        if problems:
            raise self.fail(R.INVALID_SPEC, f"{self.kind} {self.name!r} cannot run: " + "; ".join(problems))
        cycle = find_cycle(self.kind, self.name, self.body.get("spec") or {}, lookup)
        if cycle:
            raise self.fail(R.REF_CYCLE, "reference cycle: " + " -> ".join(cycle))
        if self.old.get("observedGeneration") != self.generation:
            self._require_secret()  # on the first pass of a spec, before it waits for anything
        inputs = self._resolve_inputs(spec, lookup)
        plans = training_stages(self.kind, spec, prefix=self.prefix,
                                inputs={r: v.uri for r, v in inputs.items()} | self._extra_roles(inputs))
        self.jobs = {j["metadata"]["name"]: j for j in self.cluster.list_jobs(self.namespace, self.uid)}
        self.new["attempts"] = attempts(self.jobs.values())
        self.new["gpuHours"] = gpu_hours(self.jobs.values(), now=self.now, gpu_resource=profile.gpu_resource)
        manifests: dict[str, list[Manifest]] = {}
        for plan in plans:
            manifests[plan.stage] = self._advance(plan, spec, profile, evaluating=False)
        self.cond("Running", False, R.STAGES_COMPLETE, f"{len(plans)} stage(s) complete")
        self.new["progress"] = None
        self._record_outputs(plans, manifests)
        evaluation = evaluation_of(self.kind, spec)
        if evaluation is None:
            self.cond("Evaluated", False, R.NO_EVALUATION, "no evaluation suites or gates")
            return self._finish(spec, metrics=None, gate_report=None, plans=plans, manifests=manifests)
        return self._evaluate(spec, profile, evaluation, inputs, plans, manifests, lookup)

    # -- inputs ----------------------------------------------------------------------------
    def _extra_roles(self, inputs: dict[str, Resolved]) -> dict[str, str]:
        out: dict[str, str] = {}
        for res in inputs.values():
            for role, uri in res.extra.items():
                out.setdefault(role, uri)
        return out

    def _age(self) -> timedelta:
        try:
            created = datetime.strptime(str(self.created), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return timedelta(0)
        return self.now - created

    def _resolve(self, role: str, source: Source, lookup: Lookup) -> Resolved | Waiting | Invalid:
        if source.promoted is not None and "/" in source.promoted:
            shared = self._shared_promotion(source.promoted)
            if not isinstance(shared, PromotionPointer):
                return shared
        return resolve_source(
            source, role=role, lookup=lookup,
            promotion=self._promotion,
            exists=self._exists, allow_missing_ref=self._age() < self.rec.ref_grace,
        )

    def _promotion(self, ref: str) -> PromotionPointer | None:
        """The pointer ``promoted: ref`` names, as this namespace may see it (None: not yet)."""
        namespace, name = split_reference(ref, namespace=self.namespace)
        pointer = read_promotion(self.store, bucket=self.config.bucket, namespace=namespace, name=name)
        return pointer if pointer is not None and pointer.readable_by(self.namespace) else None

    def _shared_promotion(self, ref: str) -> PromotionPointer | Waiting:
        """Another namespace's promotion: usable only when its producer shared it with this one."""
        namespace, name = split_reference(ref, namespace=self.namespace)
        if namespace == self.namespace:
            pointer = self._promotion(ref)
            return pointer or Waiting(R.WAITING_FOR_PROMOTION, f"waiting for promotion {name}")
        pointer = read_promotion(self.store, bucket=self.config.bucket, namespace=namespace, name=name)
        if pointer is None:
            return Waiting(R.WAITING_FOR_PROMOTION,
                           f"waiting for promotion {ref}: namespace {namespace} has promoted nothing as {name} yet")
        if not pointer.readable_by(self.namespace):
            return Waiting(R.PROMOTION_NOT_SHARED,
                           f"promotion {ref} is not shared with namespace {self.namespace}: its producer "
                           f"({pointer.source}) must list {self.namespace} in spec.promotion.shareWith")
        return pointer

    def _exists(self, uri: str) -> bool:
        try:
            if uri.endswith("/"):
                return bool(self.store.list(uri))
            return self.store.exists(uri) or bool(self.store.list(uri.rstrip("/") + "/"))
        except ArtifactNotFound:
            return False

    def _parent_source(self, spec: Any, lookup: Lookup) -> Source | None:
        """``spec.parent``, else the generator of the data's SynthRound (the round's teacher)."""
        parent: Source | None = getattr(spec, "parent", None)
        if parent is not None:
            return parent
        data: Source | None = getattr(spec, "data", None)
        if data is not None and data.from_ref is not None and data.from_ref.kind == "SynthRound":
            body = lookup.get("SynthRound", data.from_ref.name)
            model = (((body or {}).get("spec") or {}).get("generator") or {}).get("model")
            if isinstance(model, dict):
                return Source.model_validate(model)
        return None

    def _needs_parent(self, spec: Any) -> bool:
        ev = evaluation_of(self.kind, spec)
        if ev is None:
            return False
        return any(g.must_beat_parent for g in ev.gates) or any(s.type == "rewardWinRate" for s in ev.suites)

    def _resolve_inputs(self, spec: Any, lookup: Lookup) -> dict[str, Resolved]:
        resolved: dict[str, Resolved] = {}
        waiting: list[Waiting] = []
        sources = input_sources(self.kind, spec)
        for role, source in sources:
            res = self._resolve(role, source, lookup)
            if isinstance(res, Invalid):
                raise self.fail(res.reason, res.message)
            if isinstance(res, Waiting):
                waiting.append(res)
            else:
                resolved[role] = res
        if not waiting and self._needs_parent(spec):
            parent = self._parent_source(spec, lookup)
            if parent is None:
                ev = evaluation_of(self.kind, spec)
                if ev is not None and any(g.must_beat_parent for g in ev.gates):
                    raise self.fail(
                        R.INVALID_SPEC,
                        "spec.evaluation.gates: mustBeatParent needs a parent model: set spec.parent, "
                        "or take spec.data from a SynthRound (its generator is the parent)",
                    )
            else:
                res = self._resolve("baseline_model", parent, lookup)
                if isinstance(res, Invalid):
                    raise self.fail(res.reason, res.message)
                if isinstance(res, Waiting):
                    waiting.append(res)
                else:
                    resolved["baseline_model"] = res
        if waiting:
            message = "; ".join(w.message for w in waiting)
            self.cond("InputsReady", False, waiting[0].reason, message)
            self.new["phase"] = "WaitingForInputs"
            self.new["stage"] = None
            if self.old.get("phase") != "WaitingForInputs":
                self.event("Normal", waiting[0].reason, message)
            raise _Stop(Outcome("waiting", message))
        self.cond("InputsReady", True, R.RESOLVED,
                  ", ".join(f"{r} from {v.source}" for r, v in sorted(resolved.items())) or "no inputs")
        self.new["inputs"] = [
            {"name": role, "uri": r.uri, "sha256": r.sha256, "size": r.size} for role, r in sorted(resolved.items())
        ]
        for r in resolved.values():
            self._expected.update(r.checksums)
            if r.sha256 and r.uri.endswith("/") and r.role in MODEL_ROLES:
                self._expected[join(r.uri, WEIGHTS_NAME)] = r.sha256  # a model's sha256 is its weights'
            elif r.sha256 and not r.uri.endswith("/"):
                self._expected[r.uri] = r.sha256
        return resolved

    # -- stages ----------------------------------------------------------------------------
    def _verify(self, plan: StagePlan) -> tuple[list[Manifest], str | None, int]:
        """Manifests of a stage if all verify (else an error), and how many exist.

        HEAD requests only, no output is downloaded: each manifest is HEADed, fetched and its
        outputs HEAD-checked (size, recorded sha256) once per manifest version (ETag); later
        passes reuse that (:meth:`Reconciler.verified`). Its digest is kept in
        ``status.outputs`` as ``manifest:<stage>``.
        """
        manifests: list[Manifest] = []
        digests: list[bytes] = []
        error: str | None = None
        for prefix in plan.manifests:
            uri = join(prefix, MANIFEST_NAME)
            try:
                manifest, digest = self.rec.verified(uri)
            except ArtifactNotFound:
                error = error or f"{uri} does not exist"
                continue
            except (ManifestError, ValueError) as exc:
                error = error or str(exc)
                continue
            manifests.append(manifest)
            digests.append(digest)
            self._expected.update({o.uri: o.sha256 for o in manifest.outputs if o.sha256})
        if error:
            return [], error, len(manifests)
        self._verified_outputs.append({
            "name": MANIFEST_OUTPUT + plan.stage, "uri": join(plan.manifests[0], MANIFEST_NAME),
            "sha256": _digest_of(digests), "size": len(manifests),
        })
        return manifests, None, len(manifests)

    def _progress(self, plan: StagePlan, manifests_present: int) -> str:
        reports = []
        try:
            for uri in self.store.list(join(plan.output, "progress") + "/"):
                if uri.rsplit("/", 1)[-1].startswith(f"{plan.task}-"):
                    reports.append(self.store.get_json(uri))
        except (ArtifactNotFound, ValueError):
            reports = []
        if plan.task == "synth":
            items = progress_from_reports(reports, unit="items")
            text = f"{manifests_present}/{plan.pods} shards"
            return text + (f", {items.text()}" if items else "")
        if plan.task in ("pretrain", "reward-train", "align"):
            first = sorted(reports, key=lambda r: int(r.get("index", 0)))[:1]
            prog = progress_from_reports(first, unit="steps")
            return prog.text() if prog else "starting"
        prog = progress_from_reports(reports, unit="items")
        return prog.text() if prog else plan.stage

    def _advance(self, plan: StagePlan, spec: Any, profile: HardwareProfile, *, evaluating: bool) -> list[Manifest]:
        """Return the stage's manifests when it is done; otherwise act and stop the pass."""
        manifests, error, present = self._verify(plan)
        if error is None:
            return manifests
        attempt, name = gang.current_attempt(self.jobs, self.name, plan.stage)
        job = self.jobs.get(name)
        state = job_state(job)
        self.new["stage"] = plan.stage
        if plan.rendezvous:  # a gang stage: which attempt, and (from the 2nd) its resume step
            self.new["stageAttempt"] = attempt
            if attempt == 1:
                self.new["resumedFromStep"] = None
        self.new["phase"] = "Evaluating" if evaluating else "Running"
        if state == "missing":
            self._create(plan, name, spec, profile)
            self.new.setdefault("startedAt", self.now_s)
            if not self.new.get("startedAt"):
                self.new["startedAt"] = self.now_s
            self.cond("Running", True, R.JOB_CREATED, f"stage {plan.stage}: created Job {name}")
            self.new["progress"] = f"0/{plan.pods} shards" if plan.task == "synth" else "starting"
            self.event("Normal", R.JOB_CREATED, f"stage {plan.stage}: created Job {name} ({plan.pods} pod(s))")
            raise _Stop(Outcome("running", f"created Job {name}"))
        assert job is not None
        if state == "failed":
            raise self._failed(plan, spec, profile, job, attempt)
        if state == "complete":
            # A pod that "succeeded" without writing its manifest never really ran (a KWOK
            # node), or crashed after exit 0: either way its output cannot be trusted.
            raise self.fail(R.MANIFEST_INVALID,
                            f"stage {plan.stage}: Job {name} completed but its output does not verify: {error}")
        if state == "suspended":
            queue = spec.resources.queue or "?"
            self.cond("Running", False, R.JOB_SUSPENDED,
                      kueue.queued_message(self.cluster, job, stage=plan.stage, queue=queue))
            self.new["phase"] = "Pending"
            self.new["progress"] = "queued"
            raise _Stop(Outcome("running", "suspended"))
        self.new["progress"] = self._progress(plan, present)
        if int((job.get("status") or {}).get("failed") or 0):
            self._pod_failures(plan, job)  # a Warning per failed pod, also while its Job retries
        admitted = kueue.admission_note(self.cluster, job)
        self.cond("Running", True, R.JOB_RUNNING, f"stage {plan.stage}: Job {name} running ({self.new['progress']})"
                  + (f"; {admitted}" if admitted else ""))
        raise _Stop(Outcome("running", f"Job {name} running"))

    def _pod_failures(self, plan: StagePlan, job: dict[str, Any]) -> list[PodFailure]:
        """The Job's failed pods, each posted once as a Warning Event with its reason."""
        name = job["metadata"]["name"]
        failures = pod_failures(self.cluster.list_pods(self.namespace, name))
        for f in failures:
            self.event("Warning", R.POD_FAILED, f"stage {plan.stage}: Job {name}: {f.describe()}"
                       + (f": {f.message}" if f.message else ""), name=f"{self.name}.{f.uid or f.pod}")
        return failures

    def _failed(self, plan: StagePlan, spec: Any, profile: HardwareProfile, job: dict[str, Any],
                attempt: int) -> _Stop:
        """A failed Job: the next gang attempt (resuming from the last checkpoint), or the CR fails
        with the worker's own reason."""
        failures = self._pod_failures(plan, job)
        reason = failure_reason(job, failures)
        invalid = gang.invalid_input(failures)
        if self.retrying or (plan.rendezvous and not invalid and gang.may_retry(
                attempt, backoff_limit=spec.backoff_limit, was_disrupted=gang.disrupted(failures))):
            nxt = attempt + 1
            name = attempt_job_name(self.name, plan.stage, nxt)
            resume_uri, step = gang.resume_point(self.store, plan.output, plan.task)
            self._create(plan, name, spec, profile, resume_from=resume_uri)
            self.new["stageAttempt"], self.new["resumedFromStep"] = nxt, step
            self.new["progress"] = f"attempt {nxt}, resuming at step {step}"
            self.event("Warning", R.ATTEMPT_FAILED, f"stage {plan.stage}: attempt {attempt} failed: {reason}",
                       name=f"{job['metadata']['name']}.failed")
            message = (f"stage {plan.stage}: attempt {nxt} of at most {spec.backoff_limit + 1} (Job {name}) "
                       f"resumes from step {step}" + (f" ({resume_uri})" if resume_uri else " (no checkpoint yet)"))
            self.cond("Running", True, R.ATTEMPT_STARTED, message)
            self.event("Normal", R.ATTEMPT_STARTED, message, name=f"{name}.started")
            return _Stop(Outcome("running", message))
        return self.fail(R.INVALID_INPUT if invalid else R.JOB_FAILED, f"stage {plan.stage}: {reason}")

    def _require_secret(self) -> None:
        """The MinIO Secret the worker pods read. Checked on a spec's first pass and before each
        Job, not on every pass: a waiting object's passes then cost no API request."""
        if not self.cluster.secret_exists(self.namespace, self.config.s3_secret):
            raise self.fail(
                R.SECRET_MISSING,
                f"Secret {self.config.s3_secret} (keys accessKey, secretKey) does not exist in namespace "
                f"{self.namespace}; worker pods read the MinIO credentials from it",
            )

    def _create(self, plan: StagePlan, name: str, spec: Any, profile: HardwareProfile,
                resume_from: str | None = None) -> None:
        self._require_secret()  # again, now that pods will read it
        image = spec.resources.image or self.config.image_for(self.kind)
        platform = Platform(image=image, s3_endpoint=self.config.s3_endpoint, s3_secret=self.config.s3_secret,
                            s3_secure=self.config.s3_secure, image_pull_policy=self.config.image_pull_policy)
        req = job_request(plan, owner=self.owner, job_name=name, spec_hash=self._spec_hash(), image=image,
                          backoff_limit=spec.backoff_limit, resources=spec.resources, resume_from=resume_from,
                          pod_template=pod_template_of(spec))
        ins = list(req.config.inputs.values())
        req.config.checksums = {uri: sha for uri, sha in sorted(self._expected.items())
                                if any(uri == i or (i.endswith("/") and uri.startswith(i)) for i in ins)}
        if req.rendezvous:
            self.cluster.apply(build_service(self.owner, req))
        self.cluster.apply(build_job(self.owner, platform, profile, req,
                                     pod_annotations=kueue.topology_annotations(self.body)))
        telemetry.JOBS_CREATED.labels(self.kind, plan.stage).inc()

    def _spec_hash(self) -> str:
        import json

        raw = json.dumps(self.body.get("spec") or {}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    # -- outputs, evaluation, gates ----------------------------------------------------------
    def _record_outputs(self, plans: list[StagePlan], manifests: dict[str, list[Manifest]]) -> None:
        last = plans[-1]
        final = manifests[last.stage]
        outputs: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        if self.kind == "SynthRound":
            merged = final[0]
            files = _data_outputs(merged)
            outputs.append({"name": "data", "uri": last.output, "sha256": content_sha256(files),
                            "size": sum(o.size for o in merged.outputs)})
            for role, (uri, sha, size) in sorted(files.items()):
                outputs.append({"name": role, "uri": uri, "sha256": sha, "size": size})
            counts = dict(merged.counts)
            self.new["metrics"] = {k: float(v) for k, v in merged.metrics.items()}
        else:
            sha, size = _model_output(final[0], last.model_uri)
            outputs.append({"name": "model", "uri": last.model_uri, "sha256": sha, "size": size})
            for m in final:
                counts.update(m.counts)
        self.new["outputs"] = outputs + self._verified_outputs
        self.new["counts"] = counts

    def _reference_metrics(
        self, source: Source, label: str, metrics_needed: set[str], lookup: Lookup
    ) -> tuple[dict[str, float] | None, str]:
        """Known metrics of a reference model (when they cover what the gates need) and its URI."""
        res = self._resolve(label, source, lookup)
        if not isinstance(res, Resolved):
            raise self.fail(R.INVALID_SPEC if isinstance(res, Invalid) else res.reason,
                            f"cannot evaluate gates: {res.message}")
        known = res.metrics or {}
        if metrics_needed <= set(known):
            return dict(known), res.uri
        return None, res.uri

    def _eval_metrics(self, plan: StagePlan, manifests: list[Manifest]) -> dict[str, float]:
        try:
            doc = self.store.get_json(join(plan.output, "metrics.json"))
            metrics = doc.get("metrics", doc) if isinstance(doc, dict) else {}
            return {str(k): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        except (ArtifactNotFound, ValueError):
            return {k: float(v) for m in manifests for k, v in m.metrics.items()}

    def _evaluate(self, spec: Any, profile: HardwareProfile, evaluation: Any, inputs: dict[str, Resolved],
                  plans: list[StagePlan], manifests: dict[str, list[Manifest]], lookup: Lookup) -> Outcome:
        gates: list[Gate] = list(evaluation.gates)
        gpus = spec.resources.gpus_per_node
        eval_inputs = {r: v.uri for r, v in inputs.items()} | self._extra_roles(inputs)
        main = eval_stage(evaluation, prefix=self.prefix, stage="eval", model=plans[-1].model_uri,
                          inputs=eval_inputs, gpus=gpus, reward_weights=reward_weights(self.kind, spec))
        evals: list[tuple[str, StagePlan]] = [("self", main)]
        parent_metrics: dict[str, float] | None = None
        baselines: dict[int, dict[str, float]] = {}
        parent_gates = {g.metric for g in gates if g.must_beat_parent}
        if parent_gates:
            source = self._parent_source(spec, lookup)
            assert source is not None  # checked when inputs were resolved
            parent_metrics, uri = self._reference_metrics(source, "baseline_model", parent_gates, lookup)
            if parent_metrics is None:
                evals.append(("parent", eval_stage(evaluation, prefix=self.prefix, stage="eval-parent", model=uri,
                                                   inputs=eval_inputs, gpus=gpus, reward_weights=reward_weights(self.kind, spec))))
        for i, gate in enumerate(gates):
            if gate.max_regression is None or gate.baseline is None:
                continue
            known, uri = self._reference_metrics(gate.baseline, "baseline_model", {gate.metric}, lookup)
            if known is None:
                evals.append((f"baseline-{i}", eval_stage(
                    evaluation, prefix=self.prefix, stage=f"eval-baseline-{i}", model=uri,
                    inputs=eval_inputs, gpus=gpus, reward_weights=reward_weights(self.kind, spec))))
            else:
                baselines[i] = known
        self.cond("Evaluated", False, R.EVALUATING, "running " + ", ".join(p.stage for _, p in evals))
        results: dict[str, dict[str, float]] = {}
        for label, plan in evals:
            done = self._advance(plan, spec, profile, evaluating=True)
            results[label] = self._eval_metrics(plan, done)
            self.new["outputs"] = list(self.new.get("outputs") or [])
            names = {o["name"] for o in self.new["outputs"]}
            for out in self._verified_outputs:
                if out["name"] not in names:
                    self.new["outputs"].append(out)
        metrics = results["self"]
        if "parent" in results:
            parent_metrics = results["parent"]
        for label, m in results.items():
            if label.startswith("baseline-"):
                baselines[int(label.split("-", 1)[1])] = m
        self.new["metrics"] = metrics
        self.cond("Evaluated", True, R.EVALUATED, f"{len(metrics)} metric(s) from {main.output}metrics.json")
        report = evaluate_gates(gates, metrics, parent=parent_metrics, baselines=baselines)
        self.gate_report = report
        return self._finish(spec, metrics=metrics, gate_report=report, plans=plans, manifests=manifests)

    def _finish(self, spec: Any, *, metrics: dict[str, float] | None, gate_report: Any,
                plans: list[StagePlan], manifests: dict[str, list[Manifest]]) -> Outcome:
        self.new["stage"] = None
        self.new["progress"] = None
        if metrics:
            gates = list(getattr(getattr(spec, "evaluation", None), "gates", []) or [])
            key = gates[0].metric if gates else min(metrics)
            if key in metrics:
                self.new["keyMetric"] = f"{key}={metrics[key]:.4g}"
        if not self.new.get("finishedAt"):
            self.new["finishedAt"] = self.now_s
        promotion = getattr(spec, "promotion", None)
        if gate_report is not None and not gate_report.passed:
            self.cond("Promoted", False, R.GATE_FAILED, gate_report.message)
            self.new["phase"] = "Rejected"
            if self.old.get("phase") != "Rejected":
                self.event("Warning", R.GATE_FAILED, gate_report.message)
            return Outcome("done", gate_report.message)
        if promotion is None:
            self.cond("Promoted", False, R.NO_PROMOTION,
                      "gates passed; spec.promotion is not set" if gate_report else "spec.promotion is not set")
            self.new["phase"] = "Succeeded"
            if self.old.get("phase") != "Succeeded":
                self.event("Normal", "Succeeded", f"{self.kind} {self.name} succeeded")
            return Outcome("done", "succeeded")
        last = plans[-1]
        final = manifests[last.stage][0]
        sha, _ = _model_output(final, last.model_uri)
        pointer = PromotionPointer(
            name=promotion.name, model_uri=last.model_uri, model_sha256=sha,
            manifest_uri=join(last.output, MANIFEST_NAME),
            source=f"{self.namespace}/{self.kind}/{self.name}/{self.uid}",
            metrics=metrics or {}, promoted_at=self.now_s,
            namespace=self.namespace, shared_with=sorted(set(promotion.share_with)),
        )
        passed = gate_report is not None and gate_report.passed and bool(gate_report.results)
        with self.rec.promotion_lock(self.namespace, promotion.name):
            existing = read_promotion(self.store, bucket=self.config.bucket, namespace=self.namespace,
                                      name=promotion.name)
            decision = may_replace(existing, pointer, gates_passed=passed, replace=promotion.replace)
            if decision.write:
                write_promotion(self.store, bucket=self.config.bucket, pointer=pointer)
        if not decision.write and decision.reason != "own":
            self.cond("Promoted", False, R.PROMOTION_HELD, decision.reason)
            self.new["phase"] = "Succeeded"
            if self.old.get("phase") != "Succeeded":
                self.event("Warning", R.PROMOTION_HELD, decision.reason)
            return Outcome("done", decision.reason)
        uri = promotion_uri(bucket=self.config.bucket, namespace=self.namespace, name=promotion.name)
        message = f"promoted as {promotion.name} ({uri})"
        if gate_report is not None and gate_report.results:
            message += ": " + gate_report.message
        self.cond("Promoted", True, R.GATES_PASSED, message)
        self.new["phase"] = "Promoted"
        self.new["promotedAs"] = promotion.name
        if self.old.get("phase") != "Promoted":
            self.event("Normal", "Promoted", message)
        return Outcome("done", message)

    # -- write -----------------------------------------------------------------------------
    def commit(self) -> None:
        """Write the status once if it changed, then post the Events of this pass."""
        new = {k: v for k, v in self.new.items() if v is not None}
        old = {k: v for k, v in self.old.items() if v is not None}
        patch = status_patch(old, new)
        if patch is not None:
            self.cluster.patch_status(self.kind, self.namespace, self.name, patch)
        for ev in self.events:
            if ev.name:
                self.cluster.post_event(self.body, type_=ev.type, reason=ev.reason, message=ev.message,
                                        name=ev.name)
            else:
                self.cluster.post_event(self.body, type_=ev.type, reason=ev.reason, message=ev.message)
