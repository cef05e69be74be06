"""`synthloop local up | down | status | env`: the control plane, MinIO and nodes as processes.

`up` either brings every component to ready or stops what it started and raises
``ClusterError``; the state file is written after each start, so even a CLI killed midway
leaves `down` a complete list of pids to stop.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloop.local.binaries import CLUSTER_COMPONENTS, BinaryError, ensure_binaries
from synthloop.local.fleet import create_nodes, kwok_fleet, render_stages
from synthloop.local.kube import KubeClient
from synthloop.local.kubeconfig import write_cert_kubeconfig
from synthloop.local.options import KWOK_ANNOTATION, KWOK_ANNOTATION_VALUE, ClusterOptions
from synthloop.local.paths import LocalPaths
from synthloop.local.pki import SERVICE_CIDR, Pki, ensure_pki
from synthloop.local.supervisor import (
    ProcessRecord,
    is_alive,
    port_in_use,
    process_start_ticks,
    rss_bytes,
    start_process,
    stop_process,
    tail,
)

SYSTEM_NAMESPACE = "synthloop-system"
MINIO_SECRET = "synthloop-minio"
# Stop order: consumers before what they consume.
STOP_ORDER = (
    "node-agent", "kwok", "kube-scheduler", "kube-controller-manager", "minio",
    "kube-apiserver", "etcd",
)

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class ClusterError(RuntimeError):
    """`up`/`down` could not do what was asked; nothing it started is left running."""


@dataclass
class ClusterState:
    """What `up` started and how to reach it; persisted as ``state.json``."""

    options: ClusterOptions
    processes: list[ProcessRecord] = field(default_factory=list)
    # optional components (Kueue) that may come and go on a running cluster: a dead one does
    # not make the cluster itself "not running"
    addons: list[ProcessRecord] = field(default_factory=list)
    access_key: str = ""
    secret_key: str = ""
    kubeconfig: str = ""
    started_at: float = 0.0
    ready: bool = False

    @property
    def s3_endpoint(self) -> str:
        return f"127.0.0.1:{self.options.minio_port}"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.options.apiserver_port}"

    def save(self, path: Path) -> None:
        data = {
            "options": self.options.to_json(),
            "processes": [p.to_json() for p in self.processes],
            "addons": [p.to_json() for p in self.addons],
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "kubeconfig": self.kubeconfig,
            "started_at": self.started_at,
            "ready": self.ready,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> ClusterState | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise ClusterError(f"state file {path} is not valid JSON ({exc}); remove it") from exc
        return cls(
            options=ClusterOptions.from_json(data["options"]),
            processes=[ProcessRecord.from_json(p) for p in data["processes"]],
            addons=[ProcessRecord.from_json(p) for p in data.get("addons", [])],
            access_key=data.get("access_key", ""),
            secret_key=data.get("secret_key", ""),
            kubeconfig=data.get("kubeconfig", ""),
            started_at=data.get("started_at", 0.0),
            ready=data.get("ready", False),
        )

    def alive(self) -> list[ProcessRecord]:
        return [p for p in self.processes if is_alive(p)]

    def addon(self, name: str) -> ProcessRecord | None:
        return next((p for p in self.addons if p.name == name), None)

    def env(self, paths: LocalPaths) -> dict[str, str]:
        """Environment for clients: kubectl/kopf via KUBECONFIG, workers via the S3 vars."""
        return {
            "KUBECONFIG": self.kubeconfig,
            "PATH": f"{paths.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "SYNTHLOOP_S3_ENDPOINT": self.s3_endpoint,
            "SYNTHLOOP_S3_SECURE": "0",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "SYNTHLOOP_S3_BUCKET": self.options.bucket,
        }


@contextmanager
def _locked(paths: LocalPaths) -> Iterator[None]:
    """Serialise `up`/`down` between concurrent CLIs and pytest sessions."""
    paths.local_dir.mkdir(parents=True, exist_ok=True)
    with paths.lock_file.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _minio_credentials(paths: LocalPaths) -> tuple[str, str]:
    path = paths.local_dir / "minio-credentials.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data["accessKey"], data["secretKey"]
    access, secret = "synthloop", secrets.token_hex(16)
    path.write_text(json.dumps({"accessKey": access, "secretKey": secret}))
    path.chmod(0o600)
    return access, secret


def _wait_http(
    url: str,
    *,
    record: ProcessRecord,
    timeout: float,
    context: ssl.SSLContext | None = None,
) -> None:
    """Poll ``url`` until it answers 200; fail early (with the log tail) if the process died."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not is_alive(record):
            raise ClusterError(
                f"{record.name} exited during startup; last lines of {record.log}:\n"
                f"{tail(record.log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5, context=context) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise ClusterError(
        f"{record.name} was not ready at {url} after {timeout:.0f}s ({last}); last lines of "
        f"{record.log}:\n{tail(record.log)}"
    )


