"""The operator's Kubernetes I/O: read CRs and Jobs, server-side apply children, write status, post Events.

Everything else in ``controllers`` is decisions over the dicts this module returns. Reads use
raw JSON (``_preload_content=False``) so the rest of the code sees exactly what the API served.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from synthloop.api.v1alpha1 import API_VERSION, GROUP, PLURALS, VERSION
from synthloop.builders.names import FIELD_MANAGER, OWNER_UID_LABEL

log = logging.getLogger("synthloop.operator")


def _count(verb: str, resource: str) -> None:
    """One API request, for ``synthloop_kube_requests_total`` (and bench/scale.py's per-pass figure)."""
    from synthloop.controllers.metrics import KUBE_REQUESTS

    KUBE_REQUESTS.labels(verb, resource).inc()


def load_kube_config() -> None:
    """In-cluster config in a pod with a mounted token, else the kubeconfig (``$KUBECONFIG``)."""
    from kubernetes import config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


class Cluster:
    """Thin wrapper over the kubernetes client; one instance per operator process."""

    def __init__(self, api_client: Any | None = None) -> None:
        from kubernetes import client

        self.api_client = api_client or client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    @staticmethod
    def _json(resp: Any) -> Any:
        return json.loads(resp.data)

    @staticmethod
    def _status(exc: Exception) -> int:
        return int(getattr(exc, "status", 0) or 0)

    # -- custom resources ----------------------------------------------------------------
    def get_cr(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        _count("get", PLURALS[kind])
        try:
            resp = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURALS[kind], name, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        body: dict[str, Any] = self._json(resp)
        return body

    def list_crs(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        _count("list", PLURALS[kind])
        resp = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], _preload_content=False
        )
        items: list[dict[str, Any]] = self._json(resp).get("items", [])
        for item in items:
            item.setdefault("kind", kind)
        return items

    def list_crs_all(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` in every namespace (the safety-net resync when cluster-wide)."""
        _count("list", PLURALS[kind])
        resp = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURALS[kind], _preload_content=False)
        items: list[dict[str, Any]] = self._json(resp).get("items", [])
        for item in items:
            item.setdefault("kind", kind)
        return items

    def patch_status(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.patch_status_returning(kind, namespace, name, patch)

    def patch_status_returning(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> Any:
        """Merge-patch the status; returns the object as the server now holds it."""
        _count("patch", PLURALS[kind] + "/status")
        resp = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURALS[kind], name, {"status": patch},
            _content_type="application/merge-patch+json", _preload_content=False,
        )
        return self._json(resp)

    def patch_metadata(self, kind: str, namespace: str, name: str, metadata: dict[str, Any]) -> None:
        _count("patch", PLURALS[kind])
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name, {"metadata": metadata},
            _content_type="application/merge-patch+json",
        )

    # -- children ------------------------------------------------------------------------
    def list_jobs(self, namespace: str, owner_uid: str) -> list[dict[str, Any]]:
        _count("list", "jobs")
        resp = self.batch.list_namespaced_job(
            namespace, label_selector=f"{OWNER_UID_LABEL}={owner_uid}", _preload_content=False
        )
        items: list[dict[str, Any]] = self._json(resp).get("items", [])
        return items

    def list_workloads(self, namespace: str, job_uid: str) -> list[dict[str, Any]]:
        """Kueue's Workloads of one Job (labelled with its uid); none where Kueue is not installed."""
        from kubernetes.client.exceptions import ApiException

        try:
            _count("list", "workloads")
            resp = self.custom.list_namespaced_custom_object(
                "kueue.x-k8s.io", "v1beta2", namespace, "workloads",
                label_selector=f"kueue.x-k8s.io/job-uid={job_uid}", _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 404:  # no Kueue CRDs: the generic "waits for admission" message
                return []
            if exc.status == 403:  # an RBAC without the Workloads rule: say so, keep reconciling
                log.warning("cannot list Kueue Workloads in %s (forbidden): add get/list/watch on "
                            "workloads.kueue.x-k8s.io to the operator's ClusterRole", namespace)
                return []
            raise
        items: list[dict[str, Any]] = self._json(resp).get("items", [])
        return items

    def list_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        """The pods of one Job (the Job controller's ``batch.kubernetes.io/job-name`` label)."""
        _count("list", "pods")
        resp = self.core.list_namespaced_pod(
            namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}", _preload_content=False
        )
        items: list[dict[str, Any]] = self._json(resp).get("items", [])
        return items

    def list_owned_jobs(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every Job an operator's CR owns (carrying the owner label), in one namespace or all."""
        _count("list", "jobs")
        if namespace is None:
            resp = self.batch.list_job_for_all_namespaces(label_selector=OWNER_UID_LABEL, _preload_content=False)
        else:
            resp = self.batch.list_namespaced_job(namespace, label_selector=OWNER_UID_LABEL, _preload_content=False)
        items: list[dict[str, Any]] = self._json(resp).get("items", [])
        return items

    def apply(self, obj: dict[str, Any]) -> Any:
        """Server-side apply with the operator's field manager (creates or converges); returns
        the object as the server now holds it."""
        meta = obj["metadata"]
        _count("apply", obj["kind"].lower() + "s")
        kwargs: dict[str, Any] = {
            "field_manager": FIELD_MANAGER,
            "force": True,
            "_content_type": "application/apply-patch+yaml",
        }
        resp: Any
        if obj["kind"] == "Job":
            resp = self.batch.patch_namespaced_job(meta["name"], meta["namespace"], obj, **kwargs,
                                                   _preload_content=False)
        elif obj["kind"] == "Service":
            resp = self.core.patch_namespaced_service(meta["name"], meta["namespace"], obj, **kwargs,
                                                      _preload_content=False)
        else:
            raise ValueError(f"apply: unsupported kind {obj['kind']!r} (expected Job or Service)")
        return self._json(resp)

    def secret_exists(self, namespace: str, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        _count("get", "secrets")
        try:
            self.core.read_namespaced_secret(name, namespace, _preload_content=False)
        except ApiException as exc:
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
            self.core.create_namespaced_event(str(meta.get("namespace")), event)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - an Event is best-effort by nature
            if name and self._status(exc) == 409:
                return  # posted by an earlier pass
            log.warning("could not post event %s on %s/%s: %s", reason, meta.get("namespace"), meta.get("name"), exc)
