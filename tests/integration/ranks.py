"""A worker run as CPU (gloo) ranks under the launcher a pod runs, and the JSON events its ranks
print: what the data-parallel tests compare against a one-process run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

#: Env that would make the child join another world (a pytest run inside a pod, or torchrun's own).
RANK_ENV = ("RANK", "WORLD_SIZE", "LOCAL_", "MASTER_", "JOB_COMPLETION_INDEX")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_worker(task: str, config: dict[str, Any], *, ranks: int, drop_env: tuple[str, ...] = ()) -> str:
    """``synthloop-worker task`` as one process, or as ``ranks`` gloo ranks under
    ``synthloop.workers.runtime.launch``; returns stdout (the ranks share it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(RANK_ENV + drop_env)}
    env.update(SYNTHLOOP_WORKER_CONFIG=json.dumps(config), SYNTHLOOP_CPU_RANKS=str(ranks), CUDA_VISIBLE_DEVICES="")
    cli = ["-m", "synthloop.workers.cli", task]
    argv = [sys.executable, *cli] if ranks == 1 else [
        sys.executable, "-m", "synthloop.workers.runtime.launch", "--nproc-per-node", str(ranks),
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *cli]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"{task} x{ranks} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def worker_events(text: str) -> list[dict[str, Any]]:
    """The JSON event lines of the ranks, which share stdout and may interleave on a line."""
    decoder, out, i = json.JSONDecoder(), [], text.find('{"event"')
    while i >= 0:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            end = i + 1
        else:
            out.append(obj)
        i = text.find('{"event"', end)
    return out
