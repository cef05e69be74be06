"""The `pretrain` worker. run imports torch lazily so params stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synthloop.api.worker import WorkerConfig


def run(config: WorkerConfig) -> int:
    from synthloop.workers.pretrain.worker import run as _run

    return _run(config)
