"""The `synthloop-worker` command that runs inside the pods.

``synthloop-worker <task> [--config PATH]``. Each task is a module with ``run(config) -> int``;
the config comes from ``--config`` or the ``SYNTHLOOP_WORKER_CONFIG`` env var (a path or a JSON
document), see :mod:`synthloop.api.worker`.

A failure ends the process with a one-line reason in the termination message (what the
operator puts into the CR's ``Failed`` condition) and an exit code the Job's podFailurePolicy
reads: ``EXIT_INVALID_INPUT`` for input or config that cannot work, 1 for anything else.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from synthloop.workers.errors import (
    EXIT_INVALID_INPUT,
    InvalidInput,
    one_line,
    validation_message,
    write_termination_message,
)

TASKS: dict[str, str] = {
    "synth": "synthloop.workers.synth.shard",
    "synth-merge": "synthloop.workers.synth.merge",
    "pretrain": "synthloop.workers.pretrain",
    "reward-train": "synthloop.workers.reward",
    "align": "synthloop.workers.align",
    "eval": "synthloop.workers.eval",
}


def _run(task: str, config_source: str | None) -> int:
    from pydantic import ValidationError

    from synthloop.api.worker import load_worker_config

    try:
        config = load_worker_config(config_source)
    except (ValidationError, ValueError) as exc:  # the operator's envelope: JSON or schema
        raise InvalidInput(f"worker config: {validation_message(exc)}") from exc
    from synthloop.artifacts.store import (
        WORKER_RETRY,
        ArtifactCorrupt,
        expect_checksums,
        set_default_retry,
    )

    expect_checksums(config.checksums)  # every download of an input checks its sha256
    set_default_retry(WORKER_RETRY)  # a store restart is waited out, not a failed attempt
    module = importlib.import_module(TASKS[task])
    try:
        return int(module.run(config) or 0)
    except ValidationError as exc:  # a worker's params model: deterministic, like bad input
        raise InvalidInput(f"{task} params: {validation_message(exc)}") from exc
    except ArtifactCorrupt as exc:  # a retry would read the same bytes
        raise InvalidInput(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthloop-worker", description=__doc__)
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--config", help="path to the worker config JSON (else $SYNTHLOOP_WORKER_CONFIG)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return _run(args.task, args.config)
    except InvalidInput as exc:
        reason = one_line(str(exc))
        print(f"synthloop-worker {args.task}: invalid input: {reason}", file=sys.stderr, flush=True)
        write_termination_message(reason)
        return EXIT_INVALID_INPUT
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        # Crashes keep their traceback in the log; the reason names the exception.
        traceback.print_exc()
        write_termination_message(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, SystemExit):
            raise
        return 1


if __name__ == "__main__":
    sys.exit(main())
