"""The store's time-bounded retries: what lets a worker wait out a MinIO restart."""

from __future__ import annotations

from typing import Any

import pytest

from synthloop.artifacts.store import WORKER_RETRY, ArtifactStore, Head, RetryPolicy
from synthloop.artifacts.uris import ArtifactURI


class Down:
    """A backend that refuses connections for its first ``fail`` calls (a restarting MinIO)."""

    def __init__(self, fail: int) -> None:
        self.fail, self.calls = fail, 0

    def head(self, loc: ArtifactURI) -> Any:
        self.calls += 1
        if self.calls <= self.fail:
            raise ConnectionRefusedError("connection refused")
        return Head(size=1, sha256="s")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def store_for(backend: Down, policy: RetryPolicy, clock: Clock) -> ArtifactStore:
    return ArtifactStore(s3=backend, retry=policy, sleep=clock.sleep, clock=lambda: clock.now)  # type: ignore[arg-type]


def test_a_deadline_keeps_retrying_past_the_attempt_count_until_the_outage_ends() -> None:
    clock = Clock()
    backend = Down(fail=12)  # more failures than attempts
    policy = RetryPolicy(attempts=3, base_seconds=0.5, max_seconds=2.0, deadline_seconds=60.0)
    assert store_for(backend, policy, clock).head("s3://b/k").sha256 == "s"
    assert backend.calls == 13 and clock.now < 60.0


def test_a_deadline_still_bounds_the_wait() -> None:
    clock = Clock()
    backend = Down(fail=10**6)
    policy = RetryPolicy(attempts=3, base_seconds=0.5, max_seconds=2.0, deadline_seconds=30.0)
    with pytest.raises(ConnectionRefusedError):
        store_for(backend, policy, clock).head("s3://b/k")
    # gives up at the first failure past the deadline: at most one more backoff beyond it
    assert 30.0 <= clock.now <= 32.0 and backend.calls > 3


def test_without_a_deadline_the_attempt_count_is_the_bound() -> None:
    clock = Clock()
    backend = Down(fail=10**6)
    with pytest.raises(ConnectionRefusedError):
        store_for(backend, RetryPolicy(attempts=4, base_seconds=0.5, max_seconds=1.0), clock).head("s3://b/k")
    assert backend.calls == 4


def test_workers_wait_out_a_ten_second_restart() -> None:
    clock = Clock()

    class Restart(Down):
        def head(self, loc: ArtifactURI) -> Any:
            self.fail = 10**6 if clock.now < 10.0 else 0  # down for the first 10 s
            return super().head(loc)

    backend = Restart(fail=0)
    assert store_for(backend, WORKER_RETRY, clock).head("s3://b/k").sha256 == "s"
    assert 10.0 <= clock.now <= 10.0 + WORKER_RETRY.max_seconds
