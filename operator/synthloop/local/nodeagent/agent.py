"""The node agent: a kubelet stand-in that runs the pods bound to its nodes as processes.

One watch per node (``spec.nodeName=<node>``) feeds ``handle``; each pod gets a
``PodRunner`` thread. Graceful deletion works as with a kubelet: the apiserver sets
``deletionTimestamp``, the agent stops the processes (SIGTERM, grace period, SIGKILL),
reports the final status, then deletes the pod with grace period 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synthloop.local.kube import KubeClient, KubeError
from synthloop.local.nodeagent.nodes import NodeRegistrar
from synthloop.local.nodeagent.runner import PodRunner, now_rfc3339

log = logging.getLogger("synthloop.nodeagent")

LEASE_INTERVAL = 10.0
STATUS_INTERVAL = 30.0


class Agent:
    """Owns the runners of every pod on this agent's nodes."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        registrar: NodeRegistrar,
        pods_dir: Path,
        base_path: str,
        server: str,
        ca_cert: Path,
    ) -> None:
        self.kube = kube
        self.registrar = registrar
        self.pods_dir = pods_dir
        self.base_path = base_path
        self.server = server
        self.ca_cert = ca_cert
        self.runners: dict[str, PodRunner] = {}
        self.finished: set[str] = set()  # uids whose runner ended (terminal status reported)
        self.lock = threading.Lock()
        self.stop = threading.Event()

    # -- loops --------------------------------------------------------------------------

    def heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self.stop.wait(LEASE_INTERVAL):
            for name in self.registrar.nodes:
                try:
                    self.registrar.renew_lease(name)
                    if time.monotonic() - last_status >= STATUS_INTERVAL:
                        self.registrar.heartbeat_status(name)
                except KubeError as exc:
                    log.warning("node %s: heartbeat failed: %s", name, exc)
            if time.monotonic() - last_status >= STATUS_INTERVAL:
                last_status = time.monotonic()

    def watch_loop(self, node: str) -> None:
        """List-then-watch the pods bound to ``node``, relisting whenever the watch ends badly."""
        path = "/api/v1/pods"
        selector = f"spec.nodeName={node}"
        while not self.stop.is_set():
            try:
                listing = self.kube.get(path, fieldSelector=selector)
                for pod in listing["items"]:
                    self.handle("ADDED", pod)
                rv = listing["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    for event in self.kube.watch(path, fieldSelector=selector, resourceVersion=rv,
                                                 timeout_seconds=60):
                        kind = event["type"]
                        obj = event["object"]
                        if kind == "ERROR":
                            raise KubeError(int(obj.get("code", 0)), obj.get("message", "watch error"))
                        rv = obj["metadata"]["resourceVersion"]
                        if kind != "BOOKMARK":
                            self.handle(kind, obj)
            except KubeError as exc:
                if exc.status != 410:  # 410 Gone: resourceVersion too old, just relist
                    log.warning("node %s: pod watch failed (%s); relisting", node, exc)
                    self.stop.wait(1.0)
            except Exception:
                log.exception("node %s: pod watch crashed; relisting", node)
                self.stop.wait(1.0)

    # -- events -------------------------------------------------------------------------

    def handle(self, kind: str, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        with self.lock:
            runner = self.runners.get(uid)
            if runner is not None:
                runner.pod = pod  # the latest object: conditions others added (DisruptionTarget)
            if kind == "DELETED":
                if runner is not None:
                    runner.request_stop(0.0)
                return
            if meta.get("deletionTimestamp"):
                if runner is not None:
                    if not runner.stopping:
                        grace = meta.get("deletionGracePeriodSeconds")
                        runner.request_stop(float(grace if grace is not None else 30))
                    return  # the runner's on_done finalises the deletion
                threading.Thread(target=self._finalise_delete, args=(pod,), daemon=True).start()
                return
            if runner is not None or uid in self.finished:
                return
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                return
            if (pod.get("status") or {}).get("startTime"):
                # it ran under an earlier agent whose processes we cannot reattach to
                self.finished.add(uid)
                threading.Thread(target=self._fail_orphan, args=(pod,), daemon=True).start()
                return
            runner = PodRunner(
                pod, kube=self.kube, pods_dir=self.pods_dir, base_path=self.base_path,
                server=self.server, ca_cert=self.ca_cert, on_done=self._runner_done,
            )
            self.runners[uid] = runner
            runner.start()

    def _runner_done(self, runner: PodRunner) -> None:
        with self.lock:
            self.runners.pop(runner.uid, None)
            self.finished.add(runner.uid)
        if runner.deleting:
            self._finalise_delete(runner.pod)

    def _finalise_delete(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.kube.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                gracePeriodSeconds=0, preconditions={"uid": meta["uid"]},
            )
        except KubeError as exc:
            if exc.status != 409:  # 409: a newer pod of the same name; not ours to delete
                log.warning("pod %s/%s: final delete failed: %s", meta["namespace"], meta["name"], exc)

    def _fail_orphan(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.kube.patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"status": {"phase": "Failed", "reason": "NodeAgentRestarted",
                            "message": f"the node agent restarted at {now_rfc3339()} and lost "
                                       "this pod's processes"}},
            )
        except KubeError as exc:
            log.warning("pod %s/%s: cannot mark orphan failed: %s", meta["namespace"], meta["name"], exc)

    def runner_for(self, namespace: str, name: str) -> PodRunner | None:
        with self.lock:
            for r in self.runners.values():
                if r.namespace == namespace and r.pod_name == name:
                    return r
        return None

    def shutdown(self, *, grace: float = 10.0) -> None:
        """Stop every pod's processes (the agent is going away with its node)."""
        self.stop.set()
        with self.lock:
            runners = list(self.runners.values())
        for r in runners:
            r.request_stop(grace, deleting=False)
        deadline = time.monotonic() + grace + 5
        for r in runners:
            r.join(max(0.0, deadline - time.monotonic()))
