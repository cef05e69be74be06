"""`synthloop local up/down` end to end in a scratch SYNTHLOOP_HOME: bad input leaves nothing
half-started, and `down` stops every process `up` started (pods' processes included)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthloop.local.binaries import COMPONENTS
from synthloop.local.paths import LocalPaths
from synthloop.local.supervisor import ProcessRecord, is_alive
from synthloop.local.testing import LocalCluster, wait_for

pytestmark = pytest.mark.local_only  # the embedded cluster itself (its CLI, KWOK, process nodes)

# ports of the scratch clusters: away from the session cluster's defaults
PORTS = {
    "--etcd-port": 23379, "--etcd-peer-port": 23380, "--apiserver-port": 27443,
    "--controller-manager-port": 21257, "--scheduler-port": 21259, "--minio-port": 29100,
    "--minio-console-port": 29101, "--kubelet-port": 21250,
}
PORT_ARGS = [f"{k}={v}" for k, v in PORTS.items()]


@pytest.fixture
def scratch_home(local_cluster: LocalCluster, tmp_path: Path) -> Iterator[Path]:
    """A SYNTHLOOP_HOME whose bin/ links to the cached binaries (one `down` at the end)."""
    real = LocalPaths.default().bin_dir
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    for name in COMPONENTS:
        (home / "bin" / name).symlink_to(real / name)
    shutil.copy(real / "build-record.json", home / "bin" / "build-record.json")
    yield home
    _cli(home, "down")


def _cli(home: Path, *args: str, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "SYNTHLOOP_HOME": str(home), **(env or {})}
    return subprocess.run([sys.executable, "-m", "synthloop.cli", "local", *args], env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _nothing_started(home: Path) -> None:
    assert not (home / "local" / "state.json").exists()
    ours = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True, check=False)
    assert ours.stdout.strip() == "", f"processes left running: {ours.stdout}"


def test_port_in_use_is_named_and_nothing_starts(scratch_home: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", PORTS["--apiserver-port"]))
        s.listen()
        proc = _cli(scratch_home, "up", "--no-build", *PORT_ARGS)
    assert proc.returncode == 1
    assert f"{PORTS['--apiserver-port']} (--apiserver-port)" in proc.stderr
    _nothing_started(scratch_home)


def test_corrupted_binary_is_refused_then_rebuilt(scratch_home: Path) -> None:
    etcd = scratch_home / "bin" / "etcd"
    real = etcd.resolve()
    etcd.unlink()
    shutil.copy(real, etcd)
    with etcd.open("r+b") as f:
        f.seek(4096)
        f.write(b"\x00corrupt\x00")
    proc = _cli(scratch_home, "up", "--no-build", *PORT_ARGS)
    assert proc.returncode == 1 and "corrupted" in proc.stderr and "etcd" in proc.stderr
    _nothing_started(scratch_home)
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain to rebuild with")
    proc = _cli(scratch_home, "build", "etcd", timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "corrupted" in proc.stderr and "built etcd" in proc.stderr


def test_no_go_toolchain_is_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    proc = _cli(home, "up", *PORT_ARGS, env={"PATH": str(Path(sys.executable).parent)})
    assert proc.returncode == 1
    assert "no Go toolchain" in proc.stderr and "Nothing was started" in proc.stderr
    _nothing_started(home)


def test_up_twice_is_refused(local_cluster: LocalCluster) -> None:
    proc = _cli(LocalPaths.default().home, "up", "--no-build")
    assert proc.returncode == 1 and "already running" in proc.stderr
    status = _cli(LocalPaths.default().home, "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["running"]


def test_up_then_down_leaves_no_process(scratch_home: Path) -> None:
    proc = _cli(scratch_home, "up", "--no-build", "--kwok-nodes=2", "--kwok-cpu-nodes=1", *PORT_ARGS)
    assert proc.returncode == 0, proc.stderr
    assert f"export KUBECONFIG={scratch_home}/local/kubeconfig" in proc.stdout
    env_out = _cli(scratch_home, "env").stdout
    assert f"SYNTHLOOP_S3_ENDPOINT=127.0.0.1:{PORTS['--minio-port']}" in env_out
    state = json.loads((scratch_home / "local" / "state.json").read_text())
    records = [ProcessRecord.from_json(p) for p in state["processes"]]
    assert {r.name for r in records} == {
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "minio", "kwok",
        "node-agent"}
    assert all(is_alive(r) for r in records)

    # a pod really running on the scratch cluster's process node
    kubeconfig = scratch_home / "local" / "kubeconfig"
    kubectl = [str(scratch_home / "bin" / "kubectl"), f"--kubeconfig={kubeconfig}"]
    wait_for(lambda: subprocess.run([*kubectl, "get", "sa", "default"], capture_output=True,
                                    check=False).returncode == 0, timeout=60, what="default SA")
    subprocess.run([*kubectl, "run", "sleeper", "--image=x", "--restart=Never",
                    "--overrides", json.dumps({"spec": {"nodeSelector": {"kubernetes.io/hostname": "local-cpu-0"}}}),
                    "--command", "--", "sleep", "600"], check=True, capture_output=True)
    pod_pids = scratch_home / "local" / "pods"
    pid_file = wait_for(lambda: next(iter(pod_pids.glob("default_sleeper_*/pids/sleeper.json")), None),
                        timeout=60, what="the pod's process")
    pod_proc = ProcessRecord.from_json(json.loads(pid_file.read_text()))
    assert is_alive(pod_proc)

    down = _cli(scratch_home, "down")
    assert down.returncode == 0, down.stderr
    for r in [*records, pod_proc]:
        assert not is_alive(r), f"{r.name} (pid {r.pid}) still running after down"
    _nothing_started(scratch_home)
