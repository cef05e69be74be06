"""`make demo` / `python -m synthloop.demo`: run the weak-to-strong loop and report it.

Steps: start (or reuse) the embedded cluster without KWOK nodes, so every pod really runs on a
process node; install the CRDs; seed the outside-the-loop datasets; start the operator with a
profile that pins GPU work to the process-backed DGX node; apply ``examples/loop/`` all at once;
follow it; print a summary and write the HTML report.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from synthloop.demo.follow import follow, held_out_table, summary_table
from synthloop.demo.watchdog import DemoFailure, LoopEnd, OperatorWatch
from synthloop.report.cli import fetch_objects, write_report
from synthloop.report.model import build_report

ROOT = Path(__file__).resolve().parents[3]
NAMESPACE = "synthloop-demo"
SECRET = "synthloop-minio"


def sh(*cmd: str, env: dict[str, str], check: bool = True, input: str | None = None) -> str:
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, input=input, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def local_env() -> dict[str, str]:
    """The environment `synthloop local env` describes (KUBECONFIG, PATH, MinIO settings)."""
    out = sh(sys.executable, "-m", "synthloop.cli", "local", "env", env=dict(os.environ))
    env = dict(os.environ)
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = os.path.expandvars(value.strip().strip("'\""))
    return env


def demo_profiles(*, node: str) -> dict[str, Any]:
    """The DGX profile, pinned to the process-backed node so every pod really runs."""
    return {
        "default": "dgx-h100",
        "profiles": {
            "dgx-h100": {
                "description": "DGX H100 labels, pinned to the process-backed node of synthloop local",
                "nodeSelector": {
                    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
                    "nvidia.com/gpu.count": "8",
                    "kubernetes.io/hostname": node,
                },
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "gpusPerNode": 8,
                "shmSize": "1Gi",
                # the synth merge (no GPU) must really run too: on the process-backed CPU node
                "noGpu": {"nodeSelector": {"kubernetes.io/hostname": "local-cpu-0"}},
                "env": {"OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"},
            }
        },
    }


def prepare_namespace(env: dict[str, str], namespace: str) -> None:
    """Create the namespace and copy the MinIO credentials Secret the worker pods reference."""
    manifest = sh("kubectl", "create", "namespace", namespace, "--dry-run=client", "-o", "yaml", env=env)
    sh("kubectl", "apply", "-f", "-", env=env, input=manifest)
    secret = yaml.safe_load(sh("kubectl", "get", "secret", SECRET, "-n", "synthloop-system", "-o", "yaml", env=env))
    copy = {"apiVersion": "v1", "kind": "Secret", "type": secret.get("type", "Opaque"),
            "metadata": {"name": SECRET, "namespace": namespace}, "data": secret["data"]}
    sh("kubectl", "apply", "-f", "-", env=env, input=yaml.safe_dump(copy))


def run_loop(
    env: dict[str, str], *, namespace: str, loop_dir: Path, timeout: float, home: Path,
    echo: Any = print, stall: float = 600.0,
) -> list[dict[str, Any]]:
    """Install CRDs, seed data, run the operator, apply the loop and follow it to its end.

    Raises :class:`DemoFailure` as soon as the loop cannot finish (see ``demo.watchdog``).
    """
    # --force-conflicts: CRDs a plain `kubectl apply` (the README's by-hand steps, a test) installed
    # on a kept-running cluster are the same files; the demo takes their fields over instead of failing
    sh("kubectl", "apply", "--server-side", "--force-conflicts", "--field-manager=synthloop-demo", "-k",
       str(ROOT / "crds"), env=env)
    sh("kubectl", "wait", "--for=condition=Established", "--timeout=60s",
       *[f"crd/{p}.synthloop.io" for p in ("pretrainjobs", "synthrounds", "rewardtrains", "alignjobs")], env=env)
    prepare_namespace(env, namespace)
    from synthloop.artifacts.store import open_store
    from synthloop.demo.seed import seed_datasets

    bucket = env.get("SYNTHLOOP_BUCKET") or env.get("SYNTHLOOP_S3_BUCKET") or "synthloop"
    uris = seed_datasets(open_store(env=env), bucket=bucket)
    echo(f"   seeded {', '.join(uris.values())}")

    profiles = home / "local" / f"profiles-{namespace}.yaml"
    profiles.parent.mkdir(parents=True, exist_ok=True)
    profiles.write_text(yaml.safe_dump(demo_profiles(node="local-dgx-0"), sort_keys=False))
    op_env = {**env, "SYNTHLOOP_PROFILES": str(profiles), "SYNTHLOOP_NAMESPACES": namespace,
              "SYNTHLOOP_BUCKET": bucket}
    log_path = home / "local" / "logs" / f"operator-{namespace}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        operator = subprocess.Popen([sys.executable, "-m", "synthloop.cli", "operator", "--liveness-port", "0"],
                                    env=op_env, stdout=log, stderr=subprocess.STDOUT)
    watch = OperatorWatch(operator, log_path, offset=offset)
    try:
        echo(f"== applying {loop_dir} to namespace {namespace} (operator log: {log_path})")
        sh("kubectl", "apply", "-n", namespace, "-f", str(loop_dir), env=env)
        return follow(lambda: fetch_objects(namespace, env=env), done=LoopEnd(watch=watch, stall=stall),
                      timeout=timeout, echo=echo)
    finally:
        operator.terminate()
        try:
            operator.wait(timeout=20)
        except subprocess.TimeoutExpired:
            operator.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthloop.demo", description=__doc__)
    parser.add_argument("--loop", default=str(ROOT / "examples" / "loop"), help="folder of CRs to apply")
    parser.add_argument("--namespace", default=NAMESPACE)
    parser.add_argument("--out", default="report", help="where the HTML report goes")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the loop")
    parser.add_argument("--stall", type=float, default=600.0,
                        help="stop when no run changed for this many seconds while some are unfinished")
    args = parser.parse_args(argv)
    started = time.monotonic()
    # a SIGTERM (CI, `timeout`) unwinds like Ctrl-C, so the operator started here is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print("== embedded cluster (synthloop local)", flush=True)
    status = subprocess.run([sys.executable, "-m", "synthloop.cli", "local", "status"], capture_output=True, check=False)
    if status.returncode != 0:
        subprocess.run([sys.executable, "-m", "synthloop.cli", "local", "up", "--kwok-nodes", "0", "--kwok-cpu-nodes", "0"], check=True)
    env = local_env()
    home = Path(env.get("SYNTHLOOP_HOME", Path.home() / ".synthloop"))
    try:
        objects = run_loop(env, namespace=args.namespace, loop_dir=Path(args.loop), timeout=args.timeout,
                           home=home, stall=args.stall)
    except (DemoFailure, TimeoutError) as exc:
        print(f"\n== the demo stopped after {time.monotonic() - started:.0f}s: {exc}", file=sys.stderr, flush=True)
        return 1

    print("\n== summary")
    print(summary_table(objects))
    report = build_report(args.namespace, objects)
    held = held_out_table(report)
    if held:
        print(f"\n== held-out verifier metrics (greedy answers, ± standard error)\n{held}")
    index = write_report(report, Path(args.out))
    print(f"\nreport: {index}   (wall time {time.monotonic() - started:.0f}s)")
    failed = [o for o in objects if (o.get("status") or {}).get("phase") == "Failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
