"""Step 2 of a pass, resolve inputs: every source of the spec to an artifact URI, or wait.

The kind's plugin says which roles it reads and which model is its parent; this module turns
each ``fromRef`` / ``promoted`` / ``uri`` into a URI with its sha256 (``resolve.py``), reads
promotion pointers (another namespace's only when shared), and records the checksums the
Jobs' workers verify what they download against.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from synthloop.api.v1alpha1.common import Output, Source
from synthloop.artifacts.promotion import PromotionPointer, read_promotion, split_reference
from synthloop.artifacts.store import WEIGHTS_NAME, ArtifactNotFound
from synthloop.artifacts.uris import join
from synthloop.controllers import reasons as R
from synthloop.controllers.admit import Admitted
from synthloop.controllers.resolve import MODEL_ROLES, Invalid, Resolved, Waiting, resolve_source
from synthloop.controllers.runstate import Lookup, Outcome, RunState, Stop

PARENT_ROLE = "baseline_model"


def uris(inputs: dict[str, Resolved]) -> dict[str, str]:
    """Role -> URI of the resolved inputs plus the extra roles they bring (a data set's sft/preference)."""
    out = {r: v.uri for r, v in inputs.items()}
    extra: dict[str, str] = {}
    for res in inputs.values():
        for role, uri in res.extra.items():
            extra.setdefault(role, uri)
    return out | extra


def _age(run: RunState) -> timedelta:
    try:
        created = datetime.strptime(str(run.created), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return timedelta(0)
    return run.now - created


def _promotion(run: RunState, ref: str) -> PromotionPointer | None:
    """The pointer ``promoted: ref`` names, as this namespace may see it (None: not yet)."""
    namespace, name = split_reference(ref, namespace=run.namespace)
    pointer = read_promotion(run.store, bucket=run.config.bucket, namespace=namespace, name=name)
    return pointer if pointer is not None and pointer.readable_by(run.namespace) else None


def _shared_promotion(run: RunState, ref: str) -> PromotionPointer | Waiting:
    """Another namespace's promotion: usable only when its producer shared it with this one."""
    namespace, name = split_reference(ref, namespace=run.namespace)
    if namespace == run.namespace:
        pointer = _promotion(run, ref)
        return pointer or Waiting(R.WAITING_FOR_PROMOTION, f"waiting for promotion {name}")
    pointer = read_promotion(run.store, bucket=run.config.bucket, namespace=namespace, name=name)
    if pointer is None:
        return Waiting(R.WAITING_FOR_PROMOTION,
                       f"waiting for promotion {ref}: namespace {namespace} has promoted nothing as {name} yet")
    if not pointer.readable_by(run.namespace):
        return Waiting(R.PROMOTION_NOT_SHARED,
                       f"promotion {ref} is not shared with namespace {run.namespace}: its producer "
                       f"({pointer.source}) must list {run.namespace} in spec.promotion.shareWith")
    return pointer


def _exists(run: RunState, uri: str) -> bool:
    try:
        if uri.endswith("/"):
            return bool(run.store.list(uri))
        return run.store.exists(uri) or bool(run.store.list(uri.rstrip("/") + "/"))
    except ArtifactNotFound:
        return False


def resolve(run: RunState, role: str, source: Source, lookup: Lookup) -> Resolved | Waiting | Invalid:
    """One source, as this namespace may see it."""
    if source.promoted is not None and "/" in source.promoted:
        shared = _shared_promotion(run, source.promoted)
        if not isinstance(shared, PromotionPointer):
            return shared
    return resolve_source(
        source, role=role, lookup=lookup,
        promotion=lambda ref: _promotion(run, ref),
        exists=lambda uri: _exists(run, uri), allow_missing_ref=_age(run) < run.rec.ref_grace,
    )


def _needs_parent(adm: Admitted) -> bool:
    ev = adm.plugin.evaluation(adm.spec)
    if ev is None:
        return False
    return any(g.must_beat_parent for g in ev.gates) or any(s.type == "rewardWinRate" for s in ev.suites)


def _wait(run: RunState, waiting: list[Waiting]) -> Stop:
    message = "; ".join(w.message for w in waiting)
    run.cond("InputsReady", False, waiting[0].reason, message)
    run.status.phase = "WaitingForInputs"
    run.status.stage = None
    if run.old.phase != "WaitingForInputs":
        run.event("Normal", waiting[0].reason, message)
    return Stop(Outcome("waiting", message))


def resolve_inputs(run: RunState, adm: Admitted) -> dict[str, Resolved]:
    """Every input (and the parent a gate or a win rate compares with), or stop the pass waiting."""
    resolved: dict[str, Resolved] = {}
    waiting: list[Waiting] = []

    def take(role: str, source: Source) -> None:
        res = resolve(run, role, source, adm.lookup)
        if isinstance(res, Invalid):
            raise run.fail(res.reason, res.message)
        if isinstance(res, Waiting):
            waiting.append(res)
        else:
            resolved[role] = res

    for role, source in adm.plugin.inputs(adm.spec):
        take(role, source)
    if not waiting and _needs_parent(adm):
        parent = adm.plugin.parent_source(adm.spec, adm.lookup)
        if parent is None:
            ev = adm.plugin.evaluation(adm.spec)
            if ev is not None and any(g.must_beat_parent for g in ev.gates):
                raise run.fail(
                    R.INVALID_SPEC,
                    "spec.evaluation.gates: mustBeatParent needs a parent model: set spec.parent, "
                    "or take spec.data from a SynthRound (its generator is the parent)",
                )
        else:
            take(PARENT_ROLE, parent)
    if waiting:
        raise _wait(run, waiting)
    run.cond("InputsReady", True, R.RESOLVED,
             ", ".join(f"{r} from {v.source}" for r, v in sorted(resolved.items())) or "no inputs")
    run.status.inputs = [Output(name=role, uri=r.uri, sha256=r.sha256, size=r.size)
                         for role, r in sorted(resolved.items())]
    for r in resolved.values():
        run.expected.update(r.checksums)
        if r.sha256 and r.uri.endswith("/") and r.role in MODEL_ROLES:
            run.expected[join(r.uri, WEIGHTS_NAME)] = r.sha256  # a model's sha256 is its weights'
        elif r.sha256 and not r.uri.endswith("/"):
            run.expected[r.uri] = r.sha256
    return resolved
