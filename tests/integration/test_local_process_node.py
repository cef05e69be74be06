"""Pods on the process nodes really run: Indexed Jobs writing to MinIO, status, deletion, logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from minio import Minio

from synthloop.local.paths import LocalPaths
from synthloop.local.scaleprobe import gpu_toleration
from synthloop.local.supervisor import ProcessRecord, is_alive
from synthloop.local.testing import LocalCluster, wait_for

PROCESS_NODE = {"synthloop.dev/node-kind": "process"}


pytestmark = pytest.mark.local_only  # process nodes exist only on a `synthloop local` cluster


def _pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never", "nodeSelector": {"kubernetes.io/hostname": "local-cpu-0"},
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "main", "image": "synthloop/operator:dev",
                            "command": ["python", "-c", script]}],
            **spec,
        },
    }


def _get_pod(lc: LocalCluster, ns: str, name: str) -> dict[str, Any] | None:
    return lc.kube.get_or_none(f"/api/v1/namespaces/{ns}/pods/{name}")


def _phase(lc: LocalCluster, ns: str, name: str) -> str | None:
    pod = _get_pod(lc, ns, name)
    return None if pod is None else (pod.get("status") or {}).get("phase")


def _container_record(ns: str, pod: dict[str, Any], container: str = "main") -> ProcessRecord:
    uid = pod["metadata"]["uid"]
    path = LocalPaths.default().pods_dir / f"{ns}_{pod['metadata']['name']}_{uid}" / "pids" / f"{container}.json"
    data = wait_for(lambda: path.exists() and path.read_text(), timeout=30, what=f"pid file {path}")
    return ProcessRecord.from_json(json.loads(data))


JOB_SCRIPT = """
import os, io
from minio import Minio
idx = os.environ["JOB_COMPLETION_INDEX"]
scratch = os.environ["SCRATCH"]
with open(os.path.join(scratch, "part.txt"), "w") as f:
    f.write(f"index={idx} node={os.environ['NODE']}")
data = open(os.path.join(scratch, "part.txt"), "rb").read()
mc = Minio(os.environ["S3_ENDPOINT"], access_key=os.environ["AWS_ACCESS_KEY_ID"],
           secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], secure=False)