def _insecure_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def load_state(paths: LocalPaths | None = None) -> ClusterState | None:
    return ClusterState.load((paths or LocalPaths.default()).state_file)


def running_state(paths: LocalPaths | None = None) -> ClusterState | None:
    """The state of a cluster whose processes are all alive and that finished `up`, else None."""
    state = load_state(paths)
    if state is None or not state.ready or len(state.alive()) != len(state.processes):
        return None
    return state


class _Starter:
    """Starts components one by one, recording each in the state file as it goes."""

    def __init__(self, *, paths: LocalPaths, state: ClusterState, progress: Progress) -> None:
        self.paths = paths
        self.state = state
        self.progress = progress

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ProcessRecord:
        log = self.paths.logs_dir / f"{name}.log"
        record = start_process(name, argv, log_path=log, env=env)
        self.state.processes.append(record)
        self.state.save(self.paths.state_file)
        self.progress(f"started {name} (pid {record.pid}, log {log})")
        return record


def _preflight(options: ClusterOptions, paths: LocalPaths) -> None:
    existing = ClusterState.load(paths.state_file)
    if existing is not None:
        alive = existing.alive()
        if alive:
            pids = ", ".join(f"{p.name}={p.pid}" for p in alive)
            raise ClusterError(
                f"a local cluster is already running under {paths.local_dir} ({pids}); "
                f"use it (`synthloop local env`) or stop it first with `synthloop local down`"
            )
        paths.state_file.unlink()  # stale: every recorded process is gone
    # Kueue's ports matter only when Kueue starts with the cluster (`kueue up` checks its own later)
    busy = [(name, port) for name, port in options.ports().items()
            if (options.kueue or not name.startswith("kueue_")) and port_in_use(port)]
    if busy:
        desc = ", ".join(f"{port} (--{name.replace('_', '-')})" for name, port in busy)
        raise ClusterError(
            f"port(s) already in use on 127.0.0.1: {desc}; stop whatever holds them or choose "
            f"other ports with those options. Nothing was started."
        )


def up(
    options: ClusterOptions,
    *,
    paths: LocalPaths | None = None,
    build: bool = True,
    progress: Progress = _stderr,
) -> ClusterState:
    """Start the whole cluster and return its state, or raise with nothing left running."""
    paths = paths or LocalPaths.default()
    try:
        options.validate()
    except ValueError as exc:
        raise ClusterError(str(exc)) from exc
    t0 = time.monotonic()
    with _locked(paths):
        _preflight(options, paths)
        try:
            names = [*CLUSTER_COMPONENTS, *(["kueue"] if options.kueue else [])]
            bins = ensure_binaries(names, paths=paths, build=build, progress=progress)
        except BinaryError as exc:
            raise ClusterError(f"{exc}. Nothing was started.") from exc
        pki = ensure_pki(paths.pki_dir)
        access, secret = _minio_credentials(paths)
        state = ClusterState(
            options=options, access_key=access, secret_key=secret,
            kubeconfig=str(paths.kubeconfig), started_at=time.time(),
        )
        # every `up` is a fresh cluster: etcd/MinIO data and the previous pods' dirs go
        shutil.rmtree(paths.data_dir, ignore_errors=True)
        shutil.rmtree(paths.pods_dir, ignore_errors=True)
        paths.data_dir.mkdir(parents=True)
        state.save(paths.state_file)
        starter = _Starter(paths=paths, state=state, progress=progress)
        try:
            _start_all(starter, bins=bins, pki=pki, paths=paths)
            if options.kueue:
                _start_kueue(state, paths=paths, pki=pki, build=build, progress=progress)
        except BaseException as exc:
            progress(f"up failed ({exc.__class__.__name__}); stopping what was started")
            for msg in _stop_all(state, paths):
                progress(msg)
            paths.state_file.unlink(missing_ok=True)
            if isinstance(exc, ClusterError | KeyboardInterrupt):
                raise
            raise ClusterError(f"up failed: {exc}") from exc
        state.ready = True
        state.save(paths.state_file)
    progress(f"local cluster ready in {time.monotonic() - t0:.1f}s; kubeconfig {paths.kubeconfig}")
    return state


