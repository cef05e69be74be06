"""``synthloop operator``: run the kopf operator in standalone mode (one replica, no peering).

The Deployment in ``manifests/`` runs exactly this; tests run it as a subprocess with
``--liveness-port 0`` against the local cluster.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("operator", help="run the synthloop operator (kopf, standalone)",
                                   description=__doc__)
    parser.add_argument("--liveness-port", type=int, default=int(os.environ.get("SYNTHLOOP_LIVENESS_PORT", "8080")),
                        help="port of http://0.0.0.0:PORT/healthz and /metrics (0 disables both)")
    parser.add_argument("--namespace", "-n", action="append", default=None,
                        help="namespace to watch (repeatable; default $SYNTHLOOP_NAMESPACES, else all)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    import kopf

    from synthloop.controllers.config import load_config

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # kopf logs each handler's success at INFO: the cache's, on every watch event, would drown the rest.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    load_config()  # fail fast on a bad setting, before any watch starts
    _few_malloc_arenas()
    from synthloop.controllers.handlers import register_kind, watch_namespaces
    from synthloop.controllers.kinds import PLUGINS

    for kind in PLUGINS:  # kopf handlers for every kind in the registry
        register_kind(kind)

    namespaces = watch_namespaces(args.namespace)
    logging.getLogger("synthloop.operator").info(
        "watching %s", ", ".join(namespaces) if namespaces else "all namespaces")

    kopf.configure(verbose=args.verbose)

    async def operate() -> None:
        if args.liveness_port:
            from synthloop.controllers import metrics

            metrics.serve(args.liveness_port, asyncio.get_running_loop())
        await kopf.operator(standalone=True, clusterwide=not namespaces, namespaces=namespaces)

    asyncio.run(operate())
    return 0


def _few_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core); the
    passes' short-lived dicts then fragment many arenas and hold RSS. Two arenas are enough
    for eight worker threads that mostly wait on the network (``MALLOC_ARENA_MAX`` wins)."""
    import ctypes
    import ctypes.util

    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune
