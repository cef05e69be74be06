"""Reconcile decisions that are pure functions: input resolution, cycles, Job state, status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from synthloop.api.v1alpha1.common import Source
from synthloop.artifacts.promotion import PromotionPointer
from synthloop.controllers import reasons as R
from synthloop.controllers.conditions import get_condition, set_condition
from synthloop.controllers.config import ConfigError, load_config
from synthloop.controllers.resolve import (
    Invalid,
    Resolved,
    Waiting,
    find_cycle,
    iter_refs,
    resolve_source,
)
from synthloop.controllers.status import (
    attempts,
    gpu_hours,
    job_failure,
    job_state,
    progress_from_reports,
    status_patch,
)

pytestmark = pytest.mark.unit


class Namespace:
    """The synthloop objects of one namespace, as the operator lists them (plain dicts)."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        self.bodies = {(b["kind"], b["metadata"]["name"]): b for b in bodies}

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.bodies.get((kind, name))

    def list(self, kind: str) -> list[dict[str, Any]]:
        return [b for (k, _), b in self.bodies.items() if k == kind]


def cr(kind: str, name: str, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name}, "spec": spec or {}, "status": status or {}}


def resolve(source: dict[str, Any], ns: Namespace, *, role: str = "model", pointers: dict[str, PromotionPointer] | None = None,
            existing: set[str] = frozenset(), grace: bool = False) -> Any:  # type: ignore[assignment]
    return resolve_source(Source.model_validate(source), role=role, lookup=ns,
                          promotion=lambda n: (pointers or {}).get(n), exists=lambda u: u in existing,
                          allow_missing_ref=grace)


def test_from_ref_waits_until_the_producer_succeeded_then_uses_its_outputs() -> None:
    running = cr("SynthRound", "round-2", status={"phase": "Running"})
    res = resolve({"fromRef": {"kind": "SynthRound", "name": "round-2"}}, Namespace(running), role="data")
    assert isinstance(res, Waiting) and res.reason == R.WAITING_FOR_PRODUCER
    assert res.message == "waiting for SynthRound round-2 to succeed (it is Running)"
    done = cr("SynthRound", "round-2", status={"phase": "Succeeded", "outputs": [
        {"name": "data", "uri": "s3://b/r2/synth/", "sha256": "d1", "size": 10},
        {"name": "sft", "uri": "s3://b/r2/synth/sft.jsonl", "sha256": "s1", "size": 4},
        {"name": "preference", "uri": "s3://b/r2/synth/preference.jsonl", "sha256": "p1", "size": 6},
    ]})
    res = resolve({"fromRef": {"kind": "SynthRound", "name": "round-2"}}, Namespace(done), role="data")
    assert isinstance(res, Resolved)
    assert (res.uri, res.sha256, res.extra) == ("s3://b/r2/synth/", "d1", {
        "sft": "s3://b/r2/synth/sft.jsonl", "preference": "s3://b/r2/synth/preference.jsonl"})


def test_a_rejected_producer_keeps_its_consumer_waiting() -> None:
    rejected = cr("AlignJob", "align-1", status={"phase": "Rejected", "outputs": [{"name": "model", "uri": "s3://m/"}]})
    res = resolve({"fromRef": {"kind": "AlignJob", "name": "align-1"}}, Namespace(rejected))
    assert isinstance(res, Waiting) and "it is Rejected" in res.message


def test_missing_ref_waits_within_the_grace_period_then_fails() -> None:
    src = {"fromRef": {"kind": "RewardTrain", "name": "reward-9"}}
    assert isinstance(resolve(src, Namespace(), grace=True), Waiting)
    res = resolve(src, Namespace(), grace=False)
    assert isinstance(res, Invalid) and res.reason == R.REF_NOT_FOUND
    assert "RewardTrain reward-9 does not exist" in res.message


def test_promoted_waits_for_the_pointer_and_names_the_rejected_promoter() -> None:
    align = cr("AlignJob", "align-1", spec={"promotion": {"name": "interm-1"}}, status={
        "phase": "Rejected",
        "conditions": [{"type": "Promoted", "status": "False", "message": "ifeval.prompt_strict = 0.1, needs >= 0.7"}]})
    res = resolve({"promoted": "interm-1"}, Namespace(align))
    assert isinstance(res, Waiting) and res.reason == R.WAITING_FOR_PROMOTION
    assert res.message == ("waiting for promotion interm-1 (AlignJob align-1 is Rejected: "
                           "ifeval.prompt_strict = 0.1, needs >= 0.7)")
    pointer = PromotionPointer(name="interm-1", model_uri="s3://b/m/", model_sha256="ab", manifest_uri="s3://b/man",
                               source="ns/AlignJob/align-1/u", metrics={"acc": 0.5})
    res = resolve({"promoted": "interm-1"}, Namespace(align), pointers={"interm-1": pointer})
    assert isinstance(res, Resolved) and res.uri == "s3://b/m/" and res.metrics == {"acc": 0.5}


def test_uri_waits_until_the_artifact_exists() -> None:
    res = resolve({"uri": "s3://b/models/mixtral/"}, Namespace())
    assert isinstance(res, Waiting) and res.reason == R.WAITING_FOR_ARTIFACT
    res = resolve({"uri": "s3://b/models/mixtral/"}, Namespace(), existing={"s3://b/models/mixtral/"})
    assert isinstance(res, Resolved) and res.source == "uri"


