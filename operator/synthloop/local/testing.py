"""Test helpers for clusters: how tests reach the cluster (``LocalCluster``) and polling.

Importable as ``synthloop.local.testing`` by any test; ``tests/conftest.py`` builds the
fixtures of contract 5 from these.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloop.local.kube import KubeClient


@dataclass
class LocalCluster:
    """How tests reach the cluster and its MinIO."""

    kubeconfig: Path
    s3_endpoint: str
    access_key: str
    secret_key: str
    bucket: str = "synthloop"
    bin_dir: Path = field(default_factory=Path)
    local: bool = True  # a `synthloop local` cluster (process nodes, KWOK available)
    _kube: KubeClient | None = None

    def env(self) -> dict[str, str]:
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "SYNTHLOOP_S3_ENDPOINT": self.s3_endpoint,
            "SYNTHLOOP_S3_SECURE": os.environ.get("SYNTHLOOP_S3_SECURE", "0") if not self.local else "0",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    @property
    def kube(self) -> KubeClient:
        if self._kube is None:
            self._kube = KubeClient.from_kubeconfig(self.kubeconfig)
        return self._kube

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; on failure the assertion shows stderr."""
        proc = subprocess.run(
            ["kubectl", *args], env={**os.environ, **self.env()}, capture_output=True,
            text=True, timeout=timeout, input=input, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc


def unavailable(reason: str) -> None:
    """Fail loudly in CI (``CI=true``), skip with the reason elsewhere."""
    import pytest

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"integration cluster unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"integration cluster unavailable: {reason}")


def external_cluster(kubeconfig: str) -> LocalCluster:
    endpoint = os.environ.get("SYNTHLOOP_S3_ENDPOINT")
    if not endpoint:
        unavailable("SYNTHLOOP_TEST_KUBECONFIG is set but SYNTHLOOP_S3_ENDPOINT is not")
    kubectl = shutil.which("kubectl")
    return LocalCluster(
        kubeconfig=Path(kubeconfig), s3_endpoint=str(endpoint),
        access_key=os.environ.get("AWS_ACCESS_KEY_ID", ""),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        bucket=os.environ.get("SYNTHLOOP_S3_BUCKET", "synthloop"),
        bin_dir=Path(kubectl).parent if kubectl else Path(), local=False,
    )


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
