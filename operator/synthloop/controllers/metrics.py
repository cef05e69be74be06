"""The operator's Prometheus metrics and the one HTTP server that serves them with ``/healthz``.

Counters and histograms are updated where things happen (a pass, a Job created, a gate, a
store error); the per-object books (phase, GPU-hours) are updated after each pass and replaced
by each resync listing, and summed only when Prometheus scrapes, so 1,000 objects cost 1,000
dict entries, not 1,000 series. ``/healthz`` answers 200 only while kopf's event loop runs
callbacks (a blocked or dead loop fails the liveness probe).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("synthloop.operator")

PASSES = Histogram(
    "synthloop_reconcile_duration_seconds", "Reconcile passes and their duration, by kind and outcome.",
    ["kind", "outcome"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
JOBS_CREATED = Counter("synthloop_jobs_created", "Jobs the operator created, by kind and stage.", ["kind", "stage"])
GATES = Counter("synthloop_gate_results", "Gate results of finished evaluations, by kind, metric and result.",
                ["kind", "metric", "result"])
STORE_ERRORS = Counter("synthloop_artifact_store_errors", "Failed artifact-store calls (each retry too).",
                       ["operation", "error"])
KUBE_REQUESTS = Counter("synthloop_kube_requests", "Kubernetes API requests the reconciler made.", ["verb", "resource"])
RESYNCS = Counter("synthloop_resyncs", "Safety-net resync rounds, by result.", ["result"])


class _Books(Collector):
    """Per-object state summed at scrape time: CRs by phase, GPU-hours, bytes the store fetched."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._phase: dict[tuple[str, str, str], str] = {}
        self._gpu: dict[tuple[str, str, str], float] = {}
        self.stores: list[Any] = []

    def record(self, kind: str, namespace: str, name: str, status: dict[str, Any] | None) -> None:
        key = (kind, namespace, name)
        with self._lock:
            if status is None:
                self._phase.pop(key, None)
                self._gpu.pop(key, None)
                return
            self._phase[key] = str(status.get("phase") or "Pending")
            self._gpu[key] = float(status.get("gpuHours") or 0.0)

    def replace(self, kind: str, namespaces: Iterable[str] | None, bodies: list[dict[str, Any]]) -> None:
        """A fresh listing of ``kind`` (in ``namespaces``, None: all) replaces what was known."""
        fresh = {(kind, b["metadata"]["namespace"], b["metadata"]["name"]): b.get("status") or {} for b in bodies}
        scope = None if namespaces is None else set(namespaces)
        with self._lock:
            for book in (self._phase, self._gpu):
                for key in [k for k in book if k[0] == kind and (scope is None or k[1] in scope)]:
                    if key not in fresh:
                        del book[key]
            for key, status in fresh.items():
                self._phase[key] = str(status.get("phase") or "Pending")
                self._gpu[key] = float(status.get("gpuHours") or 0.0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            phases = Tally((k[0], k[1], p) for k, p in self._phase.items())
            gpu: dict[tuple[str, str], float] = {}
            for (kind, ns, _), h in self._gpu.items():
                gpu[(kind, ns)] = gpu.get((kind, ns), 0.0) + h
        by_phase = GaugeMetricFamily("synthloop_resources", "Custom resources by kind, namespace and phase.",
                                     labels=["kind", "namespace", "phase"])
        for (kind, ns, phase), n in sorted(phases.items()):
            by_phase.add_metric([kind, ns, phase], n)
        yield by_phase
        gpu_hours = GaugeMetricFamily("synthloop_gpu_hours", "GPU-hours of the Jobs of the known resources.",
                                      labels=["kind", "namespace"])
        for (kind, ns), h in sorted(gpu.items()):
            gpu_hours.add_metric([kind, ns], h)
        yield gpu_hours
        fetched = GaugeMetricFamily("synthloop_artifact_store_downloaded_bytes",
                                    "Bytes the operator downloaded from the artifact store.")
        fetched.add_metric([], float(sum(getattr(s, "downloaded", 0) for s in self.stores)))
        yield fetched


BOOKS = _Books()
REGISTRY.register(BOOKS)


def store_error(operation: str, exc: BaseException) -> None:
    """The artifact store's ``on_error`` hook."""
    STORE_ERRORS.labels(operation, type(exc).__name__).inc()


def gate_results(kind: str, report: Any) -> None:
    for result in getattr(report, "results", ()):
        GATES.labels(kind, result.metric, "passed" if result.passed else "failed").inc()


class _Handler(BaseHTTPRequestHandler):
    loop: asyncio.AbstractEventLoop | None = None

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok = _loop_alive(type(self).loop)
            self._reply(200 if ok else 503, b"ok\n" if ok else b"event loop not responding\n", "text/plain")
        else:
            self._reply(404, b"not found: /metrics or /healthz\n", "text/plain")

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # scrapes every 15 s are not news


def _loop_alive(loop: asyncio.AbstractEventLoop | None, timeout: float = 5.0) -> bool:
    if loop is None or loop.is_closed() or not loop.is_running():
        return False
    try:
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop).result(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means not alive
        return False
    return True


def serve(port: int, loop: asyncio.AbstractEventLoop, *, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` from a daemon thread (0: any free port)."""
    handler = type("Handler", (_Handler,), {"loop": loop})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="synthloop-metrics", daemon=True).start()
    log.info("serving /metrics and /healthz on %s:%d", host, server.server_address[1])
    return server
