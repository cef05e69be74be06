"""Whole reconcile passes against an in-memory API server and a directory-backed object store.

The real apiserver and MinIO are exercised by tests/integration/test_operator*.py; here the
pass's decisions (which Job next, when a stage counts as done, gates, promotion, failure
reasons, status written only on change) are checked in milliseconds. The two stand-ins
(tests/fakes.py, shared with bench/) implement exactly the calls the operator makes
(``Cluster``'s methods and the store backend).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from synthloop.artifacts.manifest import ArtifactRef, Manifest, write_manifest
from synthloop.artifacts.promotion import read_promotion
from synthloop.artifacts.store import ArtifactStore
from synthloop.artifacts.uris import join
from synthloop.controllers import reasons as R
from synthloop.controllers.config import OperatorConfig
from synthloop.controllers.reconcile import Reconciler
from tests.fakes import ApiServer, DirBackend

pytestmark = pytest.mark.unit
NS = "team"


def worker_config(api: ApiServer, job: str) -> dict[str, Any]:
    env = api.jobs[job]["spec"]["template"]["spec"]["containers"][0]["env"]
    raw = next(e["value"] for e in env if e["name"] == "SYNTHLOOP_WORKER_CONFIG")
    config: dict[str, Any] = json.loads(raw)
    return config


def write_run(store: ArtifactStore, prefix: str, files: dict[str, bytes], *, task: str,
              metrics: dict[str, float] | None = None, counts: dict[str, int] | None = None) -> None:
    """What a worker leaves behind: its outputs, then the manifest last (``counts``: metrics.json's)."""
    outputs = [ArtifactRef.of(store.put_bytes(join(prefix, rel), data), role=rel.split("/")[0].split(".")[0])
               for rel, data in files.items()]
    if metrics is not None:
        store.put_json(join(prefix, "metrics.json"), {"metrics": metrics, "counts": counts or {}})
    write_manifest(store, prefix, Manifest(task=task, outputs=outputs, metrics=metrics or {}, counts={"rows": 3}))


@pytest.fixture
def env(tmp_path: Path) -> tuple[ApiServer, ArtifactStore, Reconciler]:
    api = ApiServer()
    store = ArtifactStore(s3=DirBackend(tmp_path))  # type: ignore[arg-type]
    rec = Reconciler(cluster=api, store=store,  # type: ignore[arg-type]
                     config=OperatorConfig(s3_endpoint="minio:9000"), ref_grace_seconds=30)
    return api, store, rec


SYNTH = {"generator": {"model": {"uri": "s3://synthloop/models/gen/"}, "backend": "transformers"},
         "prompts": {"math": 4}, "shards": 2, "resources": {"gpusPerNode": 0}}
ALIGN = {"baseModel": {"uri": "s3://synthloop/models/base/"}, "data": {"fromRef": {"kind": "SynthRound", "name": "r1"}},
         "stages": [{"type": "sft"}, {"type": "dpo", "beta": 0.1}],
         "evaluation": {"suites": [{"type": "ifeval"}], "gates": [{"metric": "ifeval.prompt_strict", "min": 0.5}]},
         "promotion": {"name": "interm-1"}}


def run_synth(api: ApiServer, store: ArtifactStore, rec: Reconciler) -> None:
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    api.add("SynthRound", "r1", SYNTH)
    assert rec.reconcile("SynthRound", NS, "r1").state == "running"
    assert list(api.jobs) == ["r1-synth"]
    cfg = worker_config(api, "r1-synth")
    for i in range(2):
        write_run(store, join(cfg["output"], "shards", f"{i:05d}"), {"sft.jsonl": b"a\n"}, task="synth")
    api.finish("r1-synth")
    assert rec.reconcile("SynthRound", NS, "r1").state == "running"
    assert list(api.jobs) == ["r1-synth", "r1-merge"]
    write_run(store, cfg["output"], {"sft.jsonl": b"s\n", "preference.jsonl": b"p\n"}, task="synth-merge")
    api.finish("r1-merge")


def test_synthround_runs_shards_then_merge_and_lists_verified_outputs(env: Any) -> None:
    api, store, rec = env
    run_synth(api, store, rec)
    assert rec.reconcile("SynthRound", NS, "r1").state == "done"
    st = api.status("SynthRound", "r1")
    assert st["phase"] == "Succeeded"
    outs = {o["name"]: o for o in st["outputs"]}
    assert outs["sft"]["uri"].endswith("/r1/uid-r1/synth/sft.jsonl") and outs["sft"]["size"] == 2
    assert len(outs["sft"]["sha256"]) == 64
    assert {"data", "preference", "manifest:synth", "manifest:merge"} <= set(outs)
    assert st["counts"] == {"rows": 3}
    # Level-triggered and idempotent: another pass changes nothing and writes nothing.
    writes = api.status_writes
    assert rec.reconcile("SynthRound", NS, "r1").state == "done"
    assert api.status_writes == writes and len(api.jobs) == 2


def test_a_job_that_succeeded_without_a_manifest_fails_the_run(env: Any) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    api.add("SynthRound", "r1", SYNTH)
    rec.reconcile("SynthRound", NS, "r1")
    api.finish("r1-synth")  # e.g. pods on a KWOK node: "Succeeded" but nothing ran
    assert rec.reconcile("SynthRound", NS, "r1").state == "failed"
    failed = api.condition("SynthRound", "r1", "Failed")
    assert failed["status"] == "True" and failed["reason"] == R.MANIFEST_INVALID
    assert "shards/00000/manifest.json does not exist" in failed["message"]


def test_failed_job_fails_the_cr_with_the_job_controllers_reason(env: Any) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    api.add("SynthRound", "r1", SYNTH)
    rec.reconcile("SynthRound", NS, "r1")
    api.finish("r1-synth", ok=False)
    assert rec.reconcile("SynthRound", NS, "r1").state == "failed"
    failed = api.condition("SynthRound", "r1", "Failed")
    assert failed["reason"] == R.JOB_FAILED and "BackoffLimitExceeded" in failed["message"]
    assert api.status("SynthRound", "r1")["phase"] == "Failed"
    assert ("r1", R.JOB_FAILED) in [(n, r) for n, r, _ in api.events]


def test_alignjob_waits_for_its_data_then_runs_stages_in_order_evaluates_and_promotes(env: Any) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    api.add("AlignJob", "a1", ALIGN)
    api.add("SynthRound", "r1", SYNTH)
    assert rec.reconcile("AlignJob", NS, "a1").state == "waiting"
    inputs = api.condition("AlignJob", "a1", "InputsReady")
    assert (inputs["status"], inputs["reason"]) == ("False", R.WAITING_FOR_PRODUCER)
    assert inputs["message"] == "waiting for SynthRound r1 to succeed (it is Pending)"
    assert api.status("AlignJob", "a1")["phase"] == "WaitingForInputs"
    run_synth(api, store, rec)
    rec.reconcile("SynthRound", NS, "r1")  # succeeds, and wakes the waiting AlignJob
    assert "a1-sft-0" in api.jobs
    sft = worker_config(api, "a1-sft-0")
    assert sft["inputs"]["model"] == "s3://synthloop/models/base/"
    assert sft["inputs"]["sft"].endswith("/synth/sft.jsonl")
    write_run(store, sft["output"], {"model/model.safetensors": b"w1", "model/config.json": b"{}"}, task="align")
    api.finish("a1-sft-0")
    rec.reconcile("AlignJob", NS, "a1")
    dpo = worker_config(api, "a1-dpo-1")
    assert dpo["inputs"]["model"] == sft["output"] + "model/"
    write_run(store, dpo["output"], {"model/model.safetensors": b"w2"}, task="align")
    api.finish("a1-dpo-1")
    assert rec.reconcile("AlignJob", NS, "a1").state == "running"
    assert api.status("AlignJob", "a1")["phase"] == "Evaluating"
    ev = worker_config(api, "a1-eval")
    assert ev["task"] == "eval" and ev["inputs"]["model"] == dpo["output"] + "model/"
    write_run(store, ev["output"], {}, task="eval", metrics={"ifeval.prompt_strict": 0.75})
    api.finish("a1-eval")
    assert rec.reconcile("AlignJob", NS, "a1").state == "done"
    st = api.status("AlignJob", "a1")
    assert (st["phase"], st["promotedAs"], st["keyMetric"]) == ("Promoted", "interm-1", "ifeval.prompt_strict=0.75")
    assert api.condition("AlignJob", "a1", "Promoted")["status"] == "True"
    pointer = read_promotion(store, bucket="synthloop", namespace=NS, name="interm-1")
    assert pointer is not None and pointer.model_uri == dpo["output"] + "model/"
    assert pointer.metrics == {"ifeval.prompt_strict": 0.75} and len(pointer.model_sha256) == 64
    assert pointer.source == f"{NS}/AlignJob/a1/uid-a1"


def test_eval_counts_go_into_status_counts_beside_the_training_counts(env: Any) -> None:
    """How many items each metric was scored over (metrics.json's counts) is status.counts' ``eval.<metric>``."""
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    run_synth(api, store, rec)
    rec.reconcile("SynthRound", NS, "r1")
    api.add("AlignJob", "a1", ALIGN)
    for stage in ("sft-0", "dpo-1"):
        rec.reconcile("AlignJob", NS, "a1")
        cfg = worker_config(api, f"a1-{stage}")
        write_run(store, cfg["output"], {"model/model.safetensors": b"w"}, task="align")
        api.finish(f"a1-{stage}")
    rec.reconcile("AlignJob", NS, "a1")
    ev = worker_config(api, "a1-eval")
    write_run(store, ev["output"], {}, task="eval", metrics={"ifeval.prompt_strict": 0.75, "mc.colors.acc": 0.5},
              counts={"ifeval.prompt_strict": 32, "mc.colors.acc": 40})
    api.finish("a1-eval")
    assert rec.reconcile("AlignJob", NS, "a1").state == "done"
    st = api.status("AlignJob", "a1")
    assert st["counts"] == {"rows": 3, "eval.ifeval.prompt_strict": 32, "eval.mc.colors.acc": 40}
    writes = api.status_writes
    assert rec.reconcile("AlignJob", NS, "a1").state == "done" and api.status_writes == writes


def test_a_failed_gate_rejects_and_the_next_round_keeps_waiting_saying_why(env: Any) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    run_synth(api, store, rec)
    rec.reconcile("SynthRound", NS, "r1")
    api.add("AlignJob", "a1", ALIGN)
    api.add("SynthRound", "r2", {**SYNTH, "generator": {"model": {"promoted": "interm-1"}, "backend": "transformers"}})
    for stage in ("sft-0", "dpo-1"):
        rec.reconcile("AlignJob", NS, "a1")
        cfg = worker_config(api, f"a1-{stage}")
        write_run(store, cfg["output"], {"model/model.safetensors": b"w"}, task="align")
        api.finish(f"a1-{stage}")
    rec.reconcile("AlignJob", NS, "a1")
    write_run(store, worker_config(api, "a1-eval")["output"], {}, task="eval", metrics={"ifeval.prompt_strict": 0.25})
    api.finish("a1-eval")
    assert rec.reconcile("AlignJob", NS, "a1").state == "done"
    promoted = api.condition("AlignJob", "a1", "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("False", R.GATE_FAILED)
    assert promoted["message"] == "ifeval.prompt_strict = 0.25, needs >= 0.5"
    assert api.status("AlignJob", "a1")["phase"] == "Rejected"
    assert read_promotion(store, bucket="synthloop", namespace=NS, name="interm-1") is None
    assert rec.reconcile("SynthRound", NS, "r2").state == "waiting"
    msg = api.condition("SynthRound", "r2", "InputsReady")["message"]
    assert msg.startswith("waiting for promotion interm-1 (AlignJob a1 is Rejected: ifeval.prompt_strict = 0.25")
    assert not any(j.startswith("r2-") for j in api.jobs)


def test_must_beat_parent_uses_the_generators_promotion_metrics_or_evaluates_the_parent(env: Any) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    run_synth(api, store, rec)
    rec.reconcile("SynthRound", NS, "r1")
    spec = copy.deepcopy(ALIGN)
    spec["stages"] = [{"type": "sft"}]
    spec["evaluation"]["gates"] = [{"metric": "ifeval.prompt_strict", "mustBeatParent": True}]
    api.add("AlignJob", "a1", spec)
    rec.reconcile("AlignJob", NS, "a1")
    write_run(store, worker_config(api, "a1-sft-0")["output"], {"model/model.safetensors": b"w"}, task="align")
    api.finish("a1-sft-0")
    rec.reconcile("AlignJob", NS, "a1")
    ev = worker_config(api, "a1-eval")
    assert ev["inputs"]["baseline_model"] == "s3://synthloop/models/gen/"  # the round's generator
    write_run(store, ev["output"], {}, task="eval", metrics={"ifeval.prompt_strict": 0.4})
    api.finish("a1-eval")
    rec.reconcile("AlignJob", NS, "a1")
    # The generator came from a uri (no known metrics): an eval-parent Job evaluates it.
    parent = worker_config(api, "a1-eval-parent")
    assert parent["inputs"]["model"] == "s3://synthloop/models/gen/"
    write_run(store, parent["output"], {}, task="eval", metrics={"ifeval.prompt_strict": 0.5})
    api.finish("a1-eval-parent")
    rec.reconcile("AlignJob", NS, "a1")
    assert api.condition("AlignJob", "a1", "Promoted")["message"] == "ifeval.prompt_strict = 0.4, must beat parent's 0.5"


@pytest.mark.parametrize(("mutate", "reason", "text"), [
    (lambda api: api.secrets.clear(), R.SECRET_MISSING, "Secret synthloop-minio"),
    (lambda api: api.crs[("AlignJob", "a1")]["spec"].update(resources={"profile": "gb200"}), R.PROFILE_MISSING,
     "'gb200' is not configured"),
    (lambda api: api.crs[("AlignJob", "a1")]["spec"]["stages"].append({"type": "rpo", "beta": 0.1}), R.INVALID_SPEC,
     "spec.stages[2]: rpo stages need a reference policy"),
    (lambda api: api.add("SynthRound", "r1", {**SYNTH, "generator": {
        "model": {"fromRef": {"kind": "AlignJob", "name": "a1"}}, "backend": "transformers"}}), R.REF_CYCLE,
     "AlignJob/a1 -> SynthRound/r1 -> AlignJob/a1"),
    (lambda api: None, R.REF_NOT_FOUND, "SynthRound r1 does not exist"),
])
def test_semantic_errors_fail_with_their_reason_and_no_job(env: Any, mutate: Any, reason: str, text: str) -> None:
    api, _, rec = env
    api.add("AlignJob", "a1", copy.deepcopy(ALIGN))
    mutate(api)
    assert rec.reconcile("AlignJob", NS, "a1").state == "failed"
    failed = api.condition("AlignJob", "a1", "Failed")
    assert failed["reason"] == reason and text in failed["message"], failed
    assert api.status("AlignJob", "a1")["phase"] == "Failed" and not api.jobs
    # Terminal: a later pass does nothing (no retry loop) until the spec changes.
    writes = api.status_writes
    assert rec.reconcile("AlignJob", NS, "a1").state == "failed"
    assert api.status_writes == writes


def test_a_missing_ref_is_waited_for_while_the_object_is_young(env: Any) -> None:
    api, _, rec = env
    api.add("AlignJob", "a1", copy.deepcopy(ALIGN), age_s=1)
    assert rec.reconcile("AlignJob", NS, "a1").state == "waiting"
    # Every input it waits for is named, not just the first.
    assert api.condition("AlignJob", "a1", "InputsReady")["message"] == (
        "waiting for artifact s3://synthloop/models/base/ (model) to exist; waiting for SynthRound r1 to exist")


def test_kueue_suspended_job_is_reported_as_queued(env: Any) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    api.add("SynthRound", "r1", {**SYNTH, "resources": {"queue": "synth"}})
    rec.reconcile("SynthRound", NS, "r1")
    assert api.jobs["r1-synth"]["spec"]["suspend"] is True
    assert rec.reconcile("SynthRound", NS, "r1").state == "running"
    running = api.condition("SynthRound", "r1", "Running")
    assert running["reason"] == R.JOB_SUSPENDED and "Kueue queue synth" in running["message"]


def test_a_restarted_operator_creates_no_duplicate_jobs_and_keeps_status(env: Any, tmp_path: Path) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    api.add("SynthRound", "r1", SYNTH)
    rec.reconcile("SynthRound", NS, "r1")
    before = api.status("SynthRound", "r1")
    fresh = Reconciler(cluster=api, store=store, config=OperatorConfig(s3_endpoint="minio:9000"))  # type: ignore[arg-type]
    api.jobs["r1-synth"]["status"] = {"active": 2, "startTime": "2026-01-01T00:00:00Z"}
    assert fresh.reconcile("SynthRound", NS, "r1").state == "running"
    assert list(api.jobs) == ["r1-synth"]
    after = api.status("SynthRound", "r1")
    assert after["startedAt"] == before["startedAt"] and after["attempts"] == 2
    assert after["progress"] == "0/2 shards" and after["gpuHours"] == 0.0


def test_the_typed_status_keeps_what_the_pass_does_not_own_and_writes_only_changes(env: Any) -> None:
    """The pass builds the API's Status model; keys it does not know (another controller's) stay."""
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    api.add("SynthRound", "r1", SYNTH)
    api.crs[("SynthRound", "r1")]["status"] = {"phase": "Pending", "argocd.example/note": "kept"}
    assert rec.reconcile("SynthRound", NS, "r1").state == "running"
    st = api.status("SynthRound", "r1")
    assert st["argocd.example/note"] == "kept" and st["phase"] == "Running" and st["runId"] == "uid-r1"
    assert "keyMetric" not in st and "promotedAs" not in st  # unset fields stay out of the CR
    rec.reconcile("SynthRound", NS, "r1")  # the Job is running now: the Running condition says so
    writes = api.status_writes
    assert rec.reconcile("SynthRound", NS, "r1").state == "running" and api.status_writes == writes
    assert api.status("SynthRound", "r1")["argocd.example/note"] == "kept"
