"""Operator overhead at fleet scale, on the local cluster (`synthloop local`) with KWOK DGX nodes.

1. 768 KWOK DGX H100 nodes (with a probe taint only this benchmark tolerates, so a shared
   cluster's other pods never land on them).
2. Baseline: the Indexed Job (and its headless rendezvous Service; `--no-service` leaves it
   out) the operator would build for a 768-node PretrainJob, applied directly with kubectl;
   time from apply until all 768 pods are bound and Running (or already done).
3. The same through the operator: time from `kubectl apply` of the PretrainJob until all its
   pods are bound and Running. The figure is the ratio operator / baseline (aim: <= 1.10),
   measured in the same run, alternating the two `--repeats` times.
4. The operator's resident memory (VmRSS of its process) idle, and with 1,000 SynthRounds
   present (each waiting on a promotion that never comes, so no pods are made).

Usage: python bench/scale.py [--nodes 768] [--rounds 1000] [--repeats 1]. Prints one JSON line.
Needs a running `synthloop local up` cluster (or starts one with no KWOK nodes of its own).

``--steady [--baseline REV]`` measures only the steady state with ``--rounds`` SynthRounds
waiting (no fleet): over a ``--window`` of seconds after every round is WaitingForInputs, the
operator's API requests (the reconciler's and kopf's, counted by bench/opcount.py), its
reconcile passes, CPU-seconds, and RSS at the end; for this code and, in the same run, for the
operator of revision REV (a git worktree), one after the other on the same cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

from synthloop.api.v1alpha1 import API_VERSION
from synthloop.api.v1alpha1.pretrain import PretrainJobSpec
from synthloop.builders.jobs import Owner, Platform, build_job, build_service
from synthloop.builders.names import job_name
from synthloop.builders.profiles import DGX_H100, ProfileSet, Toleration
from synthloop.builders.stages import job_request, pretrain_stages
from synthloop.local.fleet import create_nodes, delete_nodes, kwok_fleet
from synthloop.local.kube import KubeClient, KubeError
from synthloop.local.options import DGX_H100_LABELS

ROOT = Path(__file__).resolve().parents[1]
PROBE = "synthloop.dev/probe"


def say(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait(pred: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    say(f"waiting for {what}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def cluster() -> tuple[Any, bool]:
    from synthloop.local.cluster import running_state, up
    from synthloop.local.options import ClusterOptions
    from synthloop.local.paths import LocalPaths

    paths = LocalPaths.default()
    state = running_state(paths)
    if state is not None:
        return state, False
    # Pods on KWOK nodes stay Running long enough to be counted.
    return up(ClusterOptions(kwok_nodes=0, kwok_cpu_nodes=0, kwok_job_seconds=30.0), paths=paths, build=False), True


def pretrain_spec(nodes: int, profile: str) -> dict[str, Any]:
    return {
        "model": {"preset": "tiny-test"},
        "phases": [{"name": "pretrain", "steps": 10, "blend": [{"source": "english", "weight": 1}]}],
        "resources": {"profile": profile, "nodes": nodes, "gpusPerNode": 8},
        "backoffLimit": 0,
    }


def running_pods(kube: KubeClient, ns: str, selector: str) -> int:
    pods = kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"]
    return sum(1 for p in pods if p["spec"].get("nodeName") and p.get("status", {}).get("phase") in ("Running", "Succeeded"))


def time_until_running(kube: KubeClient, ns: str, selector: str, nodes: int, t0: float, timeout: float) -> float:
    wait(lambda: running_pods(kube, ns, selector) >= nodes, timeout, f"{nodes} pods Running ({selector})", interval=0.2)
    return time.monotonic() - t0


def delete_and_drain(kube: KubeClient, ns: str, path: str, selector: str) -> None:
    """Delete the Job (or, for the operator's run, its owner: the operator would recreate a
    missing Job of an unfinished run) and wait until its pods are gone."""
    kube.delete(path, propagationPolicy="Foreground")
    wait(lambda: not kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=selector)["items"], 600,
         f"pods of {path} gone", interval=1.0)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counts(path: Path) -> dict[str, int]:
    try:
        doc: dict[str, int] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc


def scoped_kubeconfig(kube: KubeClient, env: dict[str, str], ns: str, tmp: Path) -> Path:
    """A ServiceAccount with the operator's ClusterRoles bound in ``ns`` only (RoleBindings, the
    install rbac.yaml recommends for a namespace list), and a kubeconfig holding its token.

    Each operator under test runs as one: an operator that lists beyond its namespace (the
    baseline's resync does) is refused, and cannot touch anything else on a shared cluster.
    """
    rendered = subprocess.run(["kubectl", "kustomize", str(ROOT / "manifests" / "base")], env=env, check=True,
                              capture_output=True, text=True).stdout
    items: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "ServiceAccount",
                                    "metadata": {"name": "bench-operator", "namespace": ns}}]
    for doc in (d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ClusterRole"):
        name = f"{doc['metadata']['name']}-{ns}"
        items += [{**doc, "metadata": {"name": name}},
                  {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name,
                   "namespace": ns}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                   "name": name}, "subjects": [{"kind": "ServiceAccount", "name": "bench-operator", "namespace": ns}]}]
    subprocess.run(["kubectl", "apply", "-f", "-"], input=json.dumps({"apiVersion": "v1", "kind": "List",
                   "items": items}).encode(), env=env, check=True, capture_output=True)
    token = subprocess.run(["kubectl", "create", "token", "bench-operator", "-n", ns, "--duration=2h"], env=env,
                           check=True, capture_output=True, text=True).stdout.strip()
    admin = yaml.safe_load(Path(env["KUBECONFIG"]).read_text())
    cluster = admin["clusters"][0]
    path = tmp / f"{ns}.kubeconfig"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": [cluster],
                                    "users": [{"name": "sa", "user": {"token": token}}],
                                    "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
                                    "current-context": "sa"}))
    return path


def steady(args: argparse.Namespace, state: Any, kube: KubeClient, env: dict[str, str]) -> dict[str, Any]:
    """The steady state of ``--rounds`` waiting SynthRounds, per revision (see the docstring)."""
    probe = uuid.uuid4().hex[:6]
    tmp = Path(tempfile.mkdtemp(prefix="synthloop-bench-steady-"))
    codes: list[tuple[str, Path]] = []
    if args.baseline:
        wt = tmp / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(wt), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        codes.append(("baseline", wt))
    codes.append(("current", ROOT))
    out: dict[str, Any] = {"rounds": args.rounds, "window_seconds": args.window, "baseline_revision": args.baseline}
    try:
        for label, code in codes:
            ns = f"bench-steady-{label}-{probe}"
            kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
            kube.create(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "synthloop-minio"}, "stringData": {
                "accessKey": state.access_key, "secretKey": state.secret_key}})
            wait(lambda ns=ns: kube.get_or_none(f"/api/v1/namespaces/{ns}/serviceaccounts/default"), 60, "default SA")
            docs = [{"apiVersion": API_VERSION, "kind": "SynthRound", "metadata": {"name": f"round-{i:04d}"},
                     "spec": {"generator": {"model": {"promoted": f"never-{probe}"}, "backend": "transformers"},
                              "prompts": {"math": 10}}} for i in range(args.rounds)]
            for start in range(0, len(docs), 200):
                body = {"apiVersion": "v1", "kind": "List", "items": docs[start:start + 200]}
                subprocess.run(["kubectl", "apply", "-n", ns, "-f", "-"], input=json.dumps(body).encode(), env=env,
                               check=True, capture_output=True, timeout=600)
            count_file = tmp / f"{label}-counts.json"
            op_env = {**env, "PYTHONPATH": str(code / "operator"), "SYNTHLOOP_RESYNC_SECONDS": "30",
                      "KUBECONFIG": str(scoped_kubeconfig(kube, env, ns, tmp))}
            with (tmp / f"{label}-operator.log").open("w") as log:
                # Each as its own image installs it: today's without the kubernetes package.
                image = ["--image"] if label == "current" else []
                op = subprocess.Popen([sys.executable, str(ROOT / "bench" / "opcount.py"), *image, str(count_file),
                                       "--", "--liveness-port", "0", "-n", ns], env=op_env, stdout=log,
                                      stderr=subprocess.STDOUT)
            try:
                t0 = time.monotonic()

                def all_waiting(ns: str = ns) -> bool:
                    items = kube.get(f"/apis/synthloop.io/v1alpha1/namespaces/{ns}/synthrounds")["items"]
                    return sum(1 for i in items if (i.get("status") or {}).get("phase") == "WaitingForInputs") >= args.rounds

                wait(all_waiting, args.timeout, f"{label}: {args.rounds} SynthRounds WaitingForInputs", interval=2.0)
                seen = time.monotonic() - t0
                time.sleep(10)
                c0, cpu0, w0 = counts(count_file), cpu_seconds(op.pid), time.monotonic()
                say(f"{label}: steady window of {args.window:.0f}s")
                time.sleep(args.window)
                c1, cpu1, w1 = counts(count_file), cpu_seconds(op.pid), time.monotonic()
                rss = rss_kib(op.pid) / 1024
            finally:
                op.terminate()
                try:
                    op.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    op.kill()
            delta = {k: c1.get(k, 0) - c0.get(k, 0) for k in sorted(set(c0) | set(c1)) if c1.get(k, 0) != c0.get(k, 0)}
            requests = sum(v for k, v in delta.items() if k != "passes")
            passes = delta.get("passes", 0)
            out[label] = {
                "rounds_seen_seconds": round(seen, 1), "window_seconds": round(w1 - w0, 1),
                "passes": passes, "api_requests": requests, "requests_by_kind": delta,
                "api_requests_per_pass": round(requests / passes, 3) if passes else None,
                "api_requests_per_second": round(requests / (w1 - w0), 2),
                "cpu_seconds": round(cpu1 - cpu0, 2), "rss_mib": round(rss, 1),
            }
            say(f"{label}: {json.dumps(out[label])}")
            try:
                kube.delete(f"/api/v1/namespaces/{ns}")
            except KubeError:
                pass
            subprocess.run(["kubectl", "delete", "clusterrole", f"synthloop-operator-{ns}",
                            f"synthloop-operator-credentials-{ns}"], env=env, check=False, capture_output=True)
    finally:
        if args.baseline:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "baseline")], cwd=ROOT, check=False,
                           capture_output=True)
    if "baseline" in out:
        b, c = out["baseline"], out["current"]
        out["cpu_ratio"] = round(c["cpu_seconds"] / b["cpu_seconds"], 3) if b["cpu_seconds"] else None
        out["requests_ratio"] = round(c["api_requests"] / b["api_requests"], 4) if b["api_requests"] else None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=768)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--no-service", dest="with_service", action="store_false",
                    help="apply the direct Job without the headless Service the operator adds")
    ap.add_argument("--steady", action="store_true", help="only the steady state with --rounds waiting rounds")
    ap.add_argument("--baseline", default="", help="with --steady: also measure the operator of this revision")
    ap.add_argument("--window", type=float, default=120.0, help="with --steady: seconds of steady state measured")
    args = ap.parse_args(argv)
    # Clean up (nodes, namespace, operator) when stopped by a timeout as well.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    state, started = cluster()
    kube = KubeClient.from_kubeconfig(state.kubeconfig)
    env = {**os.environ, "KUBECONFIG": str(state.kubeconfig), "SYNTHLOOP_S3_ENDPOINT": state.s3_endpoint,
           "AWS_ACCESS_KEY_ID": state.access_key, "AWS_SECRET_ACCESS_KEY": state.secret_key}
    if args.steady:
        subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds")], env=env,
                       check=True, capture_output=True)
        print(json.dumps(steady(args, state, kube, env)), flush=True)
        return 0
    probe = uuid.uuid4().hex[:6]
    ns = f"bench-scale-{probe}"
    taint = {"key": PROBE, "value": probe, "effect": "NoSchedule"}
    fleet = kwok_fleet(dgx=args.nodes, cpu=0, gpu_labels=DGX_H100_LABELS, prefix=f"bench-{probe}",
                       extra_labels={PROBE: probe}, extra_taints=[taint])
    names = [n["metadata"]["name"] for n in fleet]
    # This cluster's dgx-h100 profile: the DGX labels plus the probe label and taint.
    profile = DGX_H100.model_copy(update={
        "node_selector": {**DGX_H100.node_selector, PROBE: probe},
        "tolerations": [*DGX_H100.tolerations, Toleration(key=PROBE, operator="Equal", value=probe, effect="NoSchedule")],
    })
    profiles = ProfileSet(default="dgx-h100", profiles={"dgx-h100": profile})
    tmp = Path(tempfile.mkdtemp(prefix="synthloop-bench-"))
    (tmp / "profiles.yaml").write_text(yaml.safe_dump(profiles.model_dump(by_alias=True, exclude_none=True)))
    env["SYNTHLOOP_PROFILES"] = str(tmp / "profiles.yaml")
    env["SYNTHLOOP_RESYNC_SECONDS"] = "60"
    log = (tmp / "operator.log").open("w")
    op: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {"nodes": args.nodes, "rounds": args.rounds, "direct_with_service": args.with_service}
    try:
        subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds")], env=env, check=True,
                       capture_output=True)
        kube.create("/api/v1/namespaces", {"metadata": {"name": ns}})
        kube.create(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "synthloop-minio"}, "stringData": {
            "accessKey": state.access_key, "secretKey": state.secret_key}})
        wait(lambda: kube.get_or_none(f"/api/v1/namespaces/{ns}/serviceaccounts/default"), 60, "default SA")
        t0 = time.monotonic()
        create_nodes(kube, fleet)
        wait(lambda: sum(1 for n in kube.get("/api/v1/nodes", labelSelector=f"{PROBE}={probe}")["items"]
                         if any(c["type"] == "Ready" and c["status"] == "True"
                                for c in n.get("status", {}).get("conditions") or [])) >= args.nodes,
             args.timeout, f"{args.nodes} nodes Ready", interval=1.0)
        result["register_seconds"] = round(time.monotonic() - t0, 2)

        op = subprocess.Popen(["synthloop", "operator", "--liveness-port", "0", "-n", ns], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
        time.sleep(5)
        result["operator_rss_idle_mib"] = round(rss_kib(op.pid) / 1024, 1)
        base_times, op_times = [], []
        spec = PretrainJobSpec.model_validate(pretrain_spec(args.nodes, "dgx-h100"))
        for rep in range(args.repeats):
            # Baseline: the operator's own Job manifest, applied directly.
            owner = Owner(kind="PretrainJob", name=f"direct-{rep}", namespace=ns, uid=str(uuid.uuid4()))
            (plan,) = pretrain_stages(spec, prefix=f"s3://synthloop/{ns}/direct/", inputs={})
            name = job_name(owner.name, plan.stage)
            req = job_request(plan, owner=owner, job_name=name, spec_hash="bench", image="bench:0",
                              backoff_limit=0, resources=spec.resources)
            job = build_job(owner, Platform(image="bench:0", s3_endpoint=state.s3_endpoint), profile, req)
            job["metadata"].pop("ownerReferences")  # no owner object exists for the direct Job
            # The same workload includes its rendezvous Service: its endpoints (768 pods) cost the
            # control plane as much with or without the operator.
            svc = build_service(owner, req)
            svc["metadata"].pop("ownerReferences")
            direct = {"apiVersion": "v1", "kind": "List", "items": [svc, job] if args.with_service else [job]}
            t1 = time.monotonic()  # applied with kubectl too, so both sides pay its start-up
            subprocess.run(["kubectl", "apply", "-n", ns, "-f", "-"], input=json.dumps(direct).encode(), env=env,
                           check=True, capture_output=True)
            base_times.append(time_until_running(kube, ns, f"synthloop.io/job={name}", args.nodes, t1, args.timeout))
            delete_and_drain(kube, ns, f"/apis/batch/v1/namespaces/{ns}/jobs/{name}", f"synthloop.io/job={name}")

            cr = {"apiVersion": API_VERSION, "kind": "PretrainJob", "metadata": {"name": f"via-op-{rep}"},
                  "spec": pretrain_spec(args.nodes, "dgx-h100")}
            t2 = time.monotonic()
            subprocess.run(["kubectl", "apply", "-n", ns, "-f", "-"], input=json.dumps(cr).encode(), env=env,
                           check=True, capture_output=True)
            jname = job_name(f"via-op-{rep}", "pretrain")
            op_times.append(time_until_running(kube, ns, f"synthloop.io/job={jname}", args.nodes, t2, args.timeout))
            delete_and_drain(kube, ns, f"/apis/synthloop.io/v1alpha1/namespaces/{ns}/pretrainjobs/via-op-{rep}",
                             f"synthloop.io/job={jname}")
        result["direct_seconds"] = [round(t, 2) for t in base_times]
        result["operator_seconds"] = [round(t, 2) for t in op_times]
        result["ratio"] = round(sum(op_times) / sum(base_times), 3)

        # Memory with many objects: SynthRounds waiting for a promotion that never comes.
        docs = [{"apiVersion": API_VERSION, "kind": "SynthRound", "metadata": {"name": f"round-{i:04d}"},
                 "spec": {"generator": {"model": {"promoted": f"never-{probe}"}, "backend": "transformers"},
                          "prompts": {"math": 10}}} for i in range(args.rounds)]
        t3 = time.monotonic()
        for start in range(0, len(docs), 200):
            body = {"apiVersion": "v1", "kind": "List", "items": docs[start:start + 200]}
            subprocess.run(["kubectl", "apply", "-n", ns, "-f", "-"], input=json.dumps(body).encode(), env=env,
                           check=True, capture_output=True, timeout=600)

        def all_waiting() -> bool:
            items = kube.get(f"/apis/synthloop.io/v1alpha1/namespaces/{ns}/synthrounds")["items"]
            return sum(1 for i in items if (i.get("status") or {}).get("phase") == "WaitingForInputs") >= args.rounds

        wait(all_waiting, args.timeout, f"{args.rounds} SynthRounds WaitingForInputs", interval=2.0)
        result["rounds_seen_seconds"] = round(time.monotonic() - t3, 1)
        time.sleep(5)
        result["operator_rss_with_rounds_mib"] = round(rss_kib(op.pid) / 1024, 1)
    finally:
        if op is not None:
            op.terminate()
            try:
                op.wait(timeout=20)
            except subprocess.TimeoutExpired:
                op.kill()
        log.close()
        try:
            kube.delete(f"/api/v1/namespaces/{ns}")
        except KubeError:
            pass
        delete_nodes(kube, names)
        if started:
            from synthloop.local.cluster import down

            down(progress=lambda _m: None)
    print(json.dumps(result), flush=True)
    print(f"operator log: {tmp / 'operator.log'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
