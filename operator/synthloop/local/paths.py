"""Where `synthloop local` keeps binaries, PKI, state and logs.

Everything lives under one root, ``$SYNTHLOOP_HOME`` (default ``~/.synthloop``), so a
developer can remove a broken install with one ``rm -rf`` and tests can point a whole
cluster at a scratch directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def synthloop_home() -> Path:
    """The root directory, from ``SYNTHLOOP_HOME`` or ``~/.synthloop``."""
    return Path(os.environ.get("SYNTHLOOP_HOME") or Path.home() / ".synthloop").expanduser()


@dataclass(frozen=True)
class LocalPaths:
    """The layout of one local cluster under ``home``."""

    home: Path

    @classmethod
    def default(cls) -> LocalPaths:
        return cls(home=synthloop_home())

    @property
    def bin_dir(self) -> Path:
        return self.home / "bin"

    @property
    def local_dir(self) -> Path:
        return self.home / "local"

    @property
    def pki_dir(self) -> Path:
        return self.local_dir / "pki"

    @property
    def logs_dir(self) -> Path:
        return self.local_dir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.local_dir / "data"

    @property
    def pods_dir(self) -> Path:
        """Per-pod directories of the process nodes: volumes, logs, container pids."""
        return self.local_dir / "pods"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig users and tests point ``KUBECONFIG`` at."""
        return self.local_dir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        """Pids and settings of the running cluster; its presence means `up` ran."""
        return self.local_dir / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.local_dir / ".lock"

    def component_kubeconfig(self, component: str) -> Path:
        return self.local_dir / "kubeconfigs" / f"{component}.kubeconfig"
