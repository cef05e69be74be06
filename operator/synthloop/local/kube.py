"""A small JSON-over-HTTPS Kubernetes client for the local cluster's own plumbing.

The node agent, `up` and the test fixtures need a handful of verbs on plain dicts (create,
get, list, patch, delete, watch) at high rates (768 nodes, 768 pods). A direct urllib3
client keeps that fast, thread-safe and independent of the generated ``kubernetes``
client's model classes, whose body/patch conventions change between releases.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


class KubeError(RuntimeError):
    """An API call failed; ``status`` is the HTTP status (0 when no response arrived)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


def _materialise(data_b64: str | None, path: str | None, directory: Path, name: str) -> str | None:
    if data_b64:
        target = directory / name
        target.write_bytes(base64.b64decode(data_b64))
        target.chmod(0o600)
        return str(target)
    return path


class KubeClient:
    """Authenticated JSON client for one API server (from a kubeconfig's current context)."""

    def __init__(
        self,
        server: str,
        *,
        ca_file: str | None,
        cert_file: str | None = None,
        key_file: str | None = None,
        token: str | None = None,
        namespace: str = "default",
        maxsize: int = 32,
    ) -> None:
        self.server = server.rstrip("/")
        self.namespace = namespace
        ctx = ssl.create_default_context(cafile=ca_file)
        if cert_file and key_file:
            ctx.load_cert_chain(cert_file, key_file)
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._pool = urllib3.PoolManager(ssl_context=ctx, maxsize=maxsize, retries=False)

    @classmethod
    def from_kubeconfig(cls, path: str | Path, **kwargs: Any) -> KubeClient:
        """Build from a kubeconfig's current context (client certs or a bearer token)."""
        cfg = yaml.safe_load(Path(path).read_text())
        ctx_name = cfg.get("current-context")
        context = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == context["cluster"])
        user: dict[str, Any] = next((u["user"] for u in cfg.get("users", []) if u["name"] == context.get("user")), {})
        tmp = Path(tempfile.mkdtemp(prefix="synthloop-kube-"))
        base = Path(path).parent
        def rel(p: str | None) -> str | None:
            return str((base / p).resolve()) if p else None
        ca = _materialise(cluster.get("certificate-authority-data"),
                          rel(cluster.get("certificate-authority")), tmp, "ca.crt")
        cert = _materialise(user.get("client-certificate-data"),
                            rel(user.get("client-certificate")), tmp, "client.crt")
        key = _materialise(user.get("client-key-data"), rel(user.get("client-key")), tmp, "client.key")
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = Path(user["tokenFile"]).read_text().strip()
        if not (cert and key) and not token:
            raise KubeError(0, f"kubeconfig {path}: user has neither client certificates nor a token")
        return cls(cluster["server"], ca_file=ca, cert_file=cert, key_file=key, token=token,
                   namespace=context.get("namespace", "default"), **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        url = self.server + path + (("?" + urlencode(params)) if params else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            resp = self._pool.request(method, url, body=data, headers=headers,
                                      timeout=urllib3.Timeout(total=timeout))
        except urllib3.exceptions.HTTPError as exc:
            raise KubeError(0, f"{method} {path}: {exc}") from exc
        if resp.status >= 400:
            try:
                message = json.loads(resp.data).get("message", resp.data.decode(errors="replace"))
            except (ValueError, AttributeError):
                message = resp.data.decode(errors="replace")
            raise KubeError(resp.status, f"{method} {path}: {message}")
        return json.loads(resp.data) if resp.data else None

    # -- verbs on resource paths, e.g. "/api/v1/namespaces/ns/pods" --------------------------

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def get_or_none(self, path: str) -> Any:
        try:
            return self.get(path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, path: str, body: Mapping[str, Any], *, exist_ok: bool = False) -> Any:
        try:
            return self.request("POST", path, body=body)
        except KubeError as exc:
            if exist_ok and exc.status == 409:
                return None
            raise

    def patch(self, path: str, body: Any, *, content_type: str = MERGE) -> Any:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, *, missing_ok: bool = True, **options: Any) -> Any:
        try:
            body = {"kind": "DeleteOptions", "apiVersion": "v1", **options} if options else None
            return self.request("DELETE", path, body=body)
        except KubeError as exc:
            if missing_ok and exc.status == 404:
                return None
            raise

    def watch(
        self, path: str, *, timeout_seconds: int = 300, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield watch events ({"type", "object"}) until the server ends the stream."""
        query = {"watch": "1", "timeoutSeconds": timeout_seconds, "allowWatchBookmarks": "true",
                 **params}
        url = self.server + path + "?" + urlencode(query)
        try:
            resp = self._pool.request(
                "GET", url, headers=self._headers, preload_content=False,
                timeout=urllib3.Timeout(connect=10, read=timeout_seconds + 30),
            )
        except urllib3.exceptions.HTTPError as exc:
            raise KubeError(0, f"watch {path}: {exc}") from exc
        try:
            if resp.status >= 400:
                raise KubeError(resp.status, f"watch {path}: {resp.read().decode(errors='replace')}")
            buf = b""
            for chunk in resp.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except urllib3.exceptions.HTTPError as exc:
            raise KubeError(0, f"watch {path} broke: {exc}") from exc
        finally:
            resp.release_conn()


def ns_path(kind_plural: str, namespace: str | None = None, name: str | None = None,
            *, group: str = "", version: str = "v1", sub: str | None = None) -> str:
    """URL path of a resource: core (``group=""``) or ``/apis/<group>/<version>``."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{kind_plural}"
    if name:
        base += f"/{name}"
    if sub:
        base += f"/{sub}"
    return base
