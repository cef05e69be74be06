"""The `synthloop-worker` command that runs inside the pods.

``synthloop-worker <task> [--config PATH]``. Each task is a module with ``run(config) -> int``;
the config comes from ``--config`` or the ``SYNTHLOOP_WORKER_CONFIG`` env var (a path or a JSON
document), see :mod:`synthloop.api.worker`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

TASKS: dict[str, str] = {
    "synth": "synthloop.workers.synth.shard",
    "synth-merge": "synthloop.workers.synth.merge",
    "pretrain": "synthloop.workers.pretrain",
    "reward-train": "synthloop.workers.reward",
    "align": "synthloop.workers.align",
    "eval": "synthloop.workers.evaluate",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthloop-worker", description=__doc__)
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--config", help="path to the worker config JSON (else $SYNTHLOOP_WORKER_CONFIG)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    from synthloop.api.worker import load_worker_config

    config = load_worker_config(args.config)
    module = importlib.import_module(TASKS[args.task])
    return int(module.run(config) or 0)


if __name__ == "__main__":
    sys.exit(main())
