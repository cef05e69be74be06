"""Bytes the operator downloads from the artifact store over the demo loop, this code vs a baseline.

The real reconciler of each version runs the demo loop (``examples/loop/`` of the baseline
revision, so both versions read the same specs) against the in-memory API server and the
directory-backed store of tests/fakes.py (the unit tests' own), whose GETs are counted. Each
Job's worker is played by the bench: it writes the outputs its task writes (a model of
``--model-mib`` MiB, data files, metrics) through the version's own ``ArtifactStore`` and then
its manifest, and the Job completes. Every object gets ``--passes`` passes while each Job
runs (Job events and resyncs), as on a cluster.

Usage: python bench/operator_bytes.py [--baseline REV] [--model-mib 64] [--passes 5]
Prints one JSON line: bytes and GETs of each version, their ratio, the loop's final phases.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the in-memory apiserver and store are the unit tests' (tests/fakes.py)
from tests.fakes import ApiServer, DirBackend, complete_job

NS = "demo"
CountingBackend = DirBackend  # what handoff.py imports


class Api(ApiServer):
    """The unit tests' apiserver in the demo namespace; ``add`` takes a whole document."""

    def __init__(self) -> None:
        super().__init__(namespace=NS)

    def add(self, doc: dict[str, Any]) -> None:  # type: ignore[override]
        self.add_doc(doc)


def play_worker(store: Any, job: dict[str, Any], model_bytes: bytes, gated: set[str]) -> None:
    """Write what the Job's task writes, then its manifest(s), as the worker would."""
    from synthloop.artifacts.manifest import ArtifactRef, Manifest, write_manifest
    from synthloop.artifacts.uris import join

    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    cfg = json.loads(next(e["value"] for e in env if e["name"] == "SYNTHLOOP_WORKER_CONFIG"))
    task, out = cfg["task"], cfg["output"]

    def put(prefix: str, rel: str, data: bytes, role: str) -> Any:
        return ArtifactRef.of(store.put_bytes(join(prefix, rel), data), role=role)

    # Every gated metric passes: the run's own evaluation scores above its parent's and baselines'.
    reference = "/eval-parent/" in out or "/eval-baseline" in out
    metrics = {m: 0.4 if reference else 0.9 for m in gated}
    if task == "synth":
        for i in range(int(cfg.get("num_shards") or 1)):
            prefix = join(out, "shards", f"{i:05d}")
            refs = [put(prefix, "sft.jsonl", b'{"m": 1}\n' * 4096, "sft"),
                    put(prefix, "preference.jsonl", b'{"p": 1}\n' * 4096, "preference")]
            write_manifest(store, prefix, Manifest(task=task, outputs=refs))
        return
    if task == "synth-merge":
        refs = [put(out, "sft.jsonl", b'{"m": 1}\n' * 8192, "sft"),
                put(out, "preference.jsonl", b'{"p": 1}\n' * 8192, "preference")]
    elif task == "eval":
        refs = [ArtifactRef.of(store.put_json(join(out, "metrics.json"), {"metrics": metrics, "counts": {}}),
                               role="metrics")]
    else:
        refs = [put(out, "model/model.safetensors", model_bytes, "model"), put(out, "model/config.json", b"{}", "model"),
                ArtifactRef.of(store.put_json(join(out, "metrics.json"), {"metrics": metrics, "counts": {}}),
                               role="metrics")]
    write_manifest(store, out, Manifest(task=task, outputs=refs, metrics=metrics))


def finish(job: dict[str, Any]) -> None:
    complete_job(job)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The loop on the synthloop found first on sys.path."""
    from synthloop.artifacts.store import ArtifactStore
    from synthloop.controllers.config import OperatorConfig
    from synthloop.controllers.reconcile import Reconciler

    tmp = Path(tempfile.mkdtemp(prefix="synthloop-bench-bytes-"))
    backend = DirBackend(tmp)
    store = ArtifactStore(s3=backend)  # type: ignore[arg-type]
    api = Api()
    rec = Reconciler(cluster=api, store=store, config=OperatorConfig(s3_endpoint="minio:9000"))  # type: ignore[arg-type]
    store.put_bytes("s3://synthloop/datasets/arith-ratings/winrate.jsonl", b'{"prompt": "1+1"}\n')
    for doc in args.docs:
        api.add(doc)
    # Inputs from outside the loop that the specs name by URI.
    for uri in sorted({u for d in args.docs for u in _uris(d.get("spec"))}):
        store.put_bytes(uri if not uri.endswith("/") else uri + "config.json", b"{}")
    model = os.urandom(1 << 20) * args.model_mib
    gated = {g["metric"] for d in args.docs for g in ((d.get("spec") or {}).get("evaluation") or {}).get("gates", [])}
    passes = 0
    for _ in range(400):
        running = [j for j in api.jobs.values() if not j.get("status")]
        for _ in range(args.passes if running else 1):
            for kind, name in list(api.crs):
                rec.reconcile(kind, NS, name)
                passes += 1
        for job in running:
            play_worker(store, job, model, gated)
            finish(job)
        if not running and all((b.get("status") or {}).get("phase") in {"Succeeded", "Promoted", "Rejected", "Failed"}
                               for b in api.crs.values()):
            break
    shutil.rmtree(tmp, ignore_errors=True)
    return {"downloaded_bytes": backend.get_bytes, "gets": len(backend.gets), "heads": backend.heads,
            "downloaded_by_kind": backend.got, "passes": passes, "jobs": len(api.jobs),
            "phases": {name: (b.get("status") or {}).get("phase") for (_, name), b in api.crs.items()},
            "failed": {name: next((c["message"] for c in (b.get("status") or {}).get("conditions", [])
                                   if c["type"] == "Failed" and c["status"] == "True"), "")
                       for (_, name), b in api.crs.items() if (b.get("status") or {}).get("phase") == "Failed"}}


def _uris(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("uri"), str):
            yield node["uri"]
        for v in node.values():
            yield from _uris(v)
    elif isinstance(node, list):
        for v in node:
            yield from _uris(v)


def loop_docs(rev: str) -> list[dict[str, Any]]:
    """The demo loop's objects as of revision ``rev``."""
    names = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:examples/loop"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    docs = []
    for name in sorted(n for n in names if n.endswith(".yaml")):
        text = subprocess.run(["git", "show", f"{rev}:examples/loop/{name}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        docs += [d for d in yaml.safe_load_all(text) if d and d.get("kind")]
    return docs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="3776847", help="revision of the code to compare with")
    ap.add_argument("--model-mib", type=int, default=64, help="size of each model's weights file")
    ap.add_argument("--passes", type=int, default=5, help="passes on every object while a Job runs")
    ap.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--docs", type=json.loads, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run(args)))
        return 0
    docs = json.dumps(loop_docs(args.baseline))
    wt = Path(tempfile.mkdtemp(prefix="synthloop-baseline-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(wt), args.baseline], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        out: dict[str, Any] = {"baseline": args.baseline, "model_mib": args.model_mib, "passes_per_job": args.passes}
        for label, code in (("baseline", wt), ("current", ROOT)):
            env = {**os.environ, "PYTHONPATH": f"{code / 'operator'}{os.pathsep}{ROOT}"}
            proc = subprocess.run([sys.executable, __file__, "--run", "--model-mib", str(args.model_mib),
                                   "--passes", str(args.passes), "--docs", docs], env=env, capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"{label} run failed:\n{proc.stderr[-4000:]}")
            out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
        out["ratio_bytes"] = round(out["current"]["downloaded_bytes"] / max(1, out["baseline"]["downloaded_bytes"]), 6)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=ROOT, check=False, capture_output=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
