"""`synthloop local build | up | down | status | env | logs`: the embedded default cluster."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from synthloop.local.options import PORT_FIELDS, ClusterOptions


def register(subparsers: Any) -> None:
    local = subparsers.add_parser(
        "local",
        help="a real Kubernetes control plane, MinIO and DGX-like nodes as local processes",
        description=__doc__,
    )
    sub = local.add_subparsers(dest="local_command", required=True, metavar="SUBCOMMAND")

    build = sub.add_parser("build", help="build (or verify) the pinned binaries into $SYNTHLOOP_HOME/bin")
    build.add_argument("components", nargs="*",
                       help="only these (default: all, including kueue for `up --kueue`)")
    build.add_argument("--force", action="store_true", help="rebuild even if the cache is intact")
    build.add_argument("--jobs", type=int, default=2, help="go build -p (default 2)")
    build.set_defaults(func=cmd_build)

    up = sub.add_parser("up", help="start the cluster (building missing binaries first)")
    defaults = ClusterOptions()
    for name in PORT_FIELDS:
        up.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name),
                        help=f"default {getattr(defaults, name)}")
    up.add_argument("--kwok-nodes", type=int, default=defaults.kwok_nodes,
                    help="KWOK DGX H100 nodes (simulated; 768 works)")
    up.add_argument("--kwok-cpu-nodes", type=int, default=defaults.kwok_cpu_nodes,
                    help="KWOK CPU-only nodes")
    up.add_argument("--kwok-job-seconds", type=float, default=defaults.kwok_job_seconds,
                    help="seconds a Job pod on a KWOK node runs before it Succeeds")
    up.add_argument("--dgx-process-nodes", type=int, default=defaults.dgx_process_nodes,
                    help="process nodes with DGX labels/taint (local-dgx-N)")
    up.add_argument("--cpu-process-nodes", type=int, default=defaults.cpu_process_nodes,
                    help="untainted process nodes (local-cpu-N)")
    up.add_argument("--gpu-label", action="append", default=[], metavar="KEY=VALUE",
                    help="override/add a GPU node label (repeatable)")
    up.add_argument("--bucket", default=defaults.bucket)
    up.add_argument("--ready-timeout", type=float, default=defaults.ready_timeout)
    up.add_argument("--no-build", action="store_true",
                    help="fail instead of building a missing or corrupted binary")
    _kueue_args(up, defaults, prefix="kueue-")
    up.add_argument("--kueue", action="store_true",
                    help="also start Kueue (webhooks on loopback) with a DGX flavor and queues")
    up.set_defaults(func=cmd_up)

    kueue = sub.add_parser("kueue", help="Kueue on the running cluster: `kueue up` adds it, `kueue down` stops it")
    kueue_sub = kueue.add_subparsers(dest="kueue_command", required=True, metavar="ACTION")
    kueue_up = kueue_sub.add_parser("up", help="start Kueue (idempotent: a running one keeps running, "
                                               "its queues converge)")
    _kueue_args(kueue_up, defaults, prefix="")
    kueue_up.add_argument("--no-build", action="store_true", help="fail instead of building kueue")
    kueue_up.set_defaults(func=cmd_kueue_up)
    kueue_down = kueue_sub.add_parser("down", help="stop Kueue and remove its webhooks (CRDs and queues stay)")
    kueue_down.set_defaults(func=cmd_kueue_down)

    down = sub.add_parser("down", help="stop exactly the processes `up` started")
    down.set_defaults(func=cmd_down)

    restart = sub.add_parser("restart", help="stop one component, keep it down a while, start it "
                                             "again and wait until it is ready (fault drills)")
    restart.add_argument("component", help="etcd, kube-apiserver, kube-controller-manager, "
                                           "kube-scheduler or minio")
    restart.add_argument("--down-seconds", type=float, default=0.0,
                         help="seconds it stays down before it starts again (default 0)")
    restart.add_argument("--grace", type=float, default=10.0,
                         help="seconds between SIGTERM and SIGKILL (default 10)")
    restart.set_defaults(func=cmd_restart)

    status = sub.add_parser("status", help="show processes and nodes")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    env = sub.add_parser("env", help="print export lines for KUBECONFIG, PATH and MinIO")
    env.set_defaults(func=cmd_env)

    logs = sub.add_parser("logs", help="print a process-node pod's container log")
    logs.add_argument("pod")
    logs.add_argument("-n", "--namespace", default="default")
    logs.add_argument("-c", "--container", default=None)
    logs.add_argument("-p", "--previous", action="store_true")
    logs.set_defaults(func=cmd_logs)


def _kueue_args(parser: argparse.ArgumentParser, defaults: ClusterOptions, *, prefix: str) -> None:
    """``up --kueue-*`` default to ClusterOptions; ``kueue up`` keeps the running cluster's values."""
    keep = not prefix
    parser.add_argument(f"--{prefix}gpu-quota", dest="kueue_gpu_quota", type=int,
                        default=None if keep else defaults.kueue_gpu_quota,
                        help="nvidia.com/gpu nominal quota of ClusterQueue dgx "
                             f"(default {'unchanged, first ' if keep else ''}{defaults.kueue_gpu_quota})")
    parser.add_argument(f"--{prefix}namespace", dest="kueue_namespace",
                        default=None if keep else defaults.kueue_namespace,
                        help=f"namespace of LocalQueue dgx (default {'unchanged, first ' if keep else ''}"
                             f"{defaults.kueue_namespace})")


