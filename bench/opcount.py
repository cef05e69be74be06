"""Run `synthloop operator` with its API requests and reconcile passes counted (for bench/scale.py).

``python bench/opcount.py [--image] OUT.json -- <operator args>``: the reconciler's requests
(through the project's urllib3 client, or the kubernetes client of older revisions), aiohttp's
(kopf's watches and its own patches) and the calls of ``Reconciler.reconcile`` are counted and
written to OUT.json every second, so the same counter measures today's code and a baseline.
``--image`` hides the packages the operator image does not install (the dev extra's
``kubernetes``, which kopf would otherwise import), to measure memory as deployed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

COUNTS: Counter[str] = Counter()
LOCK = threading.Lock()


def _inc(key: str) -> None:
    with LOCK:
        COUNTS[key] += 1


def install() -> None:
    import aiohttp

    try:  # this code: the project's own urllib3 client
        from synthloop.local.kube import KubeClient

        own = KubeClient.request

        def request(self: Any, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
            _inc(f"reconciler {method}")
            return own(self, method, path, *args, **kwargs)

        KubeClient.request = request  # type: ignore[method-assign]
    except ImportError:
        pass
    if "kubernetes" not in sys.modules or sys.modules["kubernetes"] is not None:  # a baseline's client
        from kubernetes.client import rest

        sync_request = rest.RESTClientObject.request

        def rest_request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            _inc(f"reconciler {method}")
            return sync_request(self, method, url, *args, **kwargs)

        rest.RESTClientObject.request = rest_request  # type: ignore[method-assign]
    kopf_request = aiohttp.ClientSession._request

    async def kopf(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        watch = "watch=true" in str(url) or (kwargs.get("params") or {}).get("watch") in ("true", True)
        _inc(f"kopf {method}{' watch' if watch else ''}")
        return await kopf_request(self, method, url, *args, **kwargs)

    aiohttp.ClientSession._request = kopf  # type: ignore[method-assign]

    from synthloop.controllers import reconcile

    passes = reconcile.Reconciler.reconcile

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        _inc("passes")
        return passes(self, *args, **kwargs)

    reconcile.Reconciler.reconcile = counted  # type: ignore[method-assign]


def dump(path: str) -> None:
    while True:
        with LOCK:
            doc = dict(COUNTS)
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(doc, fh)
        os.replace(tmp, path)
        time.sleep(1.0)


def main() -> int:
    args = sys.argv[1:]
    if args[0] == "--image":
        # As the operator image runs it: without the dev extra's packages (kubernetes).
        args = args[1:]
        sys.modules["kubernetes"] = None  # type: ignore[assignment]
        sys.modules["kubernetes_asyncio"] = None  # type: ignore[assignment]
    out, sep, *rest = args
    assert sep == "--", "usage: opcount.py [--image] OUT.json -- <operator args>"
    install()
    threading.Thread(target=dump, args=(out,), daemon=True).start()
    from synthloop.cli import main as cli

    return int(cli(["operator", *rest]) or 0)


if __name__ == "__main__":
    sys.exit(main())
