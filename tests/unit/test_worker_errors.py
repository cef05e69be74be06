"""How workers fail and how the process-node agent reports it, without a cluster:
exit codes and termination messages of synthloop-worker, torchrun's rank count in a pod, the
agent's termination message and status retries, progress reports that never kill a worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from synthloop.artifacts.manifest import report_progress
from synthloop.local.kube import KubeError
from synthloop.local.nodeagent.podenv import resolve_peer_names
from synthloop.local.nodeagent.runner import ContainerRun, PodRunner
from synthloop.workers.errors import EXIT_INVALID_INPUT, TERMINATION_PATH_ENV
from synthloop.workers.runtime.launch import resolve_nproc

pytestmark = pytest.mark.unit


def _worker(tmp_path: Path, config: dict[str, Any]) -> tuple[subprocess.CompletedProcess[str], str]:
    message = tmp_path / "termination-log"
    env = {"PATH": "/usr/bin:/bin", "SYNTHLOOP_WORKER_CONFIG": json.dumps(config),
           TERMINATION_PATH_ENV: str(message), "SYNTHLOOP_WORKDIR": str(tmp_path / "work")}
    proc = subprocess.run([sys.executable, "-m", "synthloop.workers.cli", config.get("task", "pretrain")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc, message.read_text() if message.exists() else ""


def test_unknown_blend_source_exits_invalid_input_with_a_one_line_reason(tmp_path: Path) -> None:
    params = {"model": {"preset": "tiny-test"},
              "phases": [{"name": "p", "steps": 2, "blend": [{"source": "klingon", "weight": 1}]}]}
    proc, message = _worker(tmp_path, {"task": "pretrain", "output": f"file://{tmp_path}/out/", "params": params})
    assert proc.returncode == EXIT_INVALID_INPUT, proc.stderr[-2000:]
    assert message.startswith("phase 'p': unknown blend sources ['klingon']; expected builtin ")
    assert message.count("\n") == 1  # one line


def test_params_that_do_not_validate_are_invalid_input_naming_the_field(tmp_path: Path) -> None:
    proc, message = _worker(tmp_path, {"task": "pretrain", "output": f"file://{tmp_path}/o/",
                                       "params": {"phases": "nope"}})
    assert proc.returncode == EXIT_INVALID_INPUT
    assert message.startswith("pretrain params: ") and "phases" in message


def test_a_crash_exits_1_and_names_the_exception(tmp_path: Path) -> None:
    params = {"model": {"preset": "tiny-test"},
              "phases": [{"name": "p", "steps": 2, "blend": [{"source": "english", "weight": 1}]}]}
    # an s3:// output with no S3 endpoint configured: the store call fails, not the input
    proc, message = _worker(tmp_path, {"task": "pretrain", "output": "s3://b/p/", "params": params})
    assert proc.returncode == 1
    assert message.split(":")[0].endswith("Error") and "Traceback" in proc.stderr


@pytest.mark.parametrize(("argv", "cuda", "env", "want"), [
    (["--nproc-per-node=8", "x.py"], 8, {}, "--nproc-per-node=8"),  # a DGX: a rank per GPU
    (["--nproc-per-node=8", "x.py"], 0, {}, "--nproc-per-node=1"),  # no CUDA: one CPU rank
    (["--nproc-per-node", "8", "x.py"], 0, {"SYNTHLOOP_CPU_RANKS": "2"}, "2"),
])
def test_torchrun_ranks_per_pod(argv: list[str], cuda: int, env: dict[str, str], want: str) -> None:
    assert want in resolve_nproc(argv, cuda_devices=cuda, env=env)


def test_fewer_gpus_than_ranks_is_refused() -> None:
    with pytest.raises(SystemExit, match="sees only 4 GPU"):
        resolve_nproc(["--nproc-per-node=8"], cuda_devices=4, env={})


def test_peer_names_under_the_pods_subdomain_resolve_to_the_node() -> None:
    pod = {"metadata": {"namespace": "ns"}, "spec": {"subdomain": "r-pretrain"}}
    assert resolve_peer_names("--master-addr=r-pretrain-0.r-pretrain", pod) == "--master-addr=127.0.0.1"
    assert resolve_peer_names("r-pretrain-0.r-pretrain.ns.svc.cluster.local:23001", pod) == "127.0.0.1:23001"
    assert resolve_peer_names("minio.other:9000", pod) == "minio.other:9000"
    assert resolve_peer_names("r-pretrain-0.r-pretrain", {"metadata": {}, "spec": {}}) == "r-pretrain-0.r-pretrain"


class FlakyKube:
    """An apiserver that refuses the first ``failures`` status PATCHes (e.g. while restarting)."""

    def __init__(self, failures: int) -> None:
        self.failures, self.patches = failures, []  # type: ignore[var-annotated]

    def patch(self, path: str, body: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise KubeError(0, "connection refused")
        self.patches.append(body)


def _runner(tmp_path: Path, kube: Any, policy: str = "FallbackToLogsOnError") -> PodRunner:
    pod = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"},
           "spec": {"restartPolicy": "Never", "containers": [
               {"name": "worker", "command": ["true"], "terminationMessagePolicy": policy}]}}
    return PodRunner(pod, kube=kube, pods_dir=tmp_path, base_path="/usr/bin", server="https://x",
                     ca_cert=tmp_path / "ca", on_done=lambda r: None)


def test_the_final_status_is_retried_until_it_lands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("synthloop.local.nodeagent.runner.time.sleep", lambda s: None)
    kube = FlakyKube(failures=3)
    runner = _runner(tmp_path, kube)
    runner._finish("Failed", None, None)
    assert len(kube.patches) == 1 and kube.patches[0]["status"]["phase"] == "Failed"


def test_termination_message_file_else_the_log_tail_on_error(tmp_path: Path) -> None:
    runner = _runner(tmp_path, FlakyKube(0))
    run: ContainerRun = runner.containers[0]
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(200)))
    file = runner._message_file("worker")
    file.parent.mkdir(parents=True)
    file.write_text("phase 'p': unknown blend sources\n")
    assert runner._termination_message(run, 78, log) == "phase 'p': unknown blend sources"
    file.write_text("")
    tail = runner._termination_message(run, 1, log)
    assert tail is not None and tail.endswith("line 199") and len(tail.encode()) <= 2048
    assert runner._termination_message(run, 0, log) is None  # success: no fallback
    plain = _runner(tmp_path / "b", FlakyKube(0), policy="File")
    assert plain._termination_message(plain.containers[0], 1, log) is None


class DownStore:
    def put_bytes(self, uri: str, data: bytes) -> None:
        raise ConnectionError("minio restarting")


def test_a_progress_report_that_cannot_be_written_does_not_raise(capsys: pytest.CaptureFixture[str]) -> None:
    ok = report_progress(DownStore(), "s3://b/p/", task="synth", index=0, done=1, total=2)  # type: ignore[arg-type]
    assert ok is False and "progress-skipped" in capsys.readouterr().err
