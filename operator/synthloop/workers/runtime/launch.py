"""``python -m synthloop.workers.runtime.launch <torchrun flags> -m synthloop.workers.cli <task>``.

torchrun (``torch.distributed.run``, its own flags and rendezvous) with two things a pod needs:

* ``--nproc-per-node`` is the pod's GPU count (what the Job asks for). A pod that sees no
  CUDA device (the CPU process nodes of the local cluster, tests) runs
  ``SYNTHLOOP_CPU_RANKS`` gloo ranks instead (default 1); a pod that sees fewer GPUs than it
  was given fails with that mismatch rather than oversubscribing them.
* The exit code of the rank that failed first is the pod's exit code. torchrun itself exits 1
  for any failed rank, which would hide ``EXIT_INVALID_INPUT`` from the Job's podFailurePolicy.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

CPU_RANKS_ENV = "SYNTHLOOP_CPU_RANKS"
_NPROC_FLAGS = ("--nproc-per-node", "--nproc_per_node")


def _cpu_ranks(env: dict[str, str] | os._Environ[str]) -> int:
    raw = env.get(CPU_RANKS_ENV, "").strip()
    if not raw:
        return 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"env {CPU_RANKS_ENV}={raw!r}: expected a positive integer")
    return value


def resolve_nproc(argv: Sequence[str], *, cuda_devices: int, env: dict[str, str] | os._Environ[str]) -> list[str]:
    """``argv`` with ``--nproc-per-node`` set to what this pod can run (see the module doc)."""
    out = list(argv)
    for i, arg in enumerate(out):
        flag, sep, value = arg.partition("=")
        if flag not in _NPROC_FLAGS:
            continue
        if not sep:
            if i + 1 >= len(out):
                break
            value = out[i + 1]
        asked = int(value)
        if cuda_devices == 0:
            nproc = _cpu_ranks(env)
        elif cuda_devices < asked:
            raise SystemExit(f"--nproc-per-node={asked}: this pod sees only {cuda_devices} GPU(s)")
        else:
            nproc = asked
        if sep:
            out[i] = f"{flag}={nproc}"
        else:
            out[i + 1] = str(nproc)
        return out
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import torch
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from synthloop.workers.errors import EXIT_INVALID_INPUT

    args_in = list(sys.argv[1:] if argv is None else argv)
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    args = get_args_parser().parse_args(resolve_nproc(args_in, cuda_devices=cuda, env=os.environ))
    try:
        run(args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        codes = {f.exitcode for f in exc.failures.values()}
        # invalid input on any rank is the answer: no other attempt could do better
        code = EXIT_INVALID_INPUT if EXIT_INVALID_INPUT in codes else failure.exitcode
        # a rank killed by a signal reports -N; a container runtime reports 128+N
        code = 128 - code if code < 0 else code
        print(f"synthloop launch: rank {rank} (local {failure.local_rank}) exited {code}; "
              f"the pod exits {code or 1}", file=sys.stderr, flush=True)
        return code or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
