"""Hand-off latency inside the operator: a producer's manifest written -> its consumer's Job made.

With ``--idle`` SynthRounds waiting on a promotion that never comes (a busy namespace), each of
``--pairs`` producers (a SynthRound) finishes: its manifests are written, its Job completes and
the Job event's pass runs, as on a cluster. The time until the consumer's (an AlignJob on
``fromRef`` to it) first Job is applied is recorded. The real reconciler of each version runs
against the in-memory API server of bench/operator_bytes.py (no network: this is the
operator's own work, a lower bound on the real latency; the baseline's extra API requests
per woken object would add their round trips). This code keeps its informer cache current
from the same writes, as kopf's watch events would.

Usage: python bench/handoff.py [--baseline REV] [--idle 1000] [--pairs 20]. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from operator_bytes import NS, Api, CountingBackend, finish, play_worker

ROOT = Path(__file__).resolve().parents[1]


class CachedApi(Api):
    """The in-memory API with this version's cache fed by every write (the watch events)."""

    def __init__(self) -> None:
        super().__init__()
        from synthloop.controllers.cache import Cache  # type: ignore[import-not-found]

        self.cache = Cache()
        self.applied: dict[str, float] = {}

    def add(self, doc: dict[str, Any]) -> None:
        super().add(doc)
        self.cache.event(doc["kind"], "ADDED", self.crs[(doc["kind"], doc["metadata"]["name"])])

    def patch_status(self, kind: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        super().patch_status(kind, namespace, name, patch)
        self.cache.event(kind, "MODIFIED", self.crs[(kind, name)])


class TimedApi(Api):
    def __init__(self) -> None:
        super().__init__()
        self.applied: dict[str, float] = {}


def _apply_timed(api: Any, obj: dict[str, Any]) -> None:
    Api.apply(api, obj)
    if obj["kind"] == "Job":
        api.applied.setdefault(obj["metadata"]["name"], time.perf_counter())


def run(args: argparse.Namespace) -> dict[str, Any]:
    from synthloop.artifacts.store import ArtifactNotFound, ArtifactStore
    from synthloop.controllers.config import OperatorConfig
    from synthloop.controllers.reconcile import Reconciler

    try:
        api: Any = CachedApi()
    except ImportError:
        api = TimedApi()
    api.apply = lambda obj: _apply_timed(api, obj)
    tmp = Path(tempfile.mkdtemp(prefix="synthloop-bench-handoff-"))
    backend = CountingBackend(tmp)
    backend.not_found = ArtifactNotFound  # type: ignore[attr-defined]
    store = ArtifactStore(s3=backend)  # type: ignore[arg-type]
    rec = Reconciler(cluster=api, store=store, config=OperatorConfig(s3_endpoint="minio:9000"))  # type: ignore[arg-type]
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    synth = {"generator": {"model": {"uri": "s3://synthloop/models/gen/"}, "backend": "transformers"},
             "prompts": {"math": 4}, "resources": {"gpusPerNode": 0}}
    for i in range(args.idle):
        api.add({"kind": "SynthRound", "metadata": {"name": f"idle-{i:04d}"},
                 "spec": {**synth, "generator": {"model": {"promoted": "never"}, "backend": "transformers"}}})
    for i in range(args.pairs):
        api.add({"kind": "SynthRound", "metadata": {"name": f"prod-{i:02d}"}, "spec": synth})
        api.add({"kind": "AlignJob", "metadata": {"name": f"cons-{i:02d}"}, "spec": {
            "baseModel": {"uri": "s3://synthloop/models/gen/"},
            "data": {"fromRef": {"kind": "SynthRound", "name": f"prod-{i:02d}"}}, "stages": [{"type": "sft"}]}})
    for kind, name in list(api.crs):  # every object's first pass: the idle ones and consumers wait
        rec.reconcile(kind, NS, name)
    model = b"w" * 1024
    latencies = []
    for i in range(args.pairs):
        prod = f"prod-{i:02d}"
        for stage in ("synth", "merge"):
            job = api.jobs[f"{prod}-{stage}"]
            t0 = time.perf_counter()  # the worker writes its outputs and manifest, the Job completes
            play_worker(store, job, model, set())
            finish(job)
            rec.reconcile("SynthRound", NS, prod)  # the Job event's pass
        latencies.append(api.applied[f"cons-{i:02d}-sft-0"] - t0)
    shutil.rmtree(tmp, ignore_errors=True)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return {"pairs": args.pairs, "idle": args.idle, "p50_seconds": round(latencies[len(latencies) // 2], 4),
            "p99_seconds": round(p99, 4), "max_seconds": round(latencies[-1], 4),
            "consumers_started": sum(1 for i in range(args.pairs) if f"cons-{i:02d}-sft-0" in api.applied)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="3776847")
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run(args)))
        return 0
    wt = Path(tempfile.mkdtemp(prefix="synthloop-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(wt), args.baseline], cwd=ROOT, check=True,
                   capture_output=True)
    out: dict[str, Any] = {"baseline": args.baseline}
    try:
        for label, code in (("baseline", wt), ("current", ROOT)):
            env = {**os.environ, "PYTHONPATH": f"{code / 'operator'}{os.pathsep}{ROOT}"}
            proc = subprocess.run([sys.executable, __file__, "--run", "--idle", str(args.idle), "--pairs",
                                   str(args.pairs)], env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"{label} run failed:\n{proc.stderr[-4000:]}")
            out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, check=False, capture_output=True)
    out["p99_ratio"] = round(out["current"]["p99_seconds"] / out["baseline"]["p99_seconds"], 4)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
