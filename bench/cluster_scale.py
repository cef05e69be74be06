"""KWOK fleet scale: time to register N DGX nodes and run an N-completion Indexed Job.

Runs against the cluster of `synthloop local` (start one with `synthloop local up`, or this
script starts and stops one with no KWOK nodes). Reports absolute seconds and the ratio of
each phase at N (default 768) to a baseline of 8 nodes measured in the same run, so the
numbers compare across machines:

    python bench/cluster_scale.py [--nodes 768] [--baseline 8]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from synthloop.local.cluster import down, running_state, up
from synthloop.local.kube import KubeClient
from synthloop.local.options import ClusterOptions
from synthloop.local.scaleprobe import run_probe


def _namespace(kube: KubeClient) -> str:
    name = f"bench-scale-{uuid.uuid4().hex[:6]}"
    kube.create("/api/v1/namespaces", {"metadata": {"name": name}})
    deadline = time.monotonic() + 60
    while kube.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default") is None:
        if time.monotonic() > deadline:
            raise TimeoutError("default ServiceAccount never appeared")
        time.sleep(0.5)
    return name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=768)
    parser.add_argument("--baseline", type=int, default=8)
    args = parser.parse_args()
    state = running_state()
    started = state is None
    if state is None:
        state = up(ClusterOptions(kwok_nodes=0, kwok_cpu_nodes=0), build=False)
    try:
        kube = KubeClient.from_kubeconfig(state.kubeconfig, maxsize=64)
        ns = _namespace(kube)
        try:
            base = run_probe(kube, nodes=args.baseline, namespace=ns)
            time.sleep(5)  # let the baseline's nodes and pods go away
            big = run_probe(kube, nodes=args.nodes, namespace=ns, timeout=1800)
        finally:
            kube.delete(f"/api/v1/namespaces/{ns}")
        report = {
            "baseline": base.as_dict(),
            "scaled": big.as_dict(),
            "ratio": {
                k: round(getattr(big, k) / max(getattr(base, k), 1e-3), 2)
                for k in ("register_seconds", "bound_seconds", "job_seconds")
            },
            "per_node_ms": {
                k: round(1000 * getattr(big, k) / big.nodes, 1)
                for k in ("register_seconds", "bound_seconds", "job_seconds")
            },
        }
        print(json.dumps(report, indent=2))
    finally:
        if started:
            down()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