def _err(msg: str) -> int:
    print(f"synthloop local: error: {msg}", file=sys.stderr)
    return 1


def cmd_build(args: argparse.Namespace) -> int:
    from synthloop.local.binaries import COMPONENTS, BinaryError, ensure_binaries

    try:
        bins = ensure_binaries(args.components or list(COMPONENTS), force=args.force, jobs=args.jobs)
    except BinaryError as exc:
        return _err(str(exc))
    for name, path in bins.items():
        print(f"{name}: {path}")
    return 0


def options_from_args(args: argparse.Namespace) -> ClusterOptions:
    opts = ClusterOptions(
        kwok_nodes=args.kwok_nodes, kwok_cpu_nodes=args.kwok_cpu_nodes,
        kwok_job_seconds=args.kwok_job_seconds, dgx_process_nodes=args.dgx_process_nodes,
        cpu_process_nodes=args.cpu_process_nodes, bucket=args.bucket,
        ready_timeout=args.ready_timeout, kueue=args.kueue, kueue_gpu_quota=args.kueue_gpu_quota,
        kueue_namespace=args.kueue_namespace,
    )
    for name in PORT_FIELDS:
        setattr(opts, name, getattr(args, name))
    for item in args.gpu_label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--gpu-label expects KEY=VALUE, got {item!r}")
        opts.gpu_labels[key] = value
    return opts


def cmd_up(args: argparse.Namespace) -> int:
    from synthloop.local.cluster import ClusterError, up
    from synthloop.local.paths import LocalPaths

    try:
        opts = options_from_args(args)
        state = up(opts, build=not args.no_build)
    except (ClusterError, ValueError) as exc:
        return _err(str(exc))
    print(_env_lines(state.env(LocalPaths.default())))
    return 0


def cmd_kueue_up(args: argparse.Namespace) -> int:
    from synthloop.local.cluster import ClusterError, kueue_up

    try:
        kueue_up(gpu_quota=args.kueue_gpu_quota, namespace=args.kueue_namespace, build=not args.no_build)
    except ClusterError as exc:
        return _err(str(exc))
    return 0


def cmd_kueue_down(args: argparse.Namespace) -> int:
    from synthloop.local.cluster import ClusterError, kueue_down

    try:
        kueue_down()
    except ClusterError as exc:
        return _err(str(exc))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from synthloop.local.cluster import ClusterError, down

    try:
        down()
    except ClusterError as exc:
        return _err(str(exc))
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    from synthloop.local.cluster import ClusterError, restart

    try:
        restart(args.component, down_seconds=args.down_seconds, grace=args.grace)
    except ClusterError as exc:
        return _err(str(exc))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from synthloop.local.cluster import status

    info = status()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0 if info["running"] else 1
    if not info["processes"]:
        print(info["message"])
        return 1
    print(f"cluster: {'running' if info['running'] else 'NOT running'}")
    for p in info["processes"]:
        state = "alive" if p["alive"] else ("dead" if p.get("addon") else "DEAD")
        print(f"  {p['name']:<24} pid {p['pid']:<8} {state:<5} {p['rss_mib']:>7.1f} MiB  {p['log']}")
    print(f"resident memory: {info['rss_mib']:.0f} MiB")
    if "nodes" in info:
        print(f"nodes: {info['nodes']}")
    print(f"kubeconfig: {info['kubeconfig']}\nminio: {info['s3_endpoint']}")
    return 0 if info["running"] else 1


def _env_lines(env: dict[str, str]) -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items())


def cmd_env(args: argparse.Namespace) -> int:
    from synthloop.local.cluster import load_state
    from synthloop.local.paths import LocalPaths

    state = load_state()
    if state is None:
        return _err("no local cluster; run `synthloop local up` first")
    print(_env_lines(state.env(LocalPaths.default())))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from synthloop.local.nodeagent.logs import find_log
    from synthloop.local.paths import LocalPaths

    path = find_log(LocalPaths.default().pods_dir, args.namespace, args.pod, args.container,
                    previous=args.previous)
    if path is None:
        return _err(
            f"no container log for pod {args.namespace}/{args.pod}"
            + (f" container {args.container}" if args.container else "")
            + " on the process nodes (KWOK pods have no logs; name -c when a pod has several containers)"
        )
    sys.stdout.write(path.read_text(errors="replace"))
    return 0
