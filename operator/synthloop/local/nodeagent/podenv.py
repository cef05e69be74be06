"""How a pod's container spec becomes a local process: env, volumes, working dir, argv.

Volumes (documented contract for workers): the process node has no mount namespaces, so
each ``emptyDir``, ``configMap`` and ``secret`` volume becomes a per-pod directory
``<pods_dir>/<ns>_<pod>_<uid>/volumes/<volume>``. For every volumeMount the agent then

* rewrites the mount path prefix to that directory in the container's env values, command,
  args and workingDir (``/scratch/x`` -> ``<pod dir>/volumes/scratch/x``), and
* exports ``SYNTHLOOP_VOLUME_<NAME>`` (volume name upper-cased, ``-`` -> ``_``) with the
  directory, and ``SYNTHLOOP_POD_DIR`` with the pod directory.

So a worker that takes its paths from env or args (as synthloop workers do) works
unchanged; one that hard-codes an absolute mount path does not. ``/dev/shm`` mounts are
left alone (the host's /dev/shm is shared memory already). Service-account token volumes
are replaced by ``KUBECONFIG`` (see ``agent.py``).

Names: there is no cluster DNS on a process node, and every pod there has the node's address
(127.0.0.1). A pod with ``spec.subdomain`` gets the names of its peers under that headless
Service (``<hostname>.<subdomain>[.<ns>[.svc...]]``, e.g. torchrun's rank-0 address) rewritten to
127.0.0.1 in its env, command and args: what the cluster DNS would have answered.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# Things the agent asks the API for while resolving env: (namespace, name) -> data.
Lookup = Callable[[str, str], Mapping[str, str] | None]

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)|\$\$")
_FIELD_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class PodSpecError(ValueError):
    """The pod cannot run as a local process; the message names the field."""


class MissingReferenceError(PodSpecError):
    """A referenced Secret/ConfigMap (key) does not exist yet; a kubelet keeps retrying."""


POD_ADDRESS = "127.0.0.1"


def resolve_peer_names(value: str, pod: Mapping[str, Any]) -> str:
    """``<hostname>.<subdomain>...`` names of the pod's headless Service -> the node address."""
    spec = pod.get("spec") or {}
    sub = spec.get("subdomain")
    if not sub:
        return value
    ns = re.escape(str((pod.get("metadata") or {}).get("namespace", "")))
    pattern = (rf"(?<![\w.-])[a-z0-9](?:[-a-z0-9]*[a-z0-9])?\.{re.escape(sub)}"
               rf"(?:\.{ns}(?:\.svc(?:\.[a-z0-9.-]*[a-z0-9])?)?)?(?=$|[:/\s,;\"'])")
    return re.sub(pattern, POD_ADDRESS, value)


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known vars substituted, ``$$`` escapes, others kept."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, value)


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """The value of a downward-API ``fieldRef.fieldPath`` for ``pod`` (a dict)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    m = _FIELD_SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP") or "127.0.0.1",
        "status.podIP": status.get("podIP") or "127.0.0.1",
        "status.podIPs": status.get("podIP") or "127.0.0.1",
        "status.hostIPs": status.get("hostIP") or "127.0.0.1",
    }
    if path not in simple:
        raise PodSpecError(f"env fieldRef.fieldPath {path!r} is not supported by the process node")
    return str(simple[path] or "")


def _resource_value(container: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    resource = ref.get("resource", "")
    kind, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    return str(value) if value is not None else "0"


def _decode_secret(data: Mapping[str, str] | None) -> dict[str, str] | None:
    if data is None:
        return None
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def volume_dirs(pod: Mapping[str, Any], pod_dir: Path) -> dict[str, Path]:
    """Volume name -> local directory, for the volume types a process node supports."""
    dirs = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if any(k in vol for k in ("emptyDir", "configMap", "secret")):
            dirs[vol["name"]] = pod_dir / "volumes" / vol["name"]
    return dirs


def materialise_volumes(
    pod: Mapping[str, Any], pod_dir: Path, *, get_configmap: Lookup, get_secret: Lookup
) -> dict[str, Path]:
    """Create the per-pod volume dirs and write configMap/secret volume files into them."""
    ns = pod["metadata"]["namespace"]
    dirs = volume_dirs(pod, pod_dir)
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        path = dirs.get(vol["name"])
        if path is None:
            continue
        path.mkdir(parents=True, exist_ok=True)
        data: Mapping[str, str] | None = None
        if "configMap" in vol:
            src = vol["configMap"]
            data = get_configmap(ns, src["name"])
        elif "secret" in vol:
            src = vol["secret"]
            data = _decode_secret(get_secret(ns, src["secretName"]))
        else:
            continue
        if data is None:
            if src.get("optional"):
                continue
            raise MissingReferenceError(f"volume {vol['name']!r}: {ns}/{src.get('name') or src.get('secretName')} not found")
        items = src.get("items")
        pairs = [(i["key"], i["path"]) for i in items] if items else [(k, k) for k in data]
        for key, rel in pairs:
            if key in data:
                target = path / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[key])
    return dirs


def mount_map(container: Mapping[str, Any], dirs: Mapping[str, Path]) -> list[tuple[str, str]]:
    """(mountPath, local dir) pairs for this container, longest mount path first."""
    pairs = []
    for mount in container.get("volumeMounts") or []:
        local = dirs.get(mount["name"])
        if local is None or mount["mountPath"].startswith("/dev/shm"):
            continue
        sub = mount.get("subPath")
        pairs.append((mount["mountPath"].rstrip("/") or "/", str(local / sub if sub else local)))
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def rewrite_paths(value: str, mounts: list[tuple[str, str]]) -> str:
    """Replace each mount path prefix (at a path boundary) with its local directory.

    One pass over all mounts (longest first), so a local directory that itself lies under
    another mount path (a ``SYNTHLOOP_HOME`` under ``/tmp`` with a ``/tmp`` emptyDir) is never
    rewritten a second time.
    """
    if not mounts:
        return value
    local_of = dict(mounts)
    alternatives = "|".join(re.escape(m) for m in sorted(local_of, key=len, reverse=True))
    pattern = rf"(?<![\w./-])({alternatives})(?=/|$|[\s:;,=\"'])"
    return re.sub(pattern, lambda match: local_of[match.group(1)], value)


def build_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    base: Mapping[str, str],
    get_configmap: Lookup,
    get_secret: Lookup,
    dirs: Mapping[str, Path],
    pod_dir: Path,
) -> dict[str, str]:
    """The container's environment on top of ``base`` (PATH etc.), in Kubernetes order:
    ``envFrom`` first, then ``env`` entries, each able to reference earlier ones."""
    ns = pod["metadata"]["namespace"]
    mounts = mount_map(container, dirs)
    env: dict[str, str] = dict(base)
    declared: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        if "configMapRef" in src:
            ref = src["configMapRef"]
            data = get_configmap(ns, ref["name"])
        elif "secretRef" in src:
            ref = src["secretRef"]
            data = _decode_secret(get_secret(ns, ref["name"]))
        else:
            continue
        if data is None:
            if ref.get("optional"):
                continue
            raise MissingReferenceError(f"envFrom: {ns}/{ref['name']} not found")
        for k, v in data.items():
            declared[prefix + k] = v
    for item in container.get("env") or []:
        name = item["name"]
        if "valueFrom" not in item:
            declared[name] = expand(item.get("value", ""), {**env, **declared})
            continue
        vf = item["valueFrom"]
        value: str | None
        if "fieldRef" in vf:
            value = field_value(pod, vf["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in vf:
            value = _resource_value(container, vf["resourceFieldRef"])
        elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
            is_secret = "secretKeyRef" in vf
            ref = vf["secretKeyRef"] if is_secret else vf["configMapKeyRef"]
            data = _decode_secret(get_secret(ns, ref["name"])) if is_secret else get_configmap(ns, ref["name"])
            value = None if data is None else data.get(ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                kind = "secret" if is_secret else "configmap"
                raise MissingReferenceError(
                    f"env {name}: {kind} key {ns}/{ref['name']}[{ref['key']}] not found"
                )
        else:
            raise PodSpecError(f"env {name}: unsupported valueFrom {sorted(vf)}")
        declared[name] = value
    for k, v in declared.items():
        env[k] = resolve_peer_names(rewrite_paths(v, mounts), pod)
    env["SYNTHLOOP_POD_DIR"] = str(pod_dir)
    for vol, local in dirs.items():
        env["SYNTHLOOP_VOLUME_" + re.sub(r"[^A-Za-z0-9]", "_", vol).upper()] = str(local)
    return env


def build_argv(container: Mapping[str, Any], env: Mapping[str, str], dirs: Mapping[str, Path],
               pod: Mapping[str, Any] | None = None) -> list[str]:
    """command + args with ``$(VAR)`` expanded and mount paths rewritten."""
    command = list(container.get("command") or [])
    if not command:
        raise PodSpecError(
            f"container {container.get('name')!r} has no command: a process node cannot run an "
            f"image's entrypoint; set `command` (e.g. [synthloop-worker, ...])"
        )
    mounts = mount_map(container, dirs)
    argv = command + list(container.get("args") or [])
    return [resolve_peer_names(rewrite_paths(expand(a, env), mounts), pod or {}) for a in argv]


def working_dir(container: Mapping[str, Any], dirs: Mapping[str, Path], pod_dir: Path) -> Path:
    """The container's workingDir (rewritten if under a mount), else the pod directory."""
    wd = container.get("workingDir")
    if not wd:
        return pod_dir
    local = Path(rewrite_paths(wd, mount_map(container, dirs)))
    if local.is_dir():
        return local
    if str(local) != wd:  # under a mounted volume: the directory is ours to create
        local.mkdir(parents=True, exist_ok=True)
        return local
    # an image's directory (e.g. /app) that this machine lacks: run from the pod dir instead
    return pod_dir
