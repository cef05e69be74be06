"""Pinned upstream binaries, built from Go wrapper modules and cached with a checksum.

Each component is built from a tiny wrapper module under ``go/<module>/`` (package data):
upstream ``go install`` fails for Kubernetes and etcd because their ``go.mod`` files
``replace`` sibling modules with relative paths. The wrappers pin exact versions, so a
build is reproducible; the Go build cache makes a rebuild after a corrupted binary cheap.

A build record (``bin/build-record.json``) stores each binary's sha256 and the pin it was
built from. A binary whose bytes no longer match, or that was built from another pin, is
rebuilt with a message that says why, never silently trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from synthloop.local.paths import LocalPaths

GO_DIR = Path(__file__).with_name("go")

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
MINIO_RELEASE = "RELEASE.2025-10-15T17-29-55Z"
MINIO_COMMIT = "7aac2a2c5b7c"
KUEUE_VERSION = "v0.17.0"

_K8S_VERSION_PKGS = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


def _k8s_ldflags() -> tuple[str, ...]:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    flags: list[str] = []
    for pkg in _K8S_VERSION_PKGS:
        flags += [
            f"-X {pkg}.gitVersion={KUBERNETES_VERSION}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return tuple(flags)


@dataclass(frozen=True)
class Component:
    """One binary: where it is built from and how to prove it is the pinned version."""

    name: str
    module: str  # directory under go/
    package: str
    version: str  # must appear in the output of ``version_args``
    ldflags: tuple[str, ...] = ()
    version_args: tuple[str, ...] = ("--version",)
    # a binary without a version flag (kueue) is proven by its Go build info instead:
    # `go version -m` must list this module at ``version``
    buildinfo_module: str | None = None

    @property
    def pin(self) -> str:
        """Identity of the build inputs; a record with another pin means "rebuild"."""
        gomod = (GO_DIR / self.module / "go.mod").read_bytes()
        digest = hashlib.sha256(gomod + " ".join(self.ldflags).encode()).hexdigest()[:16]
        return f"{self.package}@{self.version}#{digest}"


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "kubectl",
            "kubernetes",
            "k8s.io/kubernetes/cmd/kubectl",
            KUBERNETES_VERSION,
            _k8s_ldflags(),
            ("version", "--client"),
        ),
        Component(
            "kube-apiserver", "kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver",
            KUBERNETES_VERSION, _k8s_ldflags(),
        ),
        Component(
            "kube-controller-manager", "kubernetes",
            "k8s.io/kubernetes/cmd/kube-controller-manager", KUBERNETES_VERSION, _k8s_ldflags(),
        ),
        Component(
            "kube-scheduler", "kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler",
            KUBERNETES_VERSION, _k8s_ldflags(),
        ),
        Component(
            "etcd", "etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION.lstrip("v"),
            (f"-X go.etcd.io/etcd/api/v3/version.GitSHA={ETCD_VERSION}",),
        ),
        Component("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok", KWOK_VERSION.lstrip("v")),
        Component(
            "minio", "minio", "github.com/minio/minio", MINIO_RELEASE,
            (
                "-X github.com/minio/minio/cmd.Version=2025-10-15T17:29:55Z",
                f"-X github.com/minio/minio/cmd.ReleaseTag={MINIO_RELEASE}",
                f"-X github.com/minio/minio/cmd.CommitID={MINIO_COMMIT}",
                f"-X github.com/minio/minio/cmd.ShortCommitID={MINIO_COMMIT}",
            ),
        ),
        Component(
            "kueue", "kueue", "sigs.k8s.io/kueue/cmd/kueue", KUEUE_VERSION,
            (
                f"-X sigs.k8s.io/kueue/pkg/version.GitVersion={KUEUE_VERSION}",
                "-X sigs.k8s.io/kueue/pkg/version.BuildDate=1970-01-01T00:00:00Z",
            ),
            buildinfo_module="sigs.k8s.io/kueue",
        ),
    )
}

# What `up` needs; `synthloop local build` also builds the optional ones (kueue: `up --kueue`).
CLUSTER_COMPONENTS = (
    "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok",
    "minio",
)
OPTIONAL_COMPONENTS = ("kueue",)


class BinaryError(RuntimeError):
    """A binary is missing, corrupted or cannot be built; the message says what to do."""


@dataclass
class BuildRecord:
    """sha256 and pin of each cached binary, written right after it was built and checked."""

    path: Path
    entries: dict[str, dict[str, object]] = field(default_factory=dict)

    @classmethod
    def load(cls, bin_dir: Path) -> BuildRecord:
        path = bin_dir / "build-record.json"
        try:
            entries = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            entries = {}
        return cls(path=path, entries=entries)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=2, sort_keys=True))
        tmp.replace(self.path)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_cached(component: Component, *, bin_dir: Path, record: BuildRecord) -> str | None:
    """Why the cached binary cannot be used, or None when it is present and intact."""
    path = bin_dir / component.name
    entry = record.entries.get(component.name)
    if not path.exists():
        return f"{component.name} is not built yet"
    if entry is None:
        return f"{component.name} at {path} has no build record"
    if entry.get("pin") != component.pin:
        return f"{component.name} was built from another pin ({entry.get('pin')}), want {component.pin}"
    actual = sha256_file(path)
    if actual != entry.get("sha256"):
        return (
            f"cached {component.name} at {path} is corrupted: sha256 {actual[:12]}... does not "
            f"match the {str(entry.get('sha256'))[:12]}... recorded when it was built"
        )
    return None


def version_output(path: Path, component: Component) -> str:
    if component.buildinfo_module is not None:
        return _buildinfo_version(path, component, component.buildinfo_module)
    try:
        proc = subprocess.run(
            [str(path), *component.version_args],
            capture_output=True, text=True, timeout=60, check=False,
        )
    except OSError as exc:
        raise BinaryError(f"{component.name} at {path} cannot run: {exc}") from exc
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or component.version not in out:
        raise BinaryError(
            f"{component.name} at {path} does not report version {component.version} "
            f"(exit {proc.returncode}): {out[:300]!r}"
        )
    return out.splitlines()[0]


def _buildinfo_version(path: Path, component: Component, module: str) -> str:
    proc = subprocess.run(
        [find_go(), "version", "-m", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    wanted = f"{module}\t{component.version}"
    if proc.returncode != 0 or wanted not in proc.stdout:
        raise BinaryError(
            f"{component.name} at {path}: its Go build info does not list {module} "
            f"{component.version} (exit {proc.returncode}): {(proc.stdout + proc.stderr)[:300]!r}"
        )
    return f"{component.name} {module} {component.version} ({proc.stdout.splitlines()[0].split()[-1]})"


def find_go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BinaryError(
            "no Go toolchain: `go` is not on PATH. synthloop local builds kube-apiserver, etcd, "
            "kwok and minio from pinned Go modules once (Go >= 1.26, https://go.dev/dl/); "
            "install it or put it on PATH, then run `synthloop local build`"
        )
    return go


Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_component(
    component: Component, *, bin_dir: Path, jobs: int = 2, progress: Progress = _stderr
) -> dict[str, object]:
    """Compile one binary into ``bin_dir`` (atomically) and return its build record entry."""
    go = find_go()
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / ".building").mkdir(parents=True, exist_ok=True)
    out = bin_dir / ".building" / component.name  # same basename: --version output names it
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-trimpath -buildvcs=false")
    cmd = [
        go, "build", "-v", "-p", str(jobs),
        "-ldflags", " ".join(("-s", "-w", *component.ldflags)),
        "-o", str(out), component.package,
    ]
    start = time.monotonic()
    progress(f"building {component.name} ({component.package} {component.version}) ...")
    proc = subprocess.Popen(
        cmd, cwd=GO_DIR / component.module, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    last_report = start
    for compiled, line in enumerate(proc.stdout, start=1):
        lines.append(line.rstrip())
        now = time.monotonic()
        if now - last_report >= 20:
            progress(f"  {component.name}: {compiled} packages compiled, {now - start:.0f}s")
            last_report = now
    rc = proc.wait()
    if rc != 0:
        out.unlink(missing_ok=True)
        tail = "\n".join(lines[-25:])
        raise BinaryError(f"building {component.name} failed (go build exit {rc}):\n{tail}")
    seconds = time.monotonic() - start
    reported = version_output(out, component)
    out.replace(bin_dir / component.name)
    progress(f"built {component.name} in {seconds:.0f}s: {reported}")
    return {
        "pin": component.pin,
        "sha256": sha256_file(bin_dir / component.name),
        "version": reported,
        "build_seconds": round(seconds, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def ensure_binaries(
    names: Iterable[str] | None = None,
    *,
    paths: LocalPaths | None = None,
    build: bool = True,
    force: bool = False,
    jobs: int = 2,
    progress: Progress = _stderr,
) -> dict[str, Path]:
    """Return name -> path of intact pinned binaries, building (or rebuilding) as needed.

    With ``build=False`` a missing or corrupted binary raises ``BinaryError`` instead, so
    `up` can refuse to start anything rather than begin a half-hour compile unasked.
    ``names=None`` means what `up` needs (``CLUSTER_COMPONENTS``), not the optional ones.
    """
    paths = paths or LocalPaths.default()
    wanted = list(names) if names is not None else list(CLUSTER_COMPONENTS)
    unknown = [n for n in wanted if n not in COMPONENTS]
    if unknown:
        raise BinaryError(f"unknown component(s) {unknown}; expected some of {list(COMPONENTS)}")
    record = BuildRecord.load(paths.bin_dir)
    result: dict[str, Path] = {}
    for name in wanted:
        component = COMPONENTS[name]
        problem = "rebuild requested" if force else check_cached(
            component, bin_dir=paths.bin_dir, record=record
        )
        if problem is not None:
            if not build:
                raise BinaryError(f"{problem}; run `synthloop local build` first")
            progress(f"{problem}; building it")
            entry = build_component(component, bin_dir=paths.bin_dir, jobs=jobs, progress=progress)
            # another `build` may have recorded its binaries meanwhile: merge, do not overwrite
            record = BuildRecord.load(paths.bin_dir)
            record.entries[name] = entry
            record.save()
        result[name] = paths.bin_dir / name
    return result
