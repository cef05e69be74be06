"""How pod specs become local processes on a process node (env, volumes, argv)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from synthloop.local.nodeagent.podenv import (
    PodSpecError,
    build_argv,
    build_env,
    expand,
    field_value,
    materialise_volumes,
    rewrite_paths,
    working_dir,
)

POD = {
    "metadata": {
        "name": "job-1-abc", "namespace": "ns1", "uid": "u-1",
        "labels": {"app": "synth"},
        "annotations": {"batch.kubernetes.io/job-completion-index": "2"},
    },
    "spec": {
        "nodeName": "local-dgx-0", "serviceAccountName": "default",
        "volumes": [
            {"name": "scratch", "emptyDir": {}},
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
            {"name": "cfg", "configMap": {"name": "cm"}},
        ],
    },
}
CONFIGMAPS = {("ns1", "cm"): {"mode": "fast", "file.txt": "hello"}}
SECRETS = {("ns1", "s3"): {"accessKey": base64.b64encode(b"AK").decode(),
                           "secretKey": base64.b64encode(b"SK").decode()}}


def _cm(ns: str, name: str) -> dict[str, str] | None:
    return CONFIGMAPS.get((ns, name))


def _secret(ns: str, name: str) -> dict[str, str] | None:
    return SECRETS.get((ns, name))


def test_expand_follows_kubernetes_rules() -> None:
    env = {"A": "1"}
    assert expand("x-$(A)-$(B)-$$(A)", env) == "x-1-$(B)-$(A)"


def test_field_refs_include_completion_index() -> None:
    path = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert field_value(POD, path) == "2"
    assert field_value(POD, "metadata.labels['app']") == "synth"
    assert field_value(POD, "spec.nodeName") == "local-dgx-0"
    with pytest.raises(PodSpecError, match="status.nope"):
        field_value(POD, "status.nope")


def test_env_resolves_every_source_and_rewrites_mounts(tmp_path: Path) -> None:
    container = {
        "name": "main",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "IDX", "valueFrom": {"fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
            {"name": "AK", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "accessKey"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "mode"}}},
            {"name": "OUT", "value": "/scratch/out-$(IDX)"},
            {"name": "GONE", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k", "optional": True}}},
        ],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"},
                         {"name": "shm", "mountPath": "/dev/shm"}],
    }
    dirs = materialise_volumes(POD, tmp_path, get_configmap=_cm, get_secret=_secret)
    env = build_env(POD, container, base={"PATH": "/bin"}, get_configmap=_cm, get_secret=_secret,
                    dirs=dirs, pod_dir=tmp_path)
    assert env["IDX"] == "2"
    assert env["AK"] == "AK"
    assert env["MODE"] == "fast" and env["CM_mode"] == "fast"
    assert env["OUT"] == f"{tmp_path}/volumes/scratch/out-2"
    assert "GONE" not in env
    assert env["SYNTHLOOP_VOLUME_SCRATCH"] == str(tmp_path / "volumes" / "scratch")
    assert (tmp_path / "volumes" / "cfg" / "file.txt").read_text() == "hello"


def test_missing_required_secret_names_it(tmp_path: Path) -> None:
    container = {"name": "c", "env": [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]}
    with pytest.raises(PodSpecError, match=r"ns1/nope\[k\]"):
        build_env(POD, container, base={}, get_configmap=_cm, get_secret=_secret, dirs={},
                  pod_dir=tmp_path)


def test_argv_expands_and_rewrites(tmp_path: Path) -> None:
    dirs = {"scratch": tmp_path / "v"}
    container = {"name": "c", "command": ["python", "-c"], "args": ["print('$(IDX)')", "--out=/scratch/a"],
                 "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}
    argv = build_argv(container, {"IDX": "7"}, dirs)
    assert argv == ["python", "-c", "print('7')", f"--out={tmp_path}/v/a"]
    with pytest.raises(PodSpecError, match="no command"):
        build_argv({"name": "c", "image": "x"}, {}, dirs)


def test_rewrite_only_at_path_boundaries() -> None:
    mounts = [("/data", "/tmp/p/data")]
    assert rewrite_paths("/data/x /database /mydata/y", mounts) == "/tmp/p/data/x /database /mydata/y"


def test_working_dir_falls_back_to_pod_dir(tmp_path: Path) -> None:
    assert working_dir({"workingDir": "/nonexistent-image-dir"}, {}, tmp_path) == tmp_path
    dirs = {"scratch": tmp_path / "v"}
    wd = working_dir({"workingDir": "/scratch/w", "volumeMounts": [
        {"name": "scratch", "mountPath": "/scratch"}]}, dirs, tmp_path)
    assert wd == tmp_path / "v" / "w" and wd.is_dir()


def test_rewritten_paths_are_not_rewritten_again() -> None:
    """A pod dir under /tmp must survive a /tmp emptyDir mount (one pass over all mounts)."""
    from synthloop.local.nodeagent.podenv import rewrite_paths

    mounts = [("/etc/synthloop", "/tmp/home/pods/p/volumes/config"), ("/tmp", "/tmp/home/pods/p/volumes/tmp")]
    assert rewrite_paths("/etc/synthloop/profiles.yaml", mounts) == "/tmp/home/pods/p/volumes/config/profiles.yaml"
    assert rewrite_paths("/tmp/x", mounts) == "/tmp/home/pods/p/volumes/tmp/x"
