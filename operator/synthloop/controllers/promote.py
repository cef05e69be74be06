"""The last step of a pass, gate and promote: Rejected when a gate failed, else Succeeded, or
Promoted with the promotion pointer written (unless another run holds the name).

Read-decide-write of a pointer is serialised per name in this process
(``Reconciler.promotion_lock``); ``may_replace`` decides between runs.
"""

from __future__ import annotations

from synthloop.artifacts.manifest import MANIFEST_NAME, Manifest
from synthloop.artifacts.promotion import (
    PromotionPointer,
    may_replace,
    read_promotion,
    write_promotion,
)
from synthloop.artifacts.uris import join, promotion_uri
from synthloop.builders.stages import StagePlan
from synthloop.controllers import reasons as R
from synthloop.controllers.admit import Admitted
from synthloop.controllers.evaluate import Evaluated
from synthloop.controllers.plugin import model_output
from synthloop.controllers.runstate import Outcome, RunState


def _key_metric(run: RunState, adm: Admitted, metrics: dict[str, float]) -> None:
    ev = adm.plugin.evaluation(adm.spec)
    gates = list(ev.gates) if ev is not None else []
    key = gates[0].metric if gates else min(metrics)
    if key in metrics:
        run.status.key_metric = f"{key}={metrics[key]:.4g}"


def finish(run: RunState, adm: Admitted, evaluated: Evaluated | None, *, plans: list[StagePlan],
           manifests: dict[str, list[Manifest]]) -> Outcome:
    st = run.status
    st.stage = None
    st.progress = None
    metrics = evaluated.metrics if evaluated is not None else None
    report = evaluated.report if evaluated is not None else None
    if metrics:
        _key_metric(run, adm, metrics)
    if not st.finished_at:
        st.finished_at = run.now_s
    promotion = adm.plugin.promotion(adm.spec)
    if report is not None and not report.passed:
        run.cond("Promoted", False, R.GATE_FAILED, report.message)
        st.phase = "Rejected"
        if run.old.phase != "Rejected":
            run.event("Warning", R.GATE_FAILED, report.message)
        return Outcome("done", report.message)
    if promotion is None:
        run.cond("Promoted", False, R.NO_PROMOTION,
                 "gates passed; spec.promotion is not set" if report else "spec.promotion is not set")
        st.phase = "Succeeded"
        if run.old.phase != "Succeeded":
            run.event("Normal", "Succeeded", f"{run.kind} {run.name} succeeded")
        return Outcome("done", "succeeded")
    last = plans[-1]
    sha, _ = model_output(manifests[last.stage][0], last.model_uri)
    pointer = PromotionPointer(
        name=promotion.name, model_uri=last.model_uri, model_sha256=sha,
        manifest_uri=join(last.output, MANIFEST_NAME),
        source=f"{run.namespace}/{run.kind}/{run.name}/{run.uid}",
        metrics=metrics or {}, promoted_at=run.now_s,
        namespace=run.namespace, shared_with=sorted(set(promotion.share_with)),
    )
    passed = report is not None and report.passed and bool(report.results)
    with run.rec.promotion_lock(run.namespace, promotion.name):
        existing = read_promotion(run.store, bucket=run.config.bucket, namespace=run.namespace, name=promotion.name)
        decision = may_replace(existing, pointer, gates_passed=passed, replace=promotion.replace)
        if decision.write:
            write_promotion(run.store, bucket=run.config.bucket, pointer=pointer)
    if not decision.write and decision.reason != "own":
        run.cond("Promoted", False, R.PROMOTION_HELD, decision.reason)
        st.phase = "Succeeded"
        if run.old.phase != "Succeeded":
            run.event("Warning", R.PROMOTION_HELD, decision.reason)
        return Outcome("done", decision.reason)
    uri = promotion_uri(bucket=run.config.bucket, namespace=run.namespace, name=promotion.name)
    message = f"promoted as {promotion.name} ({uri})"
    if report is not None and report.results:
        message += ": " + report.message
    run.cond("Promoted", True, R.GATES_PASSED, message)
    st.phase = "Promoted"
    st.promoted_as = promotion.name
    if run.old.phase != "Promoted":
        run.event("Normal", "Promoted", message)
    return Outcome("done", message)
