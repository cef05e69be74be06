"""The artifact store's local backend, manifests and promotion pointers."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloop.artifacts.manifest import (
    ArtifactRef,
    Manifest,
    ManifestError,
    report_progress,
    verify_manifest,
    write_manifest,
)
from synthloop.artifacts.store import ArtifactNotFound, open_store
from synthloop.artifacts.uris import URIError, join, parse_uri, run_prefix

pytestmark = pytest.mark.unit


def test_parse_uri_rejects_what_is_not_an_artifact_uri() -> None:
    assert parse_uri("s3://b/k/x").bucket == "b"
    with pytest.raises(URIError, match="expected s3://"):
        parse_uri("http://example/x")
    with pytest.raises(URIError, match="missing bucket"):
        parse_uri("s3:///key")


def test_layout_and_join() -> None:
    prefix = run_prefix(bucket="synthloop", namespace="ns", kind="AlignJob", name="a", uid="u1")
    assert prefix == "s3://synthloop/ns/alignjob/a/u1/"
    assert join(prefix, "/model/", "config.json") == "s3://synthloop/ns/alignjob/a/u1/model/config.json"


def test_manifest_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    store = open_store(env={})
    prefix = f"file://{tmp_path}/run"
    out = store.put_bytes(join(prefix, "data.jsonl"), b'{"a": 1}\n')
    write_manifest(store, prefix, Manifest(task="synth", outputs=[ArtifactRef.of(out, role="sft")]))
    assert verify_manifest(store, prefix).output("sft").sha256 == out.sha256

    # Rewritten through a store (a new upload: new recorded sha256, same size): caught by HEAD.
    store.put_bytes(join(prefix, "data.jsonl"), b'{"a": 3}\n')
    with pytest.raises(ManifestError, match="sha256 does not match"):
        verify_manifest(store, prefix)
    store.put_bytes(join(prefix, "data.jsonl"), b'{"a": 1}\n')
    verify_manifest(store, prefix)
    # Flipped in place (metadata intact, same size): only reading the bytes can tell.
    (tmp_path / "run" / "data.jsonl").write_bytes(b'{"a": 2}\n')
    verify_manifest(store, prefix)
    with pytest.raises(ManifestError, match="content sha256 does not match"):
        verify_manifest(store, prefix, download=True)
    (tmp_path / "run" / "data.jsonl").unlink()
    with pytest.raises(ManifestError, match="missing"):
        verify_manifest(store, prefix)


def test_missing_manifest_means_not_finished(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="has not finished"):
        verify_manifest(open_store(env={}), f"file://{tmp_path}/nothing")


def test_dirs_progress_and_promotion(tmp_path: Path) -> None:
    store = open_store(env={})
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("bb")
    infos = store.upload_dir(src, f"file://{tmp_path}/up")
    assert [i.size for i in infos] == [1, 2]
    got = store.download_dir(f"file://{tmp_path}/up", tmp_path / "down")
    assert (got / "sub" / "b.txt").read_text() == "bb"
    with pytest.raises(ArtifactNotFound):
        store.download_dir(f"file://{tmp_path}/absent", tmp_path / "x")

    report_progress(store, f"file://{tmp_path}/up", task="pretrain", index=0, done=3, total=10)
    assert store.get_json(f"file://{tmp_path}/up/progress/pretrain-0.json")["done"] == 3


def test_s3_settings_must_be_complete() -> None:
    with pytest.raises(RuntimeError, match="AWS_ACCESS_KEY_ID"):
        open_store(env={"SYNTHLOOP_S3_ENDPOINT": "127.0.0.1:9000"})
    with pytest.raises(RuntimeError, match="no S3 endpoint"):
        open_store(env={}).exists("s3://b/k")
