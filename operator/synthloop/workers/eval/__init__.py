"""The `eval` task: runs a stage's suites. run imports torch lazily so the config stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synthloop.api.worker import WorkerConfig


def run(config: WorkerConfig) -> int:
    from synthloop.workers.eval.worker import run as _run

    return _run(config)
