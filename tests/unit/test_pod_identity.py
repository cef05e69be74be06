"""The pods' user and the images' user are one uid, and HOME and every cache belong to it.

Reads the Dockerfiles (no Docker here) and the builders: a pod that runs as another uid than
the image's user cannot write HOME, HF_HOME, TORCH_EXTENSIONS_DIR or VLLM_CACHE_ROOT.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from synthloop.api.v1alpha1.common import Resources
from synthloop.api.worker import WorkerConfig
from synthloop.builders.jobs import WORKER_UID, JobRequest, Owner, Platform, build_job
from synthloop.builders.profiles import BUILTIN

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
WORKER_IMAGES = ("trainer", "synth")
CACHE_VARS = ("HF_HOME", "TORCH_EXTENSIONS_DIR", "VLLM_CACHE_ROOT", "XDG_CACHE_HOME")


def _dockerfile(image: str) -> str:
    text = (ROOT / "images" / image / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("#")]
    return re.sub(r"\\\n", " ", "\n".join(lines))


def _env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for m in re.finditer(r"^ENV\s+(.+)$", text, flags=re.MULTILINE):
        for key, value in re.findall(r"([A-Z_][A-Z0-9_]*)=(\S+)", m.group(1)):
            env[key] = value
    return env


@pytest.mark.parametrize("image", WORKER_IMAGES)
def test_the_image_user_is_the_pod_user_and_owns_home_and_caches(image: str) -> None:
    text = _dockerfile(image)
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", text, flags=re.MULTILINE)
    assert users, f"{image}: no numeric USER uid:gid"
    assert users[-1] == (str(WORKER_UID), str(WORKER_UID)), f"{image}: USER {users[-1]} != pods' {WORKER_UID}"
    created = re.search(r"useradd[^&\n]*--uid (\d+)[^&\n]*--home-dir (\S+)[^&\n]*--create-home", text)
    assert created, f"{image}: no useradd --uid ... --home-dir ... --create-home"
    assert int(created.group(1)) == WORKER_UID
    home = created.group(2)
    env = _env(text)
    assert env.get("HOME") == home, f"{image}: HOME is not the created user's home {home}"
    caches = {k: v for k, v in env.items() if k in CACHE_VARS}
    assert "HF_HOME" in caches
    for key, path in caches.items():
        assert path.startswith(home + "/"), f"{image}: {key}={path} is outside the user's HOME {home}"


def test_every_worker_pod_runs_as_that_uid() -> None:
    owner = Owner(kind="PretrainJob", name="r", namespace="ns", uid="u")
    platform = Platform(image="i", s3_endpoint="minio:9000")
    for task, gpus in (("pretrain", 8), ("synth", 8), ("synth-merge", 0)):
        req = JobRequest(job_name=f"r-{task}", stage=task, gpus_per_pod=gpus, resources=Resources(),
                         config=WorkerConfig(task=task, output="s3://b/p/"))
        pod = build_job(owner, platform, BUILTIN.get(None), req)["spec"]["template"]["spec"]
        sc = pod["securityContext"]
        assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"], sc["runAsNonRoot"]) == (
            WORKER_UID, WORKER_UID, WORKER_UID, True)