mc.put_object(os.environ["BUCKET"], f"{os.environ['PREFIX']}/part-{idx}.txt", io.BytesIO(data), len(data))
print(f"wrote part {idx}", flush=True)
"""


def test_indexed_job_runs_real_processes_that_write_to_minio(
    local_cluster: LocalCluster, namespace: str
) -> None:
    kube = local_cluster.kube
    kube.create(f"/api/v1/namespaces/{namespace}/secrets", {
        "metadata": {"name": "s3"},
        "stringData": {"accessKey": local_cluster.access_key, "secretKey": local_cluster.secret_key},
    })
    prefix = f"tests/{namespace}"
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "writer"},
        "spec": {
            "completionMode": "Indexed", "completions": 3, "parallelism": 3, "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"kubernetes.io/hostname": "local-dgx-0"},
                "tolerations": [gpu_toleration()],
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "containers": [{
                    "name": "worker", "image": "synthloop/synth:dev",
                    "command": ["python", "-c", JOB_SCRIPT],
                    "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                    "env": [
                        {"name": "SCRATCH", "value": "/scratch"},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "S3_ENDPOINT", "value": local_cluster.s3_endpoint},
                        {"name": "BUCKET", "value": local_cluster.bucket},
                        {"name": "PREFIX", "value": prefix},
                        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "accessKey"}}},
                        {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secretKey"}}},
                    ],
                }],
            }},
        },
    }
    kube.create(f"/apis/batch/v1/namespaces/{namespace}/jobs", job)

    def done() -> dict[str, Any] | None:
        status = kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/writer").get("status") or {}
        for cond in status.get("conditions") or []:
            if cond["type"] == "Failed" and cond["status"] == "True":
                pytest.fail(f"job failed: {cond}; pods: {_pods_summary(local_cluster, namespace)}")
            if cond["type"] == "Complete" and cond["status"] == "True":
                return status
        return None

    status = wait_for(done, timeout=180, what="Job writer Complete")
    assert status["succeeded"] == 3
    mc = Minio(local_cluster.s3_endpoint, access_key=local_cluster.access_key,
               secret_key=local_cluster.secret_key, secure=False)
    bodies = sorted(
        mc.get_object(local_cluster.bucket, f"{prefix}/part-{i}.txt").read().decode() for i in range(3)
    )
    assert bodies == [f"index={i} node=local-dgx-0" for i in range(3)]

    pods = kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector="job-name=writer")["items"]
    pod = pods[0]
    cs = pod["status"]["containerStatuses"][0]
    assert pod["status"]["phase"] == "Succeeded" and pod["status"]["startTime"]
    assert cs["state"]["terminated"]["exitCode"] == 0 and cs["image"] == "synthloop/synth:dev"
    idx = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
    name = pod["metadata"]["name"]
    out = subprocess.run(
        [sys.executable, "-m", "synthloop.cli", "local", "logs", name, "-n", namespace],
        capture_output=True, text=True, check=True,
    ).stdout
    assert f"wrote part {idx}" in out
    # kubectl logs goes apiserver -> the agent's kubelet endpoint
    assert f"wrote part {idx}" in local_cluster.kubectl("logs", "-n", namespace, name).stdout


def _pods_summary(lc: LocalCluster, ns: str) -> str:
    pods = lc.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"]
    return json.dumps([{p["metadata"]["name"]: p.get("status")} for p in pods])[:3000]


def test_status_reports_running_then_exit_codes(local_cluster: LocalCluster, namespace: str) -> None:
    kube = local_cluster.kube
    pods = f"/api/v1/namespaces/{namespace}/pods"
    kube.create(pods, _pod("fails", "import time, sys; time.sleep(3); sys.exit(3)"))
    kube.create(pods, _pod("works", "print('ok')"))
    running = wait_for(lambda: (p := _get_pod(local_cluster, namespace, "fails")) and
                       p["status"].get("phase") == "Running" and p, timeout=60, what="Running")
    assert running["status"]["startTime"]
    assert "running" in running["status"]["containerStatuses"][0]["state"]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in running["status"]["conditions"])
    wait_for(lambda: _phase(local_cluster, namespace, "fails") == "Failed", timeout=60, what="Failed")
    failed = _get_pod(local_cluster, namespace, "fails")
    assert failed is not None
    term = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 3 and term["reason"] == "Error"
    wait_for(lambda: _phase(local_cluster, namespace, "works") == "Succeeded", timeout=60, what="Succeeded")


def test_init_containers_run_first_and_a_missing_command_fails_clearly(
    local_cluster: LocalCluster, namespace: str
) -> None:
    kube = local_cluster.kube
    pods = f"/api/v1/namespaces/{namespace}/pods"
    spec = _pod("ordered", "import os; print(open(os.environ['SYNTHLOOP_VOLUME_WORK'] + '/init').read())")
    spec["spec"]["volumes"] = [{"name": "work", "emptyDir": {}}]
    spec["spec"]["initContainers"] = [{
        "name": "prepare", "image": "busybox",
        "command": ["sh", "-c", "echo from-init > /scratch/init"],
        "volumeMounts": [{"name": "work", "mountPath": "/scratch"}],
    }]
    kube.create(pods, spec)
    no_cmd = _pod("nocmd", "")
    del no_cmd["spec"]["containers"][0]["command"]
    kube.create(pods, no_cmd)
    wait_for(lambda: _phase(local_cluster, namespace, "ordered") == "Succeeded", timeout=60,
             what="ordered Succeeded")
    logs = local_cluster.kubectl("logs", "-n", namespace, "ordered", "-c", "main").stdout
    assert "from-init" in logs
    wait_for(lambda: _phase(local_cluster, namespace, "nocmd") == "Failed", timeout=60, what="nocmd Failed")
    pod = _get_pod(local_cluster, namespace, "nocmd")
    assert pod is not None and "no command" in pod["status"]["message"]


def test_deleting_a_running_pod_ends_its_process(local_cluster: LocalCluster, namespace: str) -> None:
    kube = local_cluster.kube
    pods = f"/api/v1/namespaces/{namespace}/pods"
    kube.create(pods, _pod("sleeper", "import time; time.sleep(600)"))
    stubborn_script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    )
    kube.create(pods, _pod("stubborn", stubborn_script, terminationGracePeriodSeconds=2))
    wait_for(lambda: _phase(local_cluster, namespace, "sleeper") == "Running", timeout=60, what="Running")
    wait_for(lambda: _phase(local_cluster, namespace, "stubborn") == "Running", timeout=60, what="Running")
    sleeper = _container_record(namespace, _get_pod(local_cluster, namespace, "sleeper") or {})
    stubborn = _container_record(namespace, _get_pod(local_cluster, namespace, "stubborn") or {})
    assert is_alive(sleeper) and is_alive(stubborn)

    t0 = time.monotonic()
    kube.delete(f"{pods}/sleeper")
    kube.delete(f"{pods}/stubborn")
    wait_for(lambda: not is_alive(sleeper), timeout=15, what="sleeper process gone")
    wait_for(lambda: _get_pod(local_cluster, namespace, "sleeper") is None, timeout=15,
             what="sleeper pod object gone")
    wait_for(lambda: not is_alive(stubborn), timeout=15, what="SIGTERM-ignoring process killed")
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.5, "the grace period was not honoured before SIGKILL"
    wait_for(lambda: _get_pod(local_cluster, namespace, "stubborn") is None, timeout=15,
             what="stubborn pod object gone")


def test_service_account_pods_get_a_kubeconfig_for_that_account(
    local_cluster: LocalCluster, namespace: str
) -> None:
    kube = local_cluster.kube
    kube.create(f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": "runner"}})
    kube.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles", {
        "metadata": {"name": "read-pods"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    })
    kube.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings", {
        "metadata": {"name": "runner-read-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": namespace}],
    })
    script = (
        "import subprocess\n"
        "print(subprocess.run(['kubectl', 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'],"
        " capture_output=True, text=True, check=True).stdout)\n"
        "print('pods:', subprocess.run(['kubectl', 'get', 'pods', '-o', 'name'], capture_output=True,"
        " text=True, check=True).stdout.strip())\n"
        "r = subprocess.run(['kubectl', 'get', 'secrets'], capture_output=True, text=True)\n"
        "print('secrets-denied' if r.returncode != 0 and 'forbidden' in r.stderr else 'secrets-allowed')\n"
    )
    kube.create(f"/api/v1/namespaces/{namespace}/pods", _pod("whoami", script, serviceAccountName="runner"))
    wait_for(lambda: _phase(local_cluster, namespace, "whoami") in ("Succeeded", "Failed"), timeout=60,
             what="whoami finished")
    logs = local_cluster.kubectl("logs", "-n", namespace, "whoami").stdout
    assert f"system:serviceaccount:{namespace}:runner" in logs
    assert "pod/whoami" in logs and "secrets-denied" in logs
    assert _phase(local_cluster, namespace, "whoami") == "Succeeded"


def test_deployment_pods_run_and_restart_on_crash(local_cluster: LocalCluster, namespace: str) -> None:
    """Controllers (like the operator's Deployment) run on local-cpu-0 with restartPolicy Always."""
    kube = local_cluster.kube
    kube.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", {
        "metadata": {"name": "ctl"},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "ctl"}},
            "template": {
                "metadata": {"labels": {"app": "ctl"}},
                "spec": {"nodeSelector": {"kubernetes.io/hostname": "local-cpu-0"},
                         "terminationGracePeriodSeconds": 2,
                         "containers": [{"name": "ctl", "image": "synthloop/operator:dev",
                                         "command": ["python", "-c", "import time; time.sleep(600)"]}]},
            },
        },
    })
    kube.create(f"/api/v1/namespaces/{namespace}/pods", _pod(
        "crasher", "import sys; print('crash', flush=True); sys.exit(1)", restartPolicy="Always"))

    def available() -> bool:
        dep = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/ctl")
        return bool((dep.get("status") or {}).get("availableReplicas") == 1)

    wait_for(available, timeout=60, what="Deployment ctl available")

    def restarted() -> dict[str, Any] | None:
        pod = _get_pod(local_cluster, namespace, "crasher")
        statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 2 else None

    cs = wait_for(restarted, timeout=60, what="crasher restarted twice")
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert _phase(local_cluster, namespace, "crasher") == "Running"
    assert "crash" in local_cluster.kubectl("logs", "-n", namespace, "crasher", "--previous").stdout


