"""One pod on a process node: init containers in order, then the containers, as processes.

The runner owns the pod's status while it runs and reports it as a kubelet would: Pending
with waiting containers, Running with ``startTime`` and running states, then Succeeded or
Failed with each container's exit code, reason and times. Restart policies are honoured
(``Always``/``OnFailure`` restart with a capped backoff and a ``restartCount``).

Termination messages work as with a kubelet: a container's ``terminationMessagePath`` is a
per-run file (the process node has no mounts, so the worker learns its path from
``SYNTHLOOP_TERMINATION_MESSAGE_PATH``); what it wrote becomes ``state.terminated.message``, and
with ``FallbackToLogsOnError`` a failed container that wrote nothing gets its log tail. Status
updates are retried until they land (a restarting apiserver must not strand a finished pod).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloop.local.kube import KubeClient, KubeError
from synthloop.local.kubeconfig import write_token_kubeconfig
from synthloop.local.nodeagent.podenv import (
    MissingReferenceError,
    PodSpecError,
    build_argv,
    build_env,
    materialise_volumes,
    working_dir,
)
from synthloop.local.supervisor import ProcessRecord, process_start_ticks
from synthloop.workers.errors import TERMINATION_PATH_ENV

log = logging.getLogger("synthloop.nodeagent")

# Passed through from the agent's own environment so project tools keep working.
PASSTHROUGH_ENV = (
    "HOME", "LANG", "LC_ALL", "USER", "VIRTUAL_ENV", "PYTHONPATH", "SYNTHLOOP_HOME",
    "HF_HOME", "TRANSFORMERS_OFFLINE", "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES",
)
TOKEN_SECONDS = 24 * 3600
BACKOFF_CAP = 30.0
# As the kubelet: at most 4096 bytes of a message file; the log fallback is the last 80 lines
# and at most 2048 bytes.
MESSAGE_BYTES = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048
STATUS_RETRY_CAP = 5.0


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_dir_name(namespace: str, name: str, uid: str) -> str:
    return f"{namespace}_{name}_{uid}"


@dataclass
class ContainerRun:
    """Bookkeeping of one container across restarts."""

    spec: Mapping[str, Any]
    init: bool = False
    proc: subprocess.Popen[bytes] | None = None
    record: ProcessRecord | None = None
    started_at: str | None = None
    restarts: int = 0
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    next_start: float = 0.0
    done: bool = False  # terminated and will not restart

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def message_policy(self) -> str:
        return str(self.spec.get("terminationMessagePolicy") or "File")

    def status(self, *, ready: bool) -> dict[str, Any]:
        image = str(self.spec.get("image", ""))
        return {
            "name": self.name,
            "image": image,
            "imageID": f"synthloop-local://{image}",
            "containerID": f"synthloop-process://{self.record.pid}" if self.record else None,
            "ready": ready and "running" in self.state,
            "started": "running" in self.state,
            "restartCount": self.restarts,
            "state": self.state,
            "lastState": self.last_state,
        }


#: The pod conditions the agent sets itself; any other (DisruptionTarget...) is someone else's.
AGENT_CONDITIONS = frozenset({"PodScheduled", "Initialized", "ContainersReady", "Ready"})


class PodRunner(threading.Thread):
    """Runs one pod to completion (or until stopped) and reports its status."""

    def __init__(
        self,
        pod: Mapping[str, Any],
        *,
        kube: KubeClient,
        pods_dir: Path,
        base_path: str,
        server: str,
        ca_cert: Path,
        on_done: Callable[[PodRunner], None],
    ) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.pod = pod
        self.kube = kube
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.uid: str = meta["uid"]
        self.dir = pods_dir / pod_dir_name(self.namespace, self.pod_name, self.uid)
        self.base_path = base_path
        self.server = server
        self.ca_cert = ca_cert
        self.on_done = on_done
        self._stop_requested = threading.Event()
        self.deleting = False
        self._grace = 30.0
        self.start_time = now_rfc3339()
        self.phase = "Pending"
        self.reason: str | None = None
        self.message: str | None = None
        spec = pod.get("spec") or {}
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.inits = [ContainerRun(c, init=True) for c in spec.get("initContainers") or []]
        self.containers = [ContainerRun(c) for c in spec.get("containers") or []]
        for c in self.inits:
            c.state = {"waiting": {"reason": "PodInitializing"}}
        if self.inits:
            for c in self.containers:
                c.state = {"waiting": {"reason": "PodInitializing"}}
        self.initialized = not self.inits
        self._status_path = f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}/status"

    # -- control from the agent ---------------------------------------------------------

    def request_stop(self, grace: float, *, deleting: bool = True) -> None:
        """Stop the pod's processes: SIGTERM now, SIGKILL after ``grace`` seconds.
        ``deleting`` says the pod object is being deleted (so the agent finalises it)."""
        self._grace = max(0.0, grace)
        self.deleting = self.deleting or deleting
        self._stop_requested.set()

    @property
    def stopping(self) -> bool:
        return self._stop_requested.is_set()

    def log_file(self, container: str, *, previous: bool = False) -> Path | None:
        run = next((c for c in self.inits + self.containers if c.name == container), None)
        if run is None:
            return None
        n = run.restarts - 1 if previous else run.restarts
        return self.dir / "logs" / f"{container}-{n}.log" if n >= 0 else None

    # -- the pod's life -----------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # report, never leave the pod silently stuck
            log.exception("pod %s/%s: runner failed", self.namespace, self.pod_name)
            self._kill_all(0.0)
            self._finish("Failed", "NodeAgentError", f"{exc.__class__.__name__}: {exc}")
        finally:
            self.on_done(self)

    def _run(self) -> None:
        for sub in ("logs", "pids", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._report()
        waiting_for: str | None = None
        while True:
            try:
                env_base = self._base_env()
                dirs = materialise_volumes(
                    self.pod, self.dir, get_configmap=self._get_configmap,
                    get_secret=self._get_secret,
                )
                self._plans = {
                    c.name: self._plan(c, env_base, dirs) for c in self.inits + self.containers
                }
                break
            except (MissingReferenceError, KubeError) as exc:
                # as a kubelet does: stay Pending and retry until the object appears
                if str(exc) != waiting_for:
                    waiting_for = str(exc)
                    for c in self.inits + self.containers:
                        c.state = {"waiting": {"reason": "CreateContainerConfigError",
                                               "message": str(exc)}}
                    self._report()
                if self._stop_requested.wait(2.0):
                    self._finish("Failed", "Terminated", "pod deleted before it could start")
                    return
            except PodSpecError as exc:
                for c in self.inits + self.containers:
                    c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
                self._finish("Failed", "CreateContainerConfigError", str(exc))
                return
        for init in self.inits:
            if not self._run_to_success(init):
                return
            self._report()
        self.initialized = True
        self._run_main()

    def _run_to_success(self, run: ContainerRun) -> bool:
        """Run an init container until it exits 0 (restarting unless policy is Never)."""
        while True:
            if self.stopping:
                self._finish("Failed", "Terminated", "pod deleted during initialisation")
                return False
            if time.monotonic() < run.next_start:
                time.sleep(0.2)
                continue
            self._start(run)
            self._report()
            while run.proc is not None and run.proc.poll() is None:
                if self.stopping:
                    self._kill_all(self._grace)
                    break
                time.sleep(0.1)
            code = self._reap(run)
            if code == 0:
                run.done = True
                return True
            if self.restart_policy == "Never" or self.stopping:
                run.done = True
                self._finish("Failed", "InitContainerFailed" if not self.stopping else "Terminated",
                             f"init container {run.name} exited with code {code}")
                return False
            self._schedule_restart(run)
            self._report()

    def _run_main(self) -> None:
        for c in self.containers:
            self._start(c)
        self.phase = "Running"
        self._report()
        while True:
            if self.stopping:
                self._kill_all(self._grace)
                for c in self.containers:
                    if c.proc is not None:
                        self._reap(c)
                    c.done = True
                failed = any(
                    "terminated" not in c.state or c.state["terminated"]["exitCode"] != 0
                    for c in self.containers
                )
                self._finish("Failed" if failed else "Succeeded", None, None)
                return
            changed = False
            for c in self.containers:
                if c.proc is not None and c.proc.poll() is not None:
                    code = self._reap(c)
                    changed = True
                    restart = self.restart_policy == "Always" or (
                        self.restart_policy == "OnFailure" and code != 0
                    )
                    if restart:
                        self._schedule_restart(c)
                    else:
                        c.done = True
                elif c.proc is None and not c.done and time.monotonic() >= c.next_start:
                    self._start(c)
                    changed = True
            if all(c.done for c in self.containers):
                codes = [c.state["terminated"]["exitCode"] for c in self.containers]
                self._finish("Succeeded" if all(x == 0 for x in codes) else "Failed", None, None)
                return
            if changed:
                self._report()
            time.sleep(0.1)

    # -- processes ----------------------------------------------------------------------

    def _plan(self, run: ContainerRun, env_base: dict[str, str], dirs: dict[str, Path]) -> tuple[list[str], dict[str, str], Path]:
        env = build_env(
            self.pod, run.spec, base=env_base, get_configmap=self._get_configmap,
            get_secret=self._get_secret, dirs=dirs, pod_dir=self.dir,
        )
        env[TERMINATION_PATH_ENV] = str(self._message_file(run.name))
        return build_argv(run.spec, env, dirs, self.pod), env, working_dir(run.spec, dirs, self.dir)

    def _message_file(self, container: str) -> Path:
        """Where ``container`` writes its termination message (its ``terminationMessagePath``)."""
        return self.dir / "termination" / container

    def _termination_message(self, run: ContainerRun, exit_code: int, log_path: Path) -> str | None:
        """The message file's content; with FallbackToLogsOnError and a failure, else the log tail."""
        path = self._message_file(run.name)
        text = ""
        try:
            text = path.read_bytes()[:MESSAGE_BYTES].decode(errors="replace").strip()
        except OSError:
            pass
        if not text and exit_code != 0 and run.message_policy == "FallbackToLogsOnError":
            try:
                tail = log_path.read_bytes()[-FALLBACK_BYTES:]
            except OSError:
                tail = b""
            text = "\n".join(tail.decode(errors="replace").splitlines()[-FALLBACK_LINES:]).strip()
        return text or None

    def _start(self, run: ContainerRun) -> None:
        argv, env, cwd = self._plans[run.name]
        log_path = self.dir / "logs" / f"{run.name}-{run.restarts}.log"
        message = self._message_file(run.name)
        message.parent.mkdir(parents=True, exist_ok=True)
        message.write_bytes(b"")  # each run starts with an empty message, as in a new container
        out = log_path.open("ab")
        try:
            run.proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        except OSError as exc:
            out.write(f"synthloop node agent: cannot start {argv[0]!r}: {exc}\n".encode())
            out.close()
            run.proc = None
            run.record = None
            run.state = {"terminated": {
                "exitCode": 127, "reason": "StartError", "message": str(exc),
                "startedAt": now_rfc3339(), "finishedAt": now_rfc3339(),
            }}
            run.done = self.restart_policy == "Never"
            if not run.done:
                self._schedule_restart(run)
            return
        finally:
            if not out.closed:
                out.close()
        ticks = process_start_ticks(run.proc.pid)
        run.record = ProcessRecord(
            f"{self.namespace}/{self.pod_name}/{run.name}", run.proc.pid,
            ticks if ticks is not None else -1, str(log_path), argv,
        )
        (self.dir / "pids" / f"{run.name}.json").write_text(json.dumps(run.record.to_json()))
        run.started_at = now_rfc3339()
        run.state = {"running": {"startedAt": run.started_at}}
        log.info("pod %s/%s: started %s (pid %d): %s", self.namespace, self.pod_name, run.name,
                 run.proc.pid, argv)

    def _reap(self, run: ContainerRun) -> int:
        assert run.proc is not None
        code = run.proc.wait()
        # a signal-killed process reports -N; container runtimes report 128+N
        exit_code = 128 - code if code < 0 else code
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": run.started_at or now_rfc3339(),
            "finishedAt": now_rfc3339(),
            "containerID": f"synthloop-process://{run.proc.pid}",
        }
        message = self._termination_message(run, exit_code, self.dir / "logs" / f"{run.name}-{run.restarts}.log")
        if message:
            terminated["message"] = message
        run.state = {"terminated": terminated}
        run.proc = None
        (self.dir / "pids" / f"{run.name}.json").unlink(missing_ok=True)
        return exit_code

    def _schedule_restart(self, run: ContainerRun) -> None:
        delay = min(BACKOFF_CAP, 1.0 * 2 ** run.restarts)
        run.last_state = run.state
        run.restarts += 1
        run.next_start = time.monotonic() + delay
        run.state = {"waiting": {"reason": "CrashLoopBackOff",
                                 "message": f"back-off {delay:.0f}s restarting {run.name}"}}

    def _kill_all(self, grace: float) -> None:
        """SIGTERM every live process group, wait up to ``grace``, then SIGKILL the rest."""
        live = [c for c in self.inits + self.containers if c.proc is not None and c.proc.poll() is None]
        for c in live:
            assert c.proc is not None
            try:
                os.killpg(c.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(
            c.proc is not None and c.proc.poll() is None for c in live
        ):
            time.sleep(0.05)
        for c in live:
            assert c.proc is not None
            try:
                os.killpg(c.proc.pid, signal.SIGKILL)  # also any children left in the group
            except ProcessLookupError:
                pass

    # -- status -------------------------------------------------------------------------

    def _finish(self, phase: str, reason: str | None, message: str | None) -> None:
        self.phase = phase
        self.reason = reason
        self.message = message
        self._report()

    def _report(self) -> None:
        now = now_rfc3339()
        running = self.phase == "Running" and all("running" in c.state for c in self.containers)
        def cond(type_: str, ok: bool, reason: str | None = None) -> dict[str, Any]:
            c: dict[str, Any] = {"type": type_, "status": "True" if ok else "False",
                                 "lastTransitionTime": now, "lastProbeTime": None}
            if reason and not ok:
                c["reason"] = reason
            return c
        status: dict[str, Any] = {
            "phase": self.phase,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "qosClass": (self.pod.get("status") or {}).get("qosClass", "BestEffort"),
            "conditions": [
                cond("PodScheduled", True),
                cond("Initialized", self.initialized, "ContainersNotInitialized"),
                cond("ContainersReady", running, "ContainersNotReady"),
                cond("Ready", running, "ContainersNotReady"),
                # others' conditions stay, as a kubelet keeps them: the merge patch replaces the
                # list, and DisruptionTarget (eviction, preemption) is what podFailurePolicy reads
                *[c for c in (self.pod.get("status") or {}).get("conditions") or []
                  if c.get("type") not in AGENT_CONDITIONS],
            ],
            "initContainerStatuses": [c.status(ready=False) for c in self.inits] or None,
            "containerStatuses": [c.status(ready=True) for c in self.containers],
            "reason": self.reason,
            "message": self.message,
        }
        self._patch_status(status, final=self.phase in ("Succeeded", "Failed"))

    def _patch_status(self, status: dict[str, Any], *, final: bool) -> None:
        """PATCH the status, retrying with a capped backoff until it lands, as a kubelet does.

        A pod that is gone (404) has nobody to report to. A running pod's update gives up
        once its processes change again (the next report carries the newer state).
        """
        delay = 0.5
        while True:
            try:
                self.kube.patch(self._status_path, {"status": status})
                return
            except KubeError as exc:
                if exc.status == 404:
                    return
                if exc.status and exc.status < 500 and exc.status != 429:
                    log.warning("pod %s/%s: status update rejected: %s", self.namespace, self.pod_name, exc)
                    return
                log.warning("pod %s/%s: status update failed (retrying in %.1fs): %s",
                            self.namespace, self.pod_name, delay, exc)
            if not final and (self.stopping or any(
                    c.proc is not None and c.proc.poll() is not None for c in self.containers)):
                return
            time.sleep(delay)
            delay = min(STATUS_RETRY_CAP, delay * 2)

    # -- API lookups --------------------------------------------------------------------

    def _get_configmap(self, ns: str, name: str) -> Mapping[str, str] | None:
        obj = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/configmaps/{name}")
        return None if obj is None else (obj.get("data") or {})

    def _get_secret(self, ns: str, name: str) -> Mapping[str, str] | None:
        obj = self.kube.get_or_none(f"/api/v1/namespaces/{ns}/secrets/{name}")
        return None if obj is None else (obj.get("data") or {})

    def _base_env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        env["PATH"] = self.base_path
        env["HOSTNAME"] = self.pod_name
        env["TMPDIR"] = str(self.dir / "tmp")
        env["PYTHONUNBUFFERED"] = "1"
        spec = self.pod.get("spec") or {}
        sa = spec.get("serviceAccountName")
        if sa and spec.get("automountServiceAccountToken", True):
            env["KUBECONFIG"] = str(self._service_account_kubeconfig(sa))
        return env

    def _service_account_kubeconfig(self, sa: str) -> Path:
        """A kubeconfig with a pod-bound token of ``sa`` (via the TokenRequest API)."""
        resp = self.kube.create(
            f"/api/v1/namespaces/{self.namespace}/serviceaccounts/{sa}/token",
            {
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {
                    "expirationSeconds": TOKEN_SECONDS,
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod",
                                       "name": self.pod_name, "uid": self.uid},
                },
            },
        )
        return write_token_kubeconfig(
            self.dir / "kubeconfig", server=self.server, ca_cert=self.ca_cert,
            token=resp["status"]["token"], namespace=self.namespace,
        )


def default_base_path(bin_dir: Path) -> str:
    """PATH for pods: this Python's bin dir first (synthloop-worker, python), then the
    cluster binaries (kubectl), then the agent's own PATH."""
    first = [str(Path(sys.executable).parent), str(bin_dir)]
    rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p not in first]
    return os.pathsep.join(first + rest)
