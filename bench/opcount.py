"""Run `synthloop operator` with its API requests and reconcile passes counted (for bench/scale.py).

``python bench/opcount.py OUT.json -- <operator args>``: the kubernetes client's requests (the
reconciler's reads and writes), aiohttp's (kopf's watches and its own patches) and the calls of
``Reconciler.reconcile`` are counted and written to OUT.json every second. Works on any
revision of the operator (it patches only names every revision has), so the same counter
measures today's code and a baseline.
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
    from kubernetes.client import rest

    sync_request = rest.RESTClientObject.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        _inc(f"reconciler {method}")
        return sync_request(self, method, url, *args, **kwargs)

    rest.RESTClientObject.request = request  # type: ignore[method-assign]
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
    out, sep, *rest = sys.argv[1:]
    assert sep == "--", "usage: opcount.py OUT.json -- <operator args>"
    install()
    threading.Thread(target=dump, args=(out,), daemon=True).start()
    from synthloop.cli import main as cli

    return int(cli(["operator", *rest]) or 0)


if __name__ == "__main__":
    sys.exit(main())