def test_kubectl_logs_follow_streams_until_the_container_ends(
    local_cluster: LocalCluster, namespace: str
) -> None:
    kube = local_cluster.kube
    script = "import time\nfor i in range(3):\n    print(f'line {i}', flush=True)\n    time.sleep(1)\n"
    kube.create(f"/api/v1/namespaces/{namespace}/pods", _pod("talker", script))
    wait_for(lambda: _phase(local_cluster, namespace, "talker") in ("Running", "Succeeded"),
             timeout=60, what="talker started")
    t0 = time.monotonic()
    out = local_cluster.kubectl("logs", "-f", "-n", namespace, "talker", timeout=60).stdout
    assert out.splitlines() == ["line 0", "line 1", "line 2"]
    assert time.monotonic() - t0 < 30


def test_missing_secret_waits_like_a_kubelet_then_runs(local_cluster: LocalCluster, namespace: str) -> None:
    kube = local_cluster.kube
    pod = _pod("late", "import os; print('token', os.environ['TOKEN'])")
    pod["spec"]["containers"][0]["env"] = [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    kube.create(f"/api/v1/namespaces/{namespace}/pods", pod)

    def config_error() -> bool:
        p = _get_pod(local_cluster, namespace, "late") or {}
        statuses = (p.get("status") or {}).get("containerStatuses") or []
        return bool(statuses) and statuses[0]["state"].get("waiting", {}).get("reason") == "CreateContainerConfigError"

    wait_for(config_error, timeout=30, what="CreateContainerConfigError while the Secret is missing")
    assert _phase(local_cluster, namespace, "late") == "Pending"
    kube.create(f"/api/v1/namespaces/{namespace}/secrets",
                {"metadata": {"name": "later"}, "stringData": {"token": "s3cret"}})
    wait_for(lambda: _phase(local_cluster, namespace, "late") == "Succeeded", timeout=30,
             what="late Succeeded once the Secret exists")
    assert "token s3cret" in local_cluster.kubectl("logs", "-n", namespace, "late").stdout
