"""The informer cache: filled by LIST and watch events, read by passes with no API request,
and asked which waiting objects a producer's success wakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synthloop.artifacts.store import ArtifactStore
from synthloop.controllers.cache import Cache, CachedCluster
from synthloop.controllers.config import OperatorConfig
from synthloop.controllers.kube import Cluster
from synthloop.controllers.reconcile import Reconciler
from tests.unit.test_reconcile_pass import ALIGN, NS, SYNTH, ApiServer, DirBackend, run_synth

pytestmark = pytest.mark.unit


def body(kind: str, name: str, rv: int, spec: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {
        "name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": str(rv),
        "managedFields": [{"manager": "kubectl"}] * 50,
        "annotations": {"kopf.synthloop.io/last-handled-configuration": "{...}", "keep": "me"},
    }, "spec": spec or {}, "status": status}


def test_events_keep_the_newest_version_without_managed_fields() -> None:
    cache = Cache()
    cache.fill("SynthRound", NS, [body("SynthRound", "r1", 5, phase="Running")])
    cache.event("SynthRound", "MODIFIED", body("SynthRound", "r1", 4, phase="Pending"))  # late, older
    got = cache.get("SynthRound", NS, "r1")
    assert got is not None and got["status"]["phase"] == "Running"
    assert "managedFields" not in got["metadata"] and got["metadata"]["annotations"] == {"keep": "me"}
    cache.event("SynthRound", "MODIFIED", body("SynthRound", "r1", 9, phase="Succeeded"))
    assert cache.get("SynthRound", NS, "r1")["status"]["phase"] == "Succeeded"  # type: ignore[index]
    cache.event("SynthRound", "DELETED", body("SynthRound", "r1", 10))
    assert cache.get("SynthRound", NS, "r1") is None and cache.listed("SynthRound", NS)


def test_dependents_by_reference_and_by_promotion_name() -> None:
    cache = Cache()
    cache.fill("AlignJob", NS, [body("AlignJob", "a1", 1, {"data": {"fromRef": {"kind": "SynthRound", "name": "r1"}}})])
    cache.fill("SynthRound", NS, [
        body("SynthRound", "r1", 1), body("SynthRound", "r2", 1, {"generator": {"model": {"promoted": "interm-1"}}}),
        body("SynthRound", "r3", 1, {"generator": {"model": {"promoted": "other-ns/interm-1"}}}),
    ])
    assert cache.dependents(NS, "SynthRound", "r1", None) == [("AlignJob", NS, "a1")]
    assert cache.dependents(NS, "AlignJob", "a1", "interm-1") == [("SynthRound", NS, "r2")]
    assert cache.dependents("elsewhere", "SynthRound", "r1", None) == []


class NoApi(CachedCluster):
    """A CachedCluster whose API server must not be asked (any read that reaches it fails)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache


def test_a_listed_namespace_is_read_from_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    for method in ("get_cr", "list_crs", "list_jobs"):
        monkeypatch.setattr(Cluster, method, lambda *a, **k: pytest.fail("the API server was asked"))
    cache = Cache()
    cache.fill("SynthRound", NS, [body("SynthRound", "r1", 1)])
    cache.fill("Job", NS, [{"metadata": {"name": "r1-synth", "resourceVersion": "3",
                                         "labels": {"synthloop.io/owner-uid": "uid-r1"}}}])
    cluster = NoApi(cache)
    assert cluster.get_cr("SynthRound", NS, "r1") is not None and cluster.get_cr("SynthRound", NS, "r9") is None
    assert [b["metadata"]["name"] for b in cluster.list_crs("SynthRound", NS)] == ["r1"]
    assert [j["metadata"]["name"] for j in cluster.list_jobs(NS, "uid-r1")] == ["r1-synth"]


class CachedApi(ApiServer):
    """The in-memory API server with a cache beside it, as the operator runs: every write shows
    up in the cache (standing in for the watch events)."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = Cache()
        self.passes: list[str] = []

    def get_cr(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.passes.append(name)
        return super().get_cr(kind, namespace, name)

    def sync(self) -> None:
        for (kind, _), b in self.crs.items():
            self.cache.event(kind, "MODIFIED", b)


def test_a_producer_wakes_only_the_objects_that_wait_on_it(tmp_path: Path) -> None:
    api = CachedApi()
    store = ArtifactStore(s3=DirBackend(tmp_path))  # type: ignore[arg-type]
    rec = Reconciler(cluster=api, store=store,  # type: ignore[arg-type]
                     config=OperatorConfig(s3_endpoint="minio:9000"), ref_grace_seconds=30)
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    api.add("AlignJob", "a1", ALIGN)  # waits on r1
    for i in range(20):  # wait on a promotion that never comes
        api.add("SynthRound", f"idle-{i}", {**SYNTH, "generator": {"model": {"promoted": "never"},
                                                                   "backend": "transformers"}})
    run_synth(api, store, rec)
    for name in ["a1", *(f"idle-{i}" for i in range(20))]:
        rec.reconcile("SynthRound" if name.startswith("idle") else "AlignJob", NS, name)
    api.sync()
    api.passes.clear()
    assert rec.reconcile("SynthRound", NS, "r1").state == "done"
    assert "a1" in api.passes  # its consumer was woken ...
    assert not [p for p in api.passes if p.startswith("idle-")]  # ... and nothing else of the namespace
    assert api.status("AlignJob", "a1")["phase"] == "Running"


def test_the_resync_leaves_local_waits_to_their_producer() -> None:
    from synthloop.controllers.handlers import woken_by_dependency

    def waiting(spec: dict[str, Any], reason: str) -> dict[str, Any]:
        return {"spec": spec, "status": {"phase": "WaitingForInputs",
                                         "conditions": [{"type": "InputsReady", "status": "False", "reason": reason}]}}

    local = {"generator": {"model": {"promoted": "interm-1"}}, "rewardModel": {"fromRef": {"kind": "RewardTrain",
                                                                                          "name": "rm"}}}
    assert woken_by_dependency(waiting(local, "WaitingForPromotion"))
    assert not woken_by_dependency(waiting({"generator": {"model": {"promoted": "team-a/interm-1"}}},
                                           "WaitingForPromotion"))  # another namespace: polled
    assert not woken_by_dependency(waiting({"data": {"uri": "s3://b/x/"}}, "WaitingForArtifact"))
    assert not woken_by_dependency({"spec": local, "status": {"phase": "Running"}})
