"""The binary cache: pins, checksums, clear errors (no Go builds here; see integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloop.local.binaries import (
    COMPONENTS,
    GO_DIR,
    BinaryError,
    BuildRecord,
    check_cached,
    ensure_binaries,
    sha256_file,
)
from synthloop.local.paths import LocalPaths


def test_every_component_has_a_wrapper_module_with_its_pin() -> None:
    for c in COMPONENTS.values():
        gomod = (GO_DIR / c.module / "go.mod").read_text()
        assert (GO_DIR / c.module / "go.sum").exists(), c.module
        assert c.package.split("/cmd/")[0] in gomod or c.package in gomod
    k8s = (GO_DIR / "kubernetes" / "go.mod").read_text()
    # every staging module is replaced with the matching published release
    assert k8s.count("=> k8s.io/") >= 31 and "v0.34.4" in k8s and "=> ./" not in k8s


def _record(tmp_path: Path, name: str, data: bytes) -> tuple[Path, BuildRecord]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / name).write_bytes(data)
    record = BuildRecord.load(bin_dir)
    record.entries[name] = {"pin": COMPONENTS[name].pin, "sha256": sha256_file(bin_dir / name)}
    record.save()
    return bin_dir, BuildRecord.load(bin_dir)


def test_intact_binary_passes_and_corruption_is_named(tmp_path: Path) -> None:
    bin_dir, record = _record(tmp_path, "etcd", b"\x7fELF pretend binary")
    assert check_cached(COMPONENTS["etcd"], bin_dir=bin_dir, record=record) is None
    with (bin_dir / "etcd").open("r+b") as f:
        f.seek(3)
        f.write(b"X")
    problem = check_cached(COMPONENTS["etcd"], bin_dir=bin_dir, record=record)
    assert problem is not None and "corrupted" in problem and "etcd" in problem


def test_other_pin_means_rebuild(tmp_path: Path) -> None:
    bin_dir, record = _record(tmp_path, "kwok", b"x")
    record.entries["kwok"]["pin"] = "sigs.k8s.io/kwok/cmd/kwok@v0.7.0#old"
    problem = check_cached(COMPONENTS["kwok"], bin_dir=bin_dir, record=record)
    assert problem is not None and "another pin" in problem


def test_no_build_reports_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(BinaryError, match="minio is not built yet.*synthloop local build"):
        ensure_binaries(["minio"], paths=LocalPaths(tmp_path), build=False)


def test_no_go_toolchain_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without `go`
    with pytest.raises(BinaryError, match="no Go toolchain"):
        ensure_binaries(["etcd"], paths=LocalPaths(tmp_path), build=True, progress=lambda m: None)


def test_unknown_component() -> None:
    with pytest.raises(BinaryError, match="unknown component"):
        ensure_binaries(["kubelet"], build=False)
