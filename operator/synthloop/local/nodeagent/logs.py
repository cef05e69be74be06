"""Finding a container's log file under the pods directory (for `synthloop local logs`
and the kubelet log endpoint). Layout: ``<ns>_<pod>_<uid>/logs/<container>-<restart>.log``."""

from __future__ import annotations

import re
from pathlib import Path


def pod_dirs(pods_dir: Path, namespace: str, pod: str) -> list[Path]:
    """Directories of every pod with this name (one per uid), newest first."""
    dirs = [d for d in pods_dir.glob(f"{namespace}_{pod}_*") if d.is_dir()
            and d.name.count("_") >= 2 and d.name.rsplit("_", 1)[0] == f"{namespace}_{pod}"]
    return sorted(dirs, key=lambda d: d.stat().st_mtime, reverse=True)


def containers(pod_dir: Path) -> list[str]:
    names = {re.sub(r"-\d+\.log$", "", p.name) for p in (pod_dir / "logs").glob("*.log")}
    return sorted(names)


def find_log(
    pods_dir: Path, namespace: str, pod: str, container: str | None, *, previous: bool = False
) -> Path | None:
    """The current (or previous) log of ``container`` of the newest pod with that name."""
    for d in pod_dirs(pods_dir, namespace, pod):
        names = containers(d)
        name = container or (names[0] if len(names) == 1 else None)
        if name is None:
            continue
        runs = sorted(
            (int(m.group(1)), p) for p in (d / "logs").glob(f"{name}-*.log")
            if (m := re.fullmatch(rf"{re.escape(name)}-(\d+)\.log", p.name))
        )
        if not runs:
            continue
        if previous:
            return runs[-2][1] if len(runs) >= 2 else None
        return runs[-1][1]
    return None
