"""Kubeconfig files for the local cluster: admin, each component, and ServiceAccount tokens.

Certificates are embedded (``*-data``) so a kubeconfig keeps working when copied elsewhere.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

CONTEXT = "synthloop-local"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def render_kubeconfig(
    *,
    server: str,
    ca_cert: Path,
    user: dict[str, str],
    namespace: str = "default",
) -> str:
    """A one-context kubeconfig; ``user`` is the kubeconfig ``user`` mapping."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)},
            }
        ],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return str(yaml.safe_dump(doc, sort_keys=False))


def write_cert_kubeconfig(
    path: Path, *, server: str, ca_cert: Path, client_cert: Path, client_key: Path
) -> Path:
    """A kubeconfig that authenticates with a client certificate."""
    user = {"client-certificate-data": _b64(client_cert), "client-key-data": _b64(client_key)}
    return _write(path, render_kubeconfig(server=server, ca_cert=ca_cert, user=user))


def write_token_kubeconfig(
    path: Path, *, server: str, ca_cert: Path, token: str, namespace: str
) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount with a bound token."""
    text = render_kubeconfig(server=server, ca_cert=ca_cert, user={"token": token}, namespace=namespace)
    return _write(path, text)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
