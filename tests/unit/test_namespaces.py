"""Namespaces are boundaries: per-namespace promotion pointers, explicit sharing, no silent replacement.

Whole passes against the in-memory API server and directory store of test_reconcile_pass; the
integration test (tests/integration/test_namespaces.py) runs the same rules with RoleBindings
on the real apiserver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synthloop.artifacts.promotion import (
    PromotionPointer,
    may_replace,
    read_promotion,
    write_promotion,
)
from synthloop.artifacts.store import ArtifactStore
from synthloop.artifacts.uris import URIError, promotion_uri
from synthloop.controllers import reasons as R
from synthloop.controllers.config import OperatorConfig
from synthloop.controllers.reconcile import Reconciler
from tests.unit.test_reconcile_pass import (
    ALIGN,
    NS,
    SYNTH,
    ApiServer,
    DirBackend,
    run_synth,
    worker_config,
    write_run,
)

pytestmark = pytest.mark.unit
OTHER = "team-b"


@pytest.fixture
def env(tmp_path: Path) -> tuple[ApiServer, ArtifactStore, Reconciler]:
    api = ApiServer()
    store = ArtifactStore(s3=DirBackend(tmp_path))  # type: ignore[arg-type]
    rec = Reconciler(cluster=api, store=store,  # type: ignore[arg-type]
                     config=OperatorConfig(s3_endpoint="minio:9000"), ref_grace_seconds=30)
    return api, store, rec


def pointer(ns: str, source: str, *, shared: list[str] | None = None, model: str = "s3://synthloop/m/") -> PromotionPointer:
    return PromotionPointer(name="interm-1", namespace=ns, model_uri=model, manifest_uri=model + "manifest.json",
                            source=source, shared_with=shared or [])


def test_pointers_live_under_their_namespace() -> None:
    assert promotion_uri(bucket="b", namespace="team-a", name="x") == "s3://b/team-a/promoted/x.json"
    with pytest.raises(URIError, match="needs a namespace"):
        promotion_uri(bucket="b", namespace="", name="x")


def test_only_passed_gates_and_replace_true_replace_another_runs_pointer() -> None:
    mine, theirs = pointer(NS, f"{NS}/AlignJob/a2/u2"), pointer(NS, f"{NS}/AlignJob/a1/u1")
    assert may_replace(None, mine, gates_passed=False, replace=False).write
    assert not may_replace(pointer(NS, mine.source), mine, gates_passed=True, replace=True).write  # own, unchanged
    held = may_replace(theirs, mine, gates_passed=True, replace=False)
    assert not held.write and "already promoted by team/AlignJob/a1/u1" in held.reason and "replace" in held.reason
    no_gates = may_replace(theirs, mine, gates_passed=False, replace=True)
    assert not no_gates.write and "no passed gates" in no_gates.reason
    assert may_replace(theirs, mine, gates_passed=True, replace=True).write


def finish_align(api: ApiServer, store: ArtifactStore, rec: Reconciler, spec: dict[str, Any]) -> None:
    run_synth(api, store, rec)
    rec.reconcile("SynthRound", NS, "r1")
    api.add("AlignJob", "a1", spec)
    for stage in ("sft-0", "dpo-1"):
        rec.reconcile("AlignJob", NS, "a1")
        write_run(store, worker_config(api, f"a1-{stage}")["output"], {"model/model.safetensors": b"w"}, task="align")
        api.finish(f"a1-{stage}")
    rec.reconcile("AlignJob", NS, "a1")
    write_run(store, worker_config(api, "a1-eval")["output"], {}, task="eval", metrics={"ifeval.prompt_strict": 0.9})
    api.finish("a1-eval")
    assert rec.reconcile("AlignJob", NS, "a1").state == "done"


def test_a_promotion_never_replaces_another_runs_pointer_unless_the_spec_says_so(env: Any) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    earlier = pointer(NS, f"{NS}/AlignJob/a0/u0", model="s3://synthloop/earlier/")
    write_promotion(store, bucket="synthloop", pointer=earlier)
    finish_align(api, store, rec, ALIGN)
    promoted = api.condition("AlignJob", "a1", "Promoted")
    assert (promoted["status"], promoted["reason"]) == ("False", R.PROMOTION_HELD)
    assert "already promoted by team/AlignJob/a0/u0" in promoted["message"]
    assert api.status("AlignJob", "a1")["phase"] == "Succeeded"
    kept = read_promotion(store, bucket="synthloop", namespace=NS, name="interm-1")
    assert kept is not None and kept.model_uri == "s3://synthloop/earlier/"


def test_replace_true_with_passed_gates_replaces_it(env: Any) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    write_promotion(store, bucket="synthloop", pointer=pointer(NS, f"{NS}/AlignJob/a0/u0"))
    finish_align(api, store, rec, {**ALIGN, "promotion": {"name": "interm-1", "replace": True, "shareWith": [OTHER]}})
    assert api.status("AlignJob", "a1")["phase"] == "Promoted"
    now = read_promotion(store, bucket="synthloop", namespace=NS, name="interm-1")
    assert now is not None and now.source == f"{NS}/AlignJob/a1/uid-a1" and now.shared_with == [OTHER]
    # Another namespace's pointer of the same name is a different object, untouched.
    assert read_promotion(store, bucket="synthloop", namespace=OTHER, name="interm-1") is None


def test_another_namespaces_promotion_is_invisible_unless_it_is_shared(env: Any) -> None:
    api, store, rec = env
    store.put_bytes("s3://synthloop/theirs/config.json", b"{}")
    write_promotion(store, bucket="synthloop", pointer=pointer(OTHER, f"{OTHER}/AlignJob/x/u", model="s3://synthloop/theirs/"))
    # The bare name reads this namespace's pointer only: B's model is not used.
    api.add("SynthRound", "plain", {**SYNTH, "generator": {"model": {"promoted": "interm-1"}, "backend": "transformers"}})
    assert rec.reconcile("SynthRound", NS, "plain").state == "waiting"
    assert api.condition("SynthRound", "plain", "InputsReady")["reason"] == R.WAITING_FOR_PROMOTION
    # The qualified name is refused, saying who must grant it and how.
    api.add("SynthRound", "qual", {**SYNTH, "generator": {"model": {"promoted": f"{OTHER}/interm-1"},
                                                          "backend": "transformers"}})
    assert rec.reconcile("SynthRound", NS, "qual").state == "waiting"
    ready = api.condition("SynthRound", "qual", "InputsReady")
    assert ready["reason"] == R.PROMOTION_NOT_SHARED
    assert ready["message"] == (f"promotion {OTHER}/interm-1 is not shared with namespace {NS}: its producer "
                                f"({OTHER}/AlignJob/x/u) must list {NS} in spec.promotion.shareWith")
    assert not [j for j in api.jobs if j.startswith("qual-")]
    # Once the producer shares it, the same CR resolves on its next pass.
    write_promotion(store, bucket="synthloop", pointer=pointer(OTHER, f"{OTHER}/AlignJob/x/u", shared=[NS],
                                                              model="s3://synthloop/theirs/"))
    assert rec.reconcile("SynthRound", NS, "qual").state == "running"
    assert worker_config(api, "qual-synth")["inputs"]["model"] == "s3://synthloop/theirs/"


def test_a_reconciler_scoped_to_namespaces_refuses_any_other(env: Any) -> None:
    api, store, _ = env
    rec = Reconciler(cluster=api, store=store, config=rec_config(), namespaces=("elsewhere",))  # type: ignore[arg-type]
    api.add("SynthRound", "r1", SYNTH)
    assert rec.reconcile("SynthRound", NS, "r1").state == "gone"
    assert "status" not in api.crs[("SynthRound", "r1")] and not api.jobs


def rec_config() -> OperatorConfig:
    return OperatorConfig(s3_endpoint="minio:9000")
