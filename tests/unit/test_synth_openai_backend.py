"""The OpenAI-compatible backend against a real HTTP server on loopback.

The server speaks the ``/v1/chat/completions`` protocol and can be told to fail the first
requests, stall, or reject, so retries, backoff, timeouts and bounded concurrency are
exercised over real sockets.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from synthloop.workers.synth.backends.base import Sampling
from synthloop.workers.synth.backends.openai_backend import EndpointError, OpenAIBackend

pytestmark = pytest.mark.unit


class Server:
    def __init__(self) -> None:
        self.fail_first = 0
        self.fail_status = 503
        self.delay_s = 0.0
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.auth: list[str | None] = []


@pytest.fixture
def server() -> Iterator[tuple[Server, str]]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append(body)
                state.auth.append(self.headers.get("Authorization"))
                n = len(state.requests)
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                time.sleep(state.delay_s)
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "not found"})
                if n <= state.fail_first:
                    return self._send(state.fail_status, {"error": "busy"})
                question = body["messages"][-1]["content"]
                choices = [
                    {"index": i, "message": {"role": "assistant", "content": f"echo {i}: {question}"},
                     "finish_reason": "length" if body["max_tokens"] < 5 else "stop"}
                    for i in range(body.get("n", 1))
                ]
                self._send(200, {"choices": choices, "usage": {"prompt_tokens": 7, "completion_tokens": 4 * len(choices)}})
            finally:
                with state.lock:
                    state.in_flight -= 1

        def _send(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def convs(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"q{i}"}] for i in range(n)]


def test_generates_in_order_with_n_completions(server: tuple[Server, str], monkeypatch: pytest.MonkeyPatch) -> None:
    state, url = server
    monkeypatch.setenv("TEST_KEY", "sekrit")
    backend = OpenAIBackend(endpoint=url, model="gen", api_key_env="TEST_KEY", concurrency=4)
    out = backend.generate(convs(6), sampling=Sampling(max_tokens=16, n=2, temperature=0.5))
    assert [[c.text for c in row] for row in out] == [[f"echo 0: q{i}", f"echo 1: q{i}"] for i in range(6)]
    assert all(c.finish_reason == "stop" and c.prompt_tokens == 7 for row in out for c in row)
    assert state.requests[0]["model"] == "gen" and state.requests[0]["n"] == 2
    assert set(state.auth) == {"Bearer sekrit"}
    truncated = backend.generate(convs(1), sampling=Sampling(max_tokens=2))
    assert truncated[0][0].truncated


def test_retries_transient_errors_with_backoff(server: tuple[Server, str]) -> None:
    state, url = server
    state.fail_first = 2
    backend = OpenAIBackend(endpoint=url + "/v1", model="gen", max_retries=3, backoff_s=0.01, concurrency=1)
    out = backend.generate(convs(1), sampling=Sampling())
    assert out[0][0].text == "echo 0: q0"
    assert backend.retries == 2 and len(state.requests) == 3


def test_concurrency_is_bounded(server: tuple[Server, str]) -> None:
    state, url = server
    state.delay_s = 0.05
    backend = OpenAIBackend(endpoint=url, model="gen", concurrency=3)
    backend.generate(convs(12), sampling=Sampling())
    assert 1 < state.max_in_flight <= 3


def test_timeouts_and_permanent_errors_fail_clearly(server: tuple[Server, str]) -> None:
    state, url = server
    state.delay_s = 0.5
    slow = OpenAIBackend(endpoint=url, model="gen", timeout_s=0.1, max_retries=1, backoff_s=0.01)
    with pytest.raises(EndpointError, match="every request to .* failed"):
        slow.generate(convs(1), sampling=Sampling())
    state.delay_s = 0.0
    state.fail_first = 100
    state.fail_status = 401
    rejected = OpenAIBackend(endpoint=url, model="gen", max_retries=5, backoff_s=0.01)
    before = len(state.requests)
    with pytest.raises(EndpointError, match="HTTP 401"):
        rejected.generate(convs(1), sampling=Sampling())
    assert len(state.requests) == before + 1  # 401 is not retried


def test_partial_failures_become_empty_completions(server: tuple[Server, str]) -> None:
    state, url = server
    state.fail_first = 1
    backend = OpenAIBackend(endpoint=url, model="gen", max_retries=0, concurrency=1)
    out = backend.generate(convs(3), sampling=Sampling())
    assert [row[0].text for row in out] == ["", "echo 0: q1", "echo 0: q2"]
    assert out[0][0].finish_reason == "error"
