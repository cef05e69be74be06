"""Step 4 of a pass, evaluate: the trained model's eval stage, and the reference models' (the
parent, a gate's baseline) when their metrics are not known yet; then the gates.

A reference whose metrics are known (a promotion pointer's, a producer's status) is not
evaluated again. The trained model's eval also reports how many items each metric scored:
they go into ``status.counts`` as ``eval.<metric>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from synthloop.api.v1alpha1.common import Evaluation, Gate, Source
from synthloop.artifacts.manifest import Manifest
from synthloop.artifacts.store import ArtifactNotFound
from synthloop.artifacts.uris import join
from synthloop.builders.stages import StagePlan, eval_stage
from synthloop.controllers import reasons as R
from synthloop.controllers.admit import Admitted
from synthloop.controllers.gates import GateReport, evaluate_gates
from synthloop.controllers.inputs import PARENT_ROLE, resolve, uris
from synthloop.controllers.resolve import Invalid, Resolved
from synthloop.controllers.runstate import RunState
from synthloop.controllers.stagerun import advance

EVAL_COUNT_PREFIX = "eval."


@dataclass(frozen=True)
class Scores:
    """What an eval stage wrote: its metrics and how many items each was computed over."""

    metrics: dict[str, float]
    counts: dict[str, int]


@dataclass(frozen=True)
class Evaluated:
    metrics: dict[str, float]
    report: GateReport


def _reference_metrics(run: RunState, adm: Admitted, source: Source,
                       needed: set[str]) -> tuple[dict[str, float] | None, str]:
    """Known metrics of a reference model (when they cover what the gates need) and its URI."""
    res = resolve(run, PARENT_ROLE, source, adm.lookup)
    if not isinstance(res, Resolved):
        raise run.fail(R.INVALID_SPEC if isinstance(res, Invalid) else res.reason,
                       f"cannot evaluate gates: {res.message}")
    known = res.metrics or {}
    if needed <= set(known):
        return dict(known), res.uri
    return None, res.uri


def scores(run: RunState, plan: StagePlan, manifests: list[Manifest]) -> Scores:
    """``metrics.json`` of an eval stage (its manifest's metrics and counts when it is unreadable)."""
    try:
        doc = run.store.get_json(join(plan.output, "metrics.json"))
    except (ArtifactNotFound, ValueError):
        doc = None
    if isinstance(doc, dict):
        metrics = doc.get("metrics", doc)
        counts = doc.get("counts") if "metrics" in doc else None
        return Scores(
            metrics={str(k): float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
            counts={str(k): int(v) for k, v in (counts or {}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return Scores(metrics={k: float(v) for m in manifests for k, v in m.metrics.items()},
                  counts={k: int(v) for m in manifests for k, v in m.counts.items()})


def evaluate(run: RunState, adm: Admitted, evaluation: Evaluation, inputs: dict[str, Resolved],
             plans: list[StagePlan]) -> Evaluated:
    """Run the eval stages (stopping the pass while one runs), then judge the gates."""
    spec, plugin = adm.spec, adm.plugin
    gates: list[Gate] = list(evaluation.gates)
    gpus = spec.resources.gpus_per_node
    eval_inputs = uris(inputs)
    weights = plugin.reward_weights(spec)

    def stage(name: str, model: str) -> StagePlan:
        return eval_stage(evaluation, prefix=run.prefix, stage=name, model=model, inputs=eval_inputs, gpus=gpus,
                          reward_weights=weights)

    main = stage("eval", plans[-1].model_uri)
    evals: list[tuple[str, StagePlan]] = [("self", main)]
    parent_metrics: dict[str, float] | None = None
    baselines: dict[int, dict[str, float]] = {}
    parent_gates = {g.metric for g in gates if g.must_beat_parent}
    if parent_gates:
        source = plugin.parent_source(spec, adm.lookup)
        assert source is not None  # checked when inputs were resolved
        parent_metrics, uri = _reference_metrics(run, adm, source, parent_gates)
        if parent_metrics is None:
            evals.append(("parent", stage("eval-parent", uri)))
    for i, gate in enumerate(gates):
        if gate.max_regression is None or gate.baseline is None:
            continue
        known, uri = _reference_metrics(run, adm, gate.baseline, {gate.metric})
        if known is None:
            evals.append((f"baseline-{i}", stage(f"eval-baseline-{i}", uri)))
        else:
            baselines[i] = known
    run.cond("Evaluated", False, R.EVALUATING, "running " + ", ".join(p.stage for _, p in evals))
    results: dict[str, Scores] = {}
    for label, plan in evals:
        done = advance(run, adm, plan, evaluating=True)
        results[label] = scores(run, plan, done)
        run.add_outputs(run.verified_outputs)
    own = results["self"]
    if "parent" in results:
        parent_metrics = results["parent"].metrics
    for label, s in results.items():
        if label.startswith("baseline-"):
            baselines[int(label.split("-", 1)[1])] = s.metrics
    run.status.metrics = own.metrics
    run.status.counts = {**run.status.counts, **{EVAL_COUNT_PREFIX + k: v for k, v in sorted(own.counts.items())}}
    run.cond("Evaluated", True, R.EVALUATED, f"{len(own.metrics)} metric(s) from {main.output}metrics.json")
    report = evaluate_gates(gates, own.metrics, parent=parent_metrics, baselines=baselines)
    run.gate_report = report
    return Evaluated(metrics=own.metrics, report=report)
