"""The operator's metrics: what a pass, a Job, a gate and a store error add, and the HTTP server
that serves them beside /healthz (scraped for real by tests/integration/test_namespaces.py)."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from synthloop.artifacts.store import ArtifactStore
from synthloop.controllers import metrics
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


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def env(tmp_path: Path) -> tuple[ApiServer, ArtifactStore, Reconciler]:
    api = ApiServer()
    store = ArtifactStore(s3=DirBackend(tmp_path))  # type: ignore[arg-type]
    rec = Reconciler(cluster=api, store=store,  # type: ignore[arg-type]
                     config=OperatorConfig(s3_endpoint="minio:9000"), ref_grace_seconds=30)
    return api, store, rec


def test_passes_jobs_gates_and_phases_are_counted(env: Any) -> None:
    api, store, rec = env
    before = {
        "passes": value("synthloop_reconcile_duration_seconds_count", kind="AlignJob", outcome="running"),
        "sft": value("synthloop_jobs_created_total", kind="AlignJob", stage="sft-0"),
        "gate": value("synthloop_gate_results_total", kind="AlignJob", metric="ifeval.prompt_strict", result="passed"),
    }
    store.put_bytes("s3://synthloop/models/base/config.json", b"{}")
    run_synth(api, store, rec)
    rec.reconcile("SynthRound", NS, "r1")
    api.add("AlignJob", "a1", ALIGN)
    assert rec.reconcile("AlignJob", NS, "a1").state == "running"
    assert value("synthloop_reconcile_duration_seconds_count", kind="AlignJob", outcome="running") == before["passes"] + 1
    assert value("synthloop_jobs_created_total", kind="AlignJob", stage="sft-0") == before["sft"] + 1
    assert value("synthloop_resources", kind="AlignJob", namespace=NS, phase="Running") >= 1
    for stage in ("sft-0", "dpo-1"):
        write_run(store, worker_config(api, f"a1-{stage}")["output"], {"model/model.safetensors": b"w"}, task="align")
        api.finish(f"a1-{stage}")
        rec.reconcile("AlignJob", NS, "a1")
    write_run(store, worker_config(api, "a1-eval")["output"], {}, task="eval", metrics={"ifeval.prompt_strict": 0.9})
    api.finish("a1-eval")
    assert rec.reconcile("AlignJob", NS, "a1").state == "done"
    rec.reconcile("AlignJob", NS, "a1")  # a later pass does not count the gates again
    assert value("synthloop_gate_results_total", kind="AlignJob", metric="ifeval.prompt_strict",
                 result="passed") == before["gate"] + 1
    assert value("synthloop_resources", kind="AlignJob", namespace=NS, phase="Promoted") == 1
    assert value("synthloop_gpu_hours", kind="AlignJob", namespace=NS) > 0  # the fake Jobs ran 6 min each
    # A resync listing replaces the books: a deleted object is no longer counted.
    metrics.BOOKS.replace("AlignJob", [NS], [])
    assert value("synthloop_resources", kind="AlignJob", namespace=NS, phase="Promoted") == 0


class Refusing:
    """An S3 backend that refuses every HEAD (as a wrong key would)."""

    def head(self, loc: Any) -> Any:
        raise PermissionError("AccessDenied")


class Down:
    """An S3 backend whose endpoint does not answer."""

    def head(self, loc: Any) -> Any:
        raise ConnectionRefusedError("connection refused")


def test_store_errors_are_counted_by_operation_and_each_retry() -> None:
    from synthloop.artifacts.store import RetryPolicy

    def count(error: str) -> float:
        return value("synthloop_artifact_store_errors_total", operation="head", error=error)

    before = count("PermissionError"), count("ConnectionRefusedError")
    for backend in (Refusing(), Down()):
        store = ArtifactStore(s3=backend, on_error=metrics.store_error,  # type: ignore[arg-type]
                              retry=RetryPolicy(attempts=3, base_seconds=0.0), sleep=lambda s: None)
        with pytest.raises(OSError):
            store.head("s3://b/k")
    assert count("PermissionError") == before[0] + 1  # not transient: no retry
    assert count("ConnectionRefusedError") == before[1] + 3  # transient: every attempt failed


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    if loop.is_running():
        loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


def test_metrics_and_healthz_share_one_server(loop: asyncio.AbstractEventLoop) -> None:
    server = metrics.serve(0, loop, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain")
        for name in ("synthloop_reconcile_duration_seconds", "synthloop_jobs_created_total", "synthloop_resources",
                     "synthloop_gate_results_total", "synthloop_artifact_store_errors_total", "synthloop_gpu_hours"):
            assert f"# TYPE {name.removesuffix('_total')}" in text, name
        with urllib.request.urlopen(base + "/healthz", timeout=10) as resp:
            assert resp.status == 200
        loop.call_soon_threadsafe(loop.stop)  # kopf's loop gone: the liveness probe must fail
        for _ in range(50):
            if not loop.is_running():
                break
            threading.Event().wait(0.05)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + "/healthz", timeout=10)
        assert err.value.code == 503
        err.value.close()
    finally:
        server.shutdown()
        server.server_close()
