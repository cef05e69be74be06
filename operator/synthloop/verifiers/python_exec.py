"""Run model-written Python against tests in a separate, resource-limited process.

The code is untrusted: it runs in ``python -I`` (isolated mode) in a fresh temp dir with
``resource.setrlimit`` caps on address space, CPU seconds, file size and processes, a wall-clock
timeout, and an environment without credentials. This is a guard against runaway loops and
memory blow-ups from garbage generations, not a security sandbox.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    returncode: int | None
    timed_out: bool
    stdout: str
    stderr: str


def extract_code(response: str) -> str:
    """The code in a response: the longest fenced block, else the whole text."""
    blocks = [b.strip("\n") for b in _FENCE.findall(response)]
    blocks = [b for b in blocks if b.strip()]
    if blocks:
        return str(max(blocks, key=len))
    return response.strip()


# The limits are set by a tiny bootstrap inside the child (not ``preexec_fn``, which is unsafe
# when the parent has threads, as the generation backends do).
_BOOTSTRAP = """
import resource, runpy, sys
mem, cpu = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
sys.argv = [sys.argv[3]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_python(
    code: str,
    tests: str | Sequence[str] = "",
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
) -> ExecResult:
    """Run ``code`` followed by ``tests`` (assert statements); passed means exit status 0."""
    if timeout_s <= 0 or memory_mb <= 0:
        raise ValueError(f"timeout_s and memory_mb must be positive, got {timeout_s}, {memory_mb}")
    test_text = tests if isinstance(tests, str) else "\n".join(tests)
    program = code.rstrip() + "\n\n" + test_text + "\n"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    cpu_s = max(1, int(timeout_s + 0.999))
    with tempfile.TemporaryDirectory(prefix="synthloop-exec-") as tmp:
        path = Path(tmp) / "solution.py"
        path.write_text(program, encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", _BOOTSTRAP, str(memory_mb << 20), str(cpu_s), str(path)],
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            return ExecResult(False, None, True, out.decode(errors="replace")[-2000:], err.decode(errors="replace")[-2000:])
    return ExecResult(
        passed=proc.returncode == 0,
        returncode=proc.returncode,
        timed_out=False,
        stdout=out.decode(errors="replace")[-2000:],
        stderr=err.decode(errors="replace")[-2000:],
    )


def check_program(response: str, tests: str | Sequence[str], *, timeout_s: float = 5.0, memory_mb: int = 512) -> bool:
    """Whether the code in ``response`` passes ``tests``."""
    code = extract_code(response)
    if not code:
        return False
    return run_python(code, tests, timeout_s=timeout_s, memory_mb=memory_mb).passed
