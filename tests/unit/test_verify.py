"""Verify without downloading: checksums recorded at upload, HEAD-only checks in the operator,
expected checksums handed to the consuming worker, content hashes in lineage, retried store calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from synthloop.artifacts import store as store_mod
from synthloop.artifacts.store import (
    ArtifactCorrupt,
    ArtifactNotFound,
    ArtifactStore,
    RetryPolicy,
    expect_checksums,
    open_store,
    sha256_file,
)
from synthloop.artifacts.uris import ArtifactURI, join
from synthloop.controllers.config import OperatorConfig
from synthloop.controllers.reconcile import Reconciler
from tests.unit.test_reconcile_pass import (
    ALIGN,
    NS,
    ApiServer,
    DirBackend,
    run_synth,
    worker_config,
    write_run,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def env(tmp_path: Path) -> tuple[ApiServer, ArtifactStore, Reconciler, DirBackend]:
    api, backend = ApiServer(), DirBackend(tmp_path)
    store = ArtifactStore(s3=backend)  # type: ignore[arg-type]
    rec = Reconciler(cluster=api, store=store,  # type: ignore[arg-type]
                     config=OperatorConfig(s3_endpoint="minio:9000"), ref_grace_seconds=30)
    return api, store, rec, backend


@pytest.fixture(autouse=True)
def _no_expectations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "_EXPECTED", {})


def test_every_upload_records_its_sha256_with_the_object(tmp_path: Path) -> None:
    store = open_store(env={})
    info = store.put_bytes(f"file://{tmp_path}/a/x.bin", b"hello")
    head = store.head(info.uri)
    assert (head.size, head.sha256) == (5, info.sha256) and len(info.sha256) == 64
    assert store.list(f"file://{tmp_path}/a/") == [info.uri]  # the recorded checksum is no object


def test_passes_over_finished_stages_download_no_output(env: Any) -> None:
    api, store, rec, backend = env
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    run_synth(api, store, rec)
    rec.reconcile("SynthRound", NS, "r1")
    api.add("AlignJob", "a1", ALIGN)
    rec.reconcile("AlignJob", NS, "a1")
    sft = worker_config(api, "a1-sft-0")
    write_run(store, sft["output"], {"model/model.safetensors": b"w" * 4096, "model/config.json": b"{}"}, task="align")
    api.finish("a1-sft-0")
    rec.reconcile("AlignJob", NS, "a1")  # verifies sft (one GET of its manifest), creates dpo
    backend.gets.clear()
    heads = backend.heads
    for _ in range(5):  # dpo running: every pass re-checks the finished sft stage
        assert rec.reconcile("AlignJob", NS, "a1").state == "running"
    assert not [g for g in backend.gets if not g.endswith(".json")], backend.gets  # no output downloaded
    assert not [g for g in backend.gets if g.endswith("manifest.json")]  # nor a verified manifest again
    assert backend.heads - heads <= 5 * 4  # HEADs only: the manifests (and the synth round's inputs)


def test_the_consumer_is_given_the_sha256_of_what_it_reads(env: Any) -> None:
    api, store, rec, _ = env
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    run_synth(api, store, rec)
    rec.reconcile("SynthRound", NS, "r1")
    api.add("AlignJob", "a1", ALIGN)
    rec.reconcile("AlignJob", NS, "a1")
    sft = worker_config(api, "a1-sft-0")
    outs = {o["name"]: o for o in api.status("SynthRound", "r1")["outputs"]}
    assert sft["checksums"][sft["inputs"]["sft"]] == outs["sft"]["sha256"]
    assert sft["checksums"][sft["inputs"]["preference"]] == outs["preference"]["sha256"]
    weights = store.put_bytes(join(sft["output"], "model/model.safetensors"), b"w" * 64)
    write_run(store, sft["output"], {"model/model.safetensors": b"w" * 64}, task="align")
    api.finish("a1-sft-0")
    rec.reconcile("AlignJob", NS, "a1")
    dpo = worker_config(api, "a1-dpo-1")
    assert dpo["checksums"][join(dpo["inputs"]["model"], "model.safetensors")] == weights.sha256


def test_lineage_hashes_data_by_content_not_by_run(env: Any, tmp_path: Path) -> None:
    api, store, rec, _ = env
    run_synth(api, store, rec)
    rec.reconcile("SynthRound", NS, "r1")
    first = {o["name"]: o for o in api.status("SynthRound", "r1")["outputs"]}
    other = OtherRun()
    other_store = ArtifactStore(s3=DirBackend(tmp_path / "other"))  # type: ignore[arg-type]
    other_rec = Reconciler(cluster=other, store=other_store,  # type: ignore[arg-type]
                           config=OperatorConfig(s3_endpoint="minio:9000"))
    run_synth(other, other_store, other_rec)  # the same bytes, written by another run
    other_rec.reconcile("SynthRound", NS, "r1")
    second = {o["name"]: o for o in other.status("SynthRound", "r1")["outputs"]}
    assert first["data"]["uri"] != second["data"]["uri"]
    assert first["data"]["sha256"] == second["data"]["sha256"] and len(first["data"]["sha256"]) == 64


class OtherRun(ApiServer):
    """The same objects with other uids: another run, so other URIs."""

    def add(self, kind: str, name: str, spec: dict[str, Any], *, age_s: float = 3600) -> None:
        super().add(kind, name, spec, age_s=age_s)
        self.crs[(kind, name)]["metadata"]["uid"] = f"other-{name}"


def test_a_download_that_does_not_match_its_expected_sha256_is_refused(tmp_path: Path) -> None:
    store = open_store(env={})
    model = f"file://{tmp_path}/run/model/"
    info = store.put_bytes(model + "model.safetensors", b"\x00" * 8192)
    expect_checksums({model + "model.safetensors": info.sha256})
    assert sha256_file(store.get_file(info.uri, tmp_path / "ok")) == info.sha256
    raw = bytearray((tmp_path / "run/model/model.safetensors").read_bytes())
    raw[100:4196] = b"\xff" * 4096  # 4096 bytes flipped in place, same size, metadata intact
    (tmp_path / "run/model/model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ArtifactCorrupt, match=r"model.safetensors: sha256 .* does not match .* its producer recorded"):
        store.download_dir(model, tmp_path / "dl")
    assert not (tmp_path / "dl" / "model.safetensors").exists()


class Flaky:
    """A backend whose first ``fail`` calls raise ``error``."""

    def __init__(self, fail: int, error: BaseException) -> None:
        self.fail, self.error, self.calls = fail, error, 0

    def head(self, loc: ArtifactURI) -> Any:
        self.calls += 1
        if self.calls <= self.fail:
            raise self.error
        from synthloop.artifacts.store import Head

        return Head(size=1, sha256="s")


class S3LikeError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@pytest.mark.parametrize(("error", "fail", "calls", "ok"), [
    (ConnectionError("refused"), 2, 3, True),  # transient: retried, then succeeds
    (S3LikeError("SlowDown"), 9, 4, False),  # transient, but bounded: 4 attempts, then it propagates
    (S3LikeError("AccessDenied"), 9, 1, False),  # not transient: no retry
    (ArtifactNotFound("gone"), 9, 1, False),  # an answer, not an error
])
def test_store_calls_are_retried_with_backoff_only_when_transient(error: BaseException, fail: int, calls: int,
                                                                   ok: bool) -> None:
    backend, errors, sleeps = Flaky(fail, error), [], []
    store = ArtifactStore(s3=backend, retry=RetryPolicy(attempts=4, base_seconds=0.5, max_seconds=1.0),  # type: ignore[arg-type]
                          on_error=lambda op, exc: errors.append(op), sleep=sleeps.append)
    if ok:
        assert store.head("s3://b/k").sha256 == "s"
    else:
        with pytest.raises(type(error)):
            store.head("s3://b/k")
    assert backend.calls == calls
    assert len(sleeps) == calls - 1 and all(0 < s <= 1.0 for s in sleeps)
    failed = 0 if isinstance(error, ArtifactNotFound) else (calls - 1 if ok else calls)
    assert errors == ["head"] * failed
