"""Shared fixtures: the cluster every integration/e2e test runs against (contract 5).

* ``local_cluster`` (session): ``SYNTHLOOP_TEST_KUBECONFIG`` set -> that existing cluster
  (kind, a real one; MinIO from ``SYNTHLOOP_S3_ENDPOINT``/``AWS_*``). Otherwise a running
  `synthloop local` cluster is reused, or one is started (with no KWOK nodes, so pods land
  on the process nodes and really run) and stopped when the last pytest session using it
  ends. Missing binaries: the tests FAIL when ``CI=true`` and skip with the reason otherwise.
* ``namespace``: a fresh namespace per test (its ``default`` ServiceAccount exists), deleted after.
* ``s3_env``: the ``SYNTHLOOP_S3_*``/``AWS_*`` env of the cluster's MinIO, for ``open_store()``.

Tests under tests/unit, tests/integration and tests/e2e get the matching marker automatically.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthloop.local.kube import KubeError
from synthloop.local.testing import LocalCluster, external_cluster, unavailable, wait_for

_TIER_DIRS = {"unit": "unit", "integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for dirname, marker in _TIER_DIRS.items():
            if dirname in parts and "tests" in parts:
                item.add_marker(getattr(pytest.mark, marker))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test of the embedded cluster itself fails, never skips, on another cluster."""
    if item.get_closest_marker("local_only") and os.environ.get("SYNTHLOOP_TEST_KUBECONFIG"):
        pytest.fail(f"{item.name} tests `synthloop local` itself (its CLI, KWOK or process nodes) and "
                    "cannot run against SYNTHLOOP_TEST_KUBECONFIG; deselect it with "
                    "-m 'not local_only' (as `make kind-test` does)", pytrace=False)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    external = os.environ.get("SYNTHLOOP_TEST_KUBECONFIG")
    if external:
        yield external_cluster(external)
        return

    from synthloop.local.binaries import BinaryError, ensure_binaries
    from synthloop.local.cluster import ClusterError, running_state, up
    from synthloop.local.options import ClusterOptions
    from synthloop.local.paths import LocalPaths

    paths = LocalPaths.default()
    users = paths.local_dir / "pytest-users"
    owned_marker = paths.local_dir / "pytest-owned"
    state = running_state(paths)
    if state is None:
        try:
            ensure_binaries(paths=paths, build=False)
        except BinaryError as exc:
            unavailable(f"{exc} (CI runs `synthloop local build` before the tests)")
        try:
            state = up(ClusterOptions(kwok_nodes=0, kwok_cpu_nodes=0), paths=paths, build=False)
            owned_marker.parent.mkdir(parents=True, exist_ok=True)
            owned_marker.write_text(str(os.getpid()))
        except ClusterError as exc:
            state = running_state(paths)  # another session may have won the race to start it
            if state is None:
                unavailable(str(exc))
    assert state is not None
    users.mkdir(parents=True, exist_ok=True)
    me = users / str(os.getpid())
    me.touch()
    try:
        yield LocalCluster(
            kubeconfig=Path(state.kubeconfig), s3_endpoint=state.s3_endpoint,
            access_key=state.access_key, secret_key=state.secret_key,
            bucket=state.options.bucket, bin_dir=paths.bin_dir,
        )
    finally:
        me.unlink(missing_ok=True)
        from synthloop.local.cluster import down, pid_alive

        others = [p for p in users.glob("*") if p.name.isdigit() and pid_alive(int(p.name))]
        if owned_marker.exists() and not others:
            owned_marker.unlink(missing_ok=True)
            down(paths=paths, progress=lambda _msg: None)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40].strip("-")


@pytest.fixture
def namespace(local_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"t-{_slug(request.node.name)}-{uuid.uuid4().hex[:6]}"
    kube = local_cluster.kube
    kube.create("/api/v1/namespaces", {"metadata": {"name": name, "labels": {"synthloop.dev/test": "true"}}})
    # pods are rejected until the ServiceAccount controller made `default`
    wait_for(lambda: kube.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default"),
             timeout=60, what=f"ServiceAccount {name}/default")
    try:
        yield name
    finally:
        try:
            kube.delete(f"/api/v1/namespaces/{name}")
        except KubeError:
            pass


@pytest.fixture
def s3_env(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {k: v for k, v in local_cluster.env().items() if k.startswith(("SYNTHLOOP_S3", "AWS_"))}
    env["SYNTHLOOP_S3_BUCKET"] = local_cluster.bucket
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env