def _start_all(s: _Starter, *, bins: dict[str, Path], pki: Pki, paths: LocalPaths) -> None:
    o = s.state.options
    timeout = o.ready_timeout
    etcd_url = f"http://127.0.0.1:{o.etcd_port}"
    etcd = s.start("etcd", [
        str(bins["etcd"]), "--name=synthloop", f"--data-dir={paths.data_dir / 'etcd'}",
        f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls=http://127.0.0.1:{o.etcd_peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{o.etcd_peer_port}",
        f"--initial-cluster=synthloop=http://127.0.0.1:{o.etcd_peer_port}",
        # a throwaway single-member cluster: skip fsync, it dominates latency on small disks
        "--unsafe-no-fsync", "--quota-backend-bytes=4294967296", "--log-level=warn",
    ])
    _wait_http(f"{etcd_url}/health", record=etcd, timeout=timeout)

    apiserver = s.start("kube-apiserver", [
        str(bins["kube-apiserver"]),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--secure-port={o.apiserver_port}",
        f"--tls-cert-file={pki.cert('apiserver')}", f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca_cert}",
        "--authorization-mode=RBAC",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
        f"--kubelet-certificate-authority={pki.ca_cert}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        "--max-requests-inflight=800", "--max-mutating-requests-inflight=400",
        "--profiling=false", "--v=1",
    ])
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    _wait_http(f"{s.state.server}/readyz", record=apiserver, timeout=timeout, context=ctx)

    kubeconfigs = {}
    for name in ("admin", "kube-controller-manager", "kube-scheduler", "kwok", "node-agent"):
        path = paths.kubeconfig if name == "admin" else paths.component_kubeconfig(name)
        kubeconfigs[name] = write_cert_kubeconfig(
            path, server=s.state.server, ca_cert=pki.ca_cert,
            client_cert=pki.cert(name), client_key=pki.key(name),
        )

    kcm = s.start("kube-controller-manager", [
        str(bins["kube-controller-manager"]),
        f"--kubeconfig={kubeconfigs['kube-controller-manager']}",
        "--bind-address=127.0.0.1", f"--secure-port={o.controller_manager_port}",
        "--leader-elect=false", "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_key}", f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}", f"--cluster-signing-key-file={pki.ca_key}",
        "--controllers=*", "--kube-api-qps=200", "--kube-api-burst=400",
        "--concurrent-job-syncs=10", "--v=1",
    ])
    sched_config = paths.local_dir / "kube-scheduler.yaml"
    sched_config.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
        f"clientConnection:\n  kubeconfig: {kubeconfigs['kube-scheduler']}\n  qps: 200\n"
        "  burst: 400\nleaderElection:\n  leaderElect: false\n"
    )
    scheduler = s.start("kube-scheduler", [
        str(bins["kube-scheduler"]), f"--config={sched_config}",
        "--bind-address=127.0.0.1", f"--secure-port={o.scheduler_port}", "--v=1",
    ])
    minio_env = dict(
        os.environ, MINIO_ROOT_USER=s.state.access_key, MINIO_ROOT_PASSWORD=s.state.secret_key,
        MINIO_BROWSER="off", MINIO_UPDATE="off",
    )
    minio = s.start("minio", [
        str(bins["minio"]), "server", str(paths.data_dir / "minio"),
        f"--address=127.0.0.1:{o.minio_port}",
        f"--console-address=127.0.0.1:{o.minio_console_port}", "--quiet",
    ], env=minio_env)
    insecure = _insecure_context()
    _wait_http(f"https://127.0.0.1:{o.controller_manager_port}/healthz", record=kcm,
               timeout=timeout, context=insecure)
    _wait_http(f"https://127.0.0.1:{o.scheduler_port}/healthz", record=scheduler,
               timeout=timeout, context=insecure)
    _wait_http(f"http://127.0.0.1:{o.minio_port}/minio/health/ready", record=minio, timeout=timeout)
    _create_bucket(s.state)

    kube = KubeClient.from_kubeconfig(paths.kubeconfig)
    _bootstrap_objects(kube, s.state)

    stages = render_stages(paths.local_dir / "kwok-stages.yaml", job_seconds=o.kwok_job_seconds)
    s.start("kwok", [
        str(bins["kwok"]), f"--kubeconfig={kubeconfigs['kwok']}", f"--config={stages}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}={KWOK_ANNOTATION_VALUE}",
        "--node-lease-duration-seconds=40", "--cidr=10.240.0.0/16", "--node-ip=10.239.0.1",
    ])
    nodes = kwok_fleet(dgx=o.kwok_nodes, cpu=o.kwok_cpu_nodes, gpu_labels=o.gpu_labels)
    create_nodes(kube, nodes)

    agent_config = paths.local_dir / "node-agent.json"
    agent_config.write_text(json.dumps({
        "kubeconfig": str(kubeconfigs["node-agent"]),
        "server": s.state.server,
        "ca_cert": str(pki.ca_cert),
        "serving_cert": str(pki.cert("kubelet-serving")),
        "serving_key": str(pki.key("kubelet-serving")),
        "kubelet_port": o.kubelet_port,
        "pods_dir": str(paths.pods_dir),
        "bin_dir": str(paths.bin_dir),
        "dgx_nodes": o.dgx_process_nodes,
        "cpu_nodes": o.cpu_process_nodes,
        "gpu_labels": o.gpu_labels,
    }, indent=2))
    agent = s.start("node-agent", [
        sys.executable, "-m", "synthloop.local.nodeagent", "--config", str(agent_config),
    ], env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wanted = {n["metadata"]["name"] for n in nodes}
    from synthloop.local.nodeagent.nodes import process_node_names

    wanted |= set(process_node_names(dgx=o.dgx_process_nodes, cpu=o.cpu_process_nodes))
    _wait_nodes_ready(kube, wanted, records=[agent, *s.state.processes], timeout=timeout)


def _start_kueue(
    state: ClusterState, *, paths: LocalPaths, pki: Pki, build: bool, progress: Progress
) -> ProcessRecord:
    from synthloop.local import kueue

    try:
        record = kueue.start(
            state.options, paths=paths, pki=pki, server=state.server,
            kube=KubeClient.from_kubeconfig(paths.kubeconfig), build=build, progress=progress,
        )
    except kueue.KueueError as exc:
        raise ClusterError(f"kueue: {exc}") from exc
    state.addons = [p for p in state.addons if p.name != kueue.NAME] + [record]
    state.save(paths.state_file)
    return record


def kueue_up(
    *,
    paths: LocalPaths | None = None,
    gpu_quota: int | None = None,
    namespace: str | None = None,
    build: bool = True,
    progress: Progress = _stderr,
) -> ClusterState:
    """Add Kueue to the running cluster, or converge its queues if it already runs (idempotent)."""
    from synthloop.local import kueue

    paths = paths or LocalPaths.default()
    with _locked(paths):
        state = running_state(paths)
        if state is None:
            raise ClusterError("no running local cluster; start one with `synthloop local up [--kueue]`")
        o = state.options
        o.kueue = True
        o.kueue_gpu_quota = o.kueue_gpu_quota if gpu_quota is None else gpu_quota
        o.kueue_namespace = namespace or o.kueue_namespace
        try:
            o.validate()
        except ValueError as exc:
            raise ClusterError(str(exc)) from exc
        record = state.addon(kueue.NAME)
        if record is not None and is_alive(record):
            try:
                kueue.ensure_objects(o, KubeClient.from_kubeconfig(paths.kubeconfig))
            except kueue.KueueError as exc:
                raise ClusterError(f"kueue: {exc}") from exc
            progress(f"kueue already running (pid {record.pid}); queues converged")
        else:
            _start_kueue(state, paths=paths, pki=ensure_pki(paths.pki_dir), build=build, progress=progress)
        state.save(paths.state_file)
    return state


def kueue_down(*, paths: LocalPaths | None = None, progress: Progress = _stderr) -> bool:
    """Stop Kueue only and remove its webhooks; its CRDs and queues stay. True if it was running."""
    from synthloop.local import kueue

    paths = paths or LocalPaths.default()
    with _locked(paths):
        state = ClusterState.load(paths.state_file)
        record = state.addon(kueue.NAME) if state is not None else None
        if state is None or record is None:
            progress("kueue is not running in the local cluster; nothing to stop")
            return False
        was_alive = is_alive(record)
        if state.alive():
            kueue.remove_webhooks(KubeClient.from_kubeconfig(paths.kubeconfig))
        progress(stop_process(record))
        state.addons = [p for p in state.addons if p.name != kueue.NAME]
        state.options.kueue = False
        state.save(paths.state_file)
    return was_alive


def _create_bucket(state: ClusterState) -> None:
    from minio import Minio

    mc = Minio(state.s3_endpoint, access_key=state.access_key, secret_key=state.secret_key,
               secure=False)
    if not mc.bucket_exists(state.options.bucket):
        mc.make_bucket(state.options.bucket)


def _bootstrap_objects(kube: KubeClient, state: ClusterState) -> None:
    """Namespace ``synthloop-system`` and the Secret the operator reads MinIO credentials from."""
    kube.create("/api/v1/namespaces", {"metadata": {"name": SYSTEM_NAMESPACE}}, exist_ok=True)
    secret = {
        "metadata": {"name": MINIO_SECRET, "namespace": SYSTEM_NAMESPACE},
        "type": "Opaque",
        "stringData": {
            "accessKey": state.access_key,
            "secretKey": state.secret_key,
            "endpoint": state.s3_endpoint,
            "bucket": state.options.bucket,
            "secure": "0",
        },
    }
    path = f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets"
    if kube.create(path, secret, exist_ok=True) is None:
        kube.request("PUT", f"{path}/{MINIO_SECRET}", body=secret)


def node_ready(node: Mapping[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _wait_nodes_ready(
    kube: KubeClient, names: set[str], *, records: list[ProcessRecord], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    missing = set(names)
    while time.monotonic() < deadline:
        for r in records:
            if not is_alive(r):
                raise ClusterError(
                    f"{r.name} exited while nodes registered; last lines of {r.log}:\n{tail(r.log)}"
                )
        ready = {n["metadata"]["name"] for n in kube.get("/api/v1/nodes")["items"] if node_ready(n)}
        missing = names - ready
        if not missing:
            return
        time.sleep(0.5)
    raise ClusterError(f"nodes not Ready after {timeout:.0f}s: {sorted(missing)[:10]}")


def _pod_process_records(paths: LocalPaths) -> list[ProcessRecord]:
    """Container processes the node agent recorded; `down` reaps any that outlived it."""
    records = []
    for pid_file in paths.pods_dir.glob("*/pids/*.json"):
        try:
            records.append(ProcessRecord.from_json(json.loads(pid_file.read_text())))
        except (json.JSONDecodeError, KeyError, ValueError, FileNotFoundError):
            continue
    return records


def _stop_all(state: ClusterState, paths: LocalPaths) -> list[str]:
    by_name = {p.name: p for p in state.processes}
    order = list(state.addons)  # consumers of everything else
    order += [by_name[n] for n in STOP_ORDER if n in by_name]
    order += [p for p in state.processes if p.name not in STOP_ORDER]
    messages = [stop_process(p, grace=15.0 if p.name == "node-agent" else 10.0) for p in order]
    for p in _pod_process_records(paths):
        if is_alive(p):
            messages.append(stop_process(p, grace=2.0))
    return messages


def down(*, paths: LocalPaths | None = None, progress: Progress = _stderr) -> int:
    """Stop exactly the recorded processes; returns how many were still running."""
    paths = paths or LocalPaths.default()
    with _locked(paths):
        state = ClusterState.load(paths.state_file)
        if state is None:
            progress(f"no local cluster recorded under {paths.local_dir}; nothing to stop")
            return 0
        running = len(state.alive())
        for msg in _stop_all(state, paths):
            progress(msg)
        paths.state_file.unlink(missing_ok=True)
    return running


#: Components `restart` can bounce on a running cluster (what a fault test takes down).
RESTARTABLE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "minio")


def restart(
    component: str,
    *,
    paths: LocalPaths | None = None,
    down_seconds: float = 0.0,
    grace: float = 10.0,
    while_down: Callable[[], object] | None = None,
    progress: Progress = _stderr,
) -> ProcessRecord:
    """Stop one component, keep it down ``down_seconds``, start it again with the same argv and
    data, and return once it answers its readiness check again.

    For fault tests and for operators of the embedded cluster: what a rolling restart of MinIO
    or the apiserver looks like to clients (``grace``: seconds between SIGTERM and SIGKILL;
    ``while_down``: called once it is stopped, e.g. to wait for a pod to end in the outage). The
    state file records the new pid, so `down` and `status` keep working; the other components
    are left to reconnect on their own.
    """
    paths = paths or LocalPaths.default()
    if component not in RESTARTABLE:
        raise ClusterError(f"cannot restart {component!r}; expected one of {list(RESTARTABLE)}")
    with _locked(paths):
        state = running_state(paths)
        if state is None:
            raise ClusterError(f"no running local cluster under {paths.local_dir}; start one with "
                               "`synthloop local up`")
        old = next(p for p in state.processes if p.name == component)
        progress(stop_process(old, grace=grace))
        stopped = time.monotonic()
        try:
            if while_down is not None:
                while_down()
        finally:  # whatever while_down did, the component comes back
            time.sleep(max(0.0, down_seconds - (time.monotonic() - stopped)))
            record = _start_again(state, old, paths=paths, progress=progress)
    return record


def _start_again(state: ClusterState, old: ProcessRecord, *, paths: LocalPaths,
                 progress: Progress) -> ProcessRecord:
    """Start a stopped component with its recorded argv (MinIO with its credentials), record
    the new pid, and wait until it is ready."""
    env = None
    if old.name == "minio":
        env = dict(os.environ, MINIO_ROOT_USER=state.access_key,
                   MINIO_ROOT_PASSWORD=state.secret_key, MINIO_BROWSER="off", MINIO_UPDATE="off")
    record = start_process(old.name, old.argv, log_path=Path(old.log), env=env, detached=True)
    state.processes = [record if p.name == old.name else p for p in state.processes]
    state.save(paths.state_file)
    progress(f"restarted {old.name} (pid {record.pid})")
    _wait_component(state, record, pki=ensure_pki(paths.pki_dir))
    return record


def _wait_component(state: ClusterState, record: ProcessRecord, *, pki: Pki) -> None:
    """The readiness check `up` waits on for this component."""
    o = state.options
    timeout = o.ready_timeout
    if record.name == "etcd":
        _wait_http(f"http://127.0.0.1:{o.etcd_port}/health", record=record, timeout=timeout)
    elif record.name == "kube-apiserver":
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        _wait_http(f"{state.server}/readyz", record=record, timeout=timeout, context=ctx)
    elif record.name == "minio":
        _wait_http(f"http://127.0.0.1:{o.minio_port}/minio/health/ready", record=record,
                   timeout=timeout)
    else:
        port = o.controller_manager_port if record.name == "kube-controller-manager" else o.scheduler_port
        _wait_http(f"https://127.0.0.1:{port}/healthz", record=record, timeout=timeout,
                   context=_insecure_context())


def status(*, paths: LocalPaths | None = None) -> dict[str, Any]:
    """Process liveness and node readiness, for `synthloop local status`."""
    paths = paths or LocalPaths.default()
    state = ClusterState.load(paths.state_file)
    if state is None:
        return {"running": False, "processes": [], "message": "no local cluster (run `synthloop local up`)"}
    procs: list[dict[str, Any]] = [
        {"name": p.name, "pid": p.pid, "alive": is_alive(p), "log": p.log,
         "rss_mib": round(rss_bytes(p.pid) / 2**20, 1) if is_alive(p) else 0.0,
         "addon": p in state.addons}
        for p in [*state.processes, *state.addons]
    ]
    result: dict[str, Any] = {
        "running": all(p["alive"] for p in procs if not p["addon"]) and state.ready,
        "ready": state.ready,
        "processes": procs,
        "rss_mib": round(sum(p["rss_mib"] for p in procs), 1),
        "kubeconfig": state.kubeconfig,
        "s3_endpoint": state.s3_endpoint,
        "options": state.options.to_json(),
    }
    if result["running"]:
        try:
            nodes = KubeClient.from_kubeconfig(state.kubeconfig).get("/api/v1/nodes")["items"]
            result["nodes"] = {"total": len(nodes), "ready": sum(1 for n in nodes if node_ready(n))}
        except Exception as exc:  # noqa: BLE001 - status must still print what it knows
            result["nodes"] = {"error": str(exc)}
    return result


def pid_alive(pid: int) -> bool:
    return process_start_ticks(pid) is not None
