"""The operator's Kubernetes I/O: read CRs and Jobs, server-side apply children, write status, post Events.

Everything else in ``controllers`` is decisions over the dicts this module returns: the JSON
exactly as the API served it.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthloop.api.v1alpha1 import API_VERSION, GROUP, PLURALS, VERSION
from synthloop.builders.names import FIELD_MANAGER, OWNER_UID_LABEL
from synthloop.local.kube import KubeClient, KubeError, ns_path

log = logging.getLogger("synthloop.operator")


def _count(verb: str, resource: str) -> None:
    """One API request, for ``synthloop_kube_requests_total`` (and bench/scale.py's per-pass figure)."""
    from synthloop.controllers.metrics import KUBE_REQUESTS

    KUBE_REQUESTS.labels(verb, resource).inc()


SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
JSON_MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"


def connect(kubeconfig: str | None = None) -> KubeClient:
    """The pod's ServiceAccount (mounted token, in-cluster) when there is one, else the
    kubeconfig (``$KUBECONFIG``, else ``~/.kube/config``)."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if host and (SA_DIR / "token").is_file() and kubeconfig is None:
        return KubeClient(f"https://{host}:{port}", ca_file=str(SA_DIR / "ca.crt"),
                          token=(SA_DIR / "token").read_text().strip())
    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path.home() / ".kube" / "config")
    return KubeClient.from_kubeconfig(path)


def load_kube_config() -> None:
    """Kept for callers of the old API: configuration now happens in :func:`connect`."""


class Cluster:
    """The operator's requests, as plain JSON over one urllib3 pool (``synthloop.local.kube``).

    Not the ``kubernetes`` package: its generated models cost the operator ~35 MiB of RSS for
    ten request shapes. A mounted ServiceAccount token is re-read every minute (it rotates).
    """

    def __init__(self, client: KubeClient | None = None) -> None:
        self.client = client or connect()
        self._token_read = time.monotonic()

    def _request(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None,
                 content_type: str = "application/json") -> Any:
        if time.monotonic() - self._token_read > 60 and (SA_DIR / "token").is_file() \
                and "Authorization" in self.client._headers:
            self.client._headers["Authorization"] = f"Bearer {(SA_DIR / 'token').read_text().strip()}"
            self._token_read = time.monotonic()
        return self.client.request(method, path, body=body, params=params, content_type=content_type)

    @staticmethod
    def _status(exc: Exception) -> int:
        return int(getattr(exc, "status", 0) or 0)

    @staticmethod
    def _cr_path(kind: str, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        return ns_path(PLURALS[kind], namespace, name, group=GROUP, version=VERSION, sub=sub)

    def _items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (self._request("GET", path, params=params or None) or {}).get("items", [])
        return items

    # -- custom resources ----------------------------------------------------------------
    def get_cr(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        _count("get", PLURALS[kind])
        try:
            body: dict[str, Any] = self._request("GET", self._cr_path(kind, namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return body

    def list_crs(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        _count("list", PLURALS[kind])
        items = self._items(self._cr_path(kind, namespace))
        for item in items:
            item.setdefault("kind", kind)
        return items

    def list_crs_all(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` in every namespace (the safety-net resync when cluster-wide)."""
        _count("list", PLURALS[kind])
        items = self._items(self._cr_path(kind))
        for item in items:
            item.setdefault("kind", kind)
        return items

    def patch_status(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.patch_status_returning(kind, namespace, name, patch)

    def patch_status_returning(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        """Merge-patch the status; returns the object as the server now holds it."""
        _count("patch", PLURALS[kind] + "/status")
        return self._request("PATCH", self._cr_path(kind, namespace, name, "status"), body={"status": patch},
                             content_type=JSON_MERGE)

    def patch_metadata(self, kind: str, namespace: str, name: str, metadata: dict[str, Any]) -> None:
        _count("patch", PLURALS[kind])
        self._request("PATCH", self._cr_path(kind, namespace, name), body={"metadata": metadata},
                      content_type=JSON_MERGE)

    # -- children ------------------------------------------------------------------------
    def list_jobs(self, namespace: str, owner_uid: str) -> list[dict[str, Any]]:
        _count("list", "jobs")
        return self._items(ns_path("jobs", namespace, group="batch"), labelSelector=f"{OWNER_UID_LABEL}={owner_uid}")

    def list_workloads(self, namespace: str, job_uid: str) -> list[dict[str, Any]]:
        """Kueue's Workloads of one Job (labelled with its uid); none where Kueue is not installed."""
        _count("list", "workloads")
        try:
            return self._items(ns_path("workloads", namespace, group="kueue.x-k8s.io", version="v1beta2"),
                               labelSelector=f"kueue.x-k8s.io/job-uid={job_uid}")
        except KubeError as exc:
            if exc.status == 404:  # no Kueue CRDs: the generic "waits for admission" message
                return []
            if exc.status == 403:  # an RBAC without the Workloads rule: say so, keep reconciling
                log.warning("cannot list Kueue Workloads in %s (forbidden): add get/list/watch on "
                            "workloads.kueue.x-k8s.io to the operator's ClusterRole", namespace)
                return []
            raise

    def list_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        """The pods of one Job (the Job controller's ``batch.kubernetes.io/job-name`` label)."""
        _count("list", "pods")
        return self._items(ns_path("pods", namespace), labelSelector=f"batch.kubernetes.io/job-name={job_name}")

    def list_owned_jobs(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every Job an operator's CR owns (carrying the owner label), in one namespace or all."""
        _count("list", "jobs")
        return self._items(ns_path("jobs", namespace, group="batch"), labelSelector=OWNER_UID_LABEL)

    def apply(self, obj: dict[str, Any]) -> Any:
        """Server-side apply with the operator's field manager (creates or converges); returns
        the object as the server now holds it."""
        meta = obj["metadata"]
        _count("apply", obj["kind"].lower() + "s")
        if obj["kind"] == "Job":
            path = ns_path("jobs", meta["namespace"], meta["name"], group="batch")
        elif obj["kind"] == "Service":
            path = ns_path("services", meta["namespace"], meta["name"])
        else:
            raise ValueError(f"apply: unsupported kind {obj['kind']!r} (expected Job or Service)")
        return self._request("PATCH", path, body=obj, params={"fieldManager": FIELD_MANAGER, "force": "true"},
                             content_type=APPLY)

    def secret_exists(self, namespace: str, name: str) -> bool:
        _count("get", "secrets")
        try:
            self._request("GET", ns_path("secrets", namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # -- events --------------------------------------------------------------------------
    def post_event(self, body: dict[str, Any], *, type_: str, reason: str, message: str,
                   name: str | None = None) -> None:
        """A core/v1 Event on the CR (what `kubectl describe` shows). Never fails the pass.

        ``name`` makes it posted once: a later pass that posts the same name finds it exists.
        """
        meta = body.get("metadata") or {}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ident = {"name": name} if name else {"generateName": f"{meta.get('name', 'synthloop')}."}
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {**ident, "namespace": meta.get("namespace")},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": body.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": FIELD_MANAGER,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        _count("create", "events")
        try:
            self._request("POST", ns_path("events", str(meta.get("namespace"))), body=event)
        except Exception as exc:  # noqa: BLE001 - an Event is best-effort by nature
            if name and self._status(exc) == 409:
                return  # posted by an earlier pass
            log.warning("could not post event %s on %s/%s: %s", reason, meta.get("namespace"), meta.get("name"), exc)