def test_cycles_of_references_are_found_through_existing_objects() -> None:
    a = cr("AlignJob", "a", spec={"baseModel": {"fromRef": {"kind": "AlignJob", "name": "b"}}})
    b = cr("AlignJob", "b", spec={"evaluation": {"gates": [{"metric": "m", "maxRegression": 0.1,
                                                            "baseline": {"fromRef": {"kind": "AlignJob", "name": "a"}}}]}})
    ns = Namespace(a, b)
    assert find_cycle("AlignJob", "a", a["spec"], ns) == ["AlignJob/a", "AlignJob/b", "AlignJob/a"]
    c = cr("AlignJob", "c", spec={"baseModel": {"fromRef": {"kind": "AlignJob", "name": "b"}}})
    assert find_cycle("AlignJob", "c", c["spec"], Namespace(a, b, c)) is None
    assert list(iter_refs(b["spec"])) == [("AlignJob", "a")]


def job(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "r-synth"}, "spec": {"parallelism": 2, "backoffLimit": 2, "template": {"spec": {
        "containers": [{"resources": {"limits": {"nvidia.com/gpu": "8"}}}]}}}, "status": status}


def test_job_state_and_failure_message() -> None:
    assert job_state(None) == "missing"
    assert job_state(job(active=2)) == "running"
    suspended = job()
    suspended["spec"]["suspend"] = True
    assert job_state(suspended) == "suspended"
    assert job_state(job(conditions=[{"type": "Complete", "status": "True"}])) == "complete"
    failed = job(failed=3, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                        "message": "Job has reached the specified backoff limit"}])
    assert job_state(failed) == "failed"
    assert job_failure(failed) == ("Job r-synth failed (BackoffLimitExceeded: Job has reached the specified "
                                   "backoff limit) after 3 failed pod(s), backoffLimit 2")


def test_gpu_hours_and_attempts() -> None:
    done = job(startTime="2026-01-01T00:00:00Z", completionTime="2026-01-01T00:30:00Z", succeeded=2, failed=1)
    running = job(startTime="2026-01-01T00:00:00Z", active=2)
    now = datetime(2026, 1, 1, 1, 0, tzinfo=UTC)
    assert gpu_hours([done], now=now) == 8.0  # 2 pods x 8 GPUs x 0.5 h
    assert gpu_hours([done, running], now=now) == 24.0
    assert attempts([done, running]) == 5


def test_conditions_keep_transition_time_unless_status_flips() -> None:
    conds = set_condition([], "Running", True, R.JOB_CREATED, "a", now="t1")
    conds = set_condition(conds, "Running", True, R.JOB_RUNNING, "b", now="t2")
    assert get_condition(conds, "Running") == {"type": "Running", "status": "True", "reason": R.JOB_RUNNING,
                                               "message": "b", "lastTransitionTime": "t1", "observedGeneration": 0}
    conds = set_condition(conds, "Running", False, R.STAGES_COMPLETE, now="t3")
    assert get_condition(conds, "Running")["lastTransitionTime"] == "t3"  # type: ignore[index]
    conds = set_condition(conds, "Failed", False, R.NO_FAILURE, now="t3")
    conds = set_condition(conds, "InputsReady", True, R.RESOLVED, now="t3")
    assert [c["type"] for c in conds] == ["InputsReady", "Running", "Failed"]
    with pytest.raises(ValueError, match="condition type 'Done'"):
        set_condition(conds, "Done", True, "x", now="t")


def test_status_patch_only_when_changed_and_nulls_removed_keys() -> None:
    old = {"phase": "Running", "stage": "synth", "progress": "1/2 shards"}
    assert status_patch(old, dict(old)) is None
    assert status_patch(old, {"phase": "Succeeded", "progress": "1/2 shards"}) == {"phase": "Succeeded", "stage": None}


def test_progress_sums_reports() -> None:
    p = progress_from_reports([{"done": 3, "total": 10}, {"done": 10, "total": 10}], unit="items")
    assert p is not None and p.text() == "13/20 items"
    assert progress_from_reports([], unit="steps") is None


def test_operator_config_from_env(tmp_path: Any) -> None:
    cfg = load_config({})
    assert (cfg.bucket, cfg.s3_secret, cfg.profiles.default) == ("synthloop", "synthloop-minio", "dgx-h100")
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("default: local\nprofiles: {local: {nodeSelector: {kubernetes.io/hostname: local-dgx-0}}}\n")
    cfg = load_config({"SYNTHLOOP_PROFILES": str(profiles), "SYNTHLOOP_NAMESPACES": "a, b",
                       "SYNTHLOOP_S3_ENDPOINT": "http://127.0.0.1:29000", "SYNTHLOOP_TRAINER_IMAGE": "t:1"})
    assert cfg.namespaces == ("a", "b") and cfg.s3_endpoint == "127.0.0.1:29000"
    assert cfg.profiles.get(None).node_selector == {"kubernetes.io/hostname": "local-dgx-0"}
    assert cfg.image_for("AlignJob") == "t:1" and cfg.image_for("SynthRound") == "ghcr.io/synthloop/synth:0.1.0"
    assert load_config({"SYNTHLOOP_WORKER_IMAGE": "w:2"}).image_for("PretrainJob") == "w:2"
    with pytest.raises(ConfigError, match="SYNTHLOOP_PROFILES=/nope: no such file"):
        load_config({"SYNTHLOOP_PROFILES": "/nope"})
    with pytest.raises(ConfigError, match="SYNTHLOOP_RESYNC_SECONDS"):
        load_config({"SYNTHLOOP_RESYNC_SECONDS": "soon"})
