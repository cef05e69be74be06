"""The weak-to-strong loop end to end on the real local cluster, at CI size.

Asserts what a person would check: the lineage is intact (iteration 2 generated with exactly the
model promoted as interm-1), every run's manifest checks out against MinIO, re-applying the folder
changes nothing, and the report is produced.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from synthloop.artifacts.manifest import verify_manifest
from synthloop.artifacts.promotion import read_promotion
from synthloop.artifacts.store import open_store
from synthloop.demo.__main__ import run_loop
from synthloop.report.cli import write_report
from synthloop.report.model import build_report

pytestmark = [pytest.mark.e2e, pytest.mark.local_only]  # the demo pins its pods to local-dgx-0
ROOT = Path(__file__).resolve().parents[2]
LOOP = ROOT / "examples" / "loop"


def _by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects}


def _jobs(env: dict[str, str], namespace: str) -> list[str]:
    out = subprocess.run(["kubectl", "get", "jobs", "-n", namespace, "-o", "json"], env=env,
                         check=True, capture_output=True, text=True).stdout
    return sorted(j["metadata"]["uid"] for j in json.loads(out)["items"])


def _versions(env: dict[str, str], namespace: str) -> dict[str, tuple[str, int]]:
    """name -> (resourceVersion, generation) of every synthloop object in the namespace."""
    out = subprocess.run(["kubectl", "get", "synthloop", "-n", namespace, "-o", "json"], env=env,
                         check=True, capture_output=True, text=True).stdout
    return {f"{o['kind']}/{o['metadata']['name']}": (o["metadata"]["resourceVersion"], o["metadata"]["generation"])
            for o in json.loads(out)["items"]}


@pytest.mark.timeout(3000)  # the loop's own limit (2400 s) decides, not pytest's default
def test_weak_to_strong_loop(local_cluster: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = local_cluster.env()
    namespace = f"e2e-loop-{uuid.uuid4().hex[:6]}"  # a run of its own, even on a cluster kept running
    request.addfinalizer(lambda: subprocess.run(["kubectl", "delete", "namespace", namespace, "--wait=false"],
                                                env=env, capture_output=True, check=False))
    objects = run_loop(env, namespace=namespace, loop_dir=LOOP, timeout=2400,
                       home=Path(env.get("SYNTHLOOP_HOME", tmp_path)))
    runs = _by_name(objects)
    phases = {name: (o.get("status") or {}).get("phase") for name, o in runs.items()}
    assert "Failed" not in phases.values(), phases
    assert phases["align-1"] in {"Promoted", "Rejected"}, phases

    store = open_store(env=env)
    bucket = env.get("SYNTHLOOP_BUCKET", "synthloop")
    # Every finished run's manifests check out (every listed output's sha256 and size), and
    # every single-file output exists with the sha256 its status claims.
    for name, obj in runs.items():
        status = obj.get("status") or {}
        if status.get("phase") not in {"Succeeded", "Promoted", "Rejected"}:
            continue
        outputs = status.get("outputs") or []
        manifests = [o for o in outputs if o["name"].startswith("manifest:")]
        assert manifests, f"{name} finished without a verified manifest in its status"
        for ref in manifests:
            verify_manifest(store, ref["uri"].rsplit("/", 1)[0])
        for out in outputs:
            if out.get("sha256") and not out["uri"].endswith("/") and not out["name"].startswith("manifest:"):
                assert store.sha256(out["uri"]) == out["sha256"], (name, out)

    if phases["align-1"] == "Promoted":
        pointer = read_promotion(store, bucket=bucket, namespace=namespace, name="interm-1")
        assert pointer is not None
        manifest_prefix = pointer.manifest_uri.rsplit("/", 1)[0]
        verify_manifest(store, manifest_prefix)
        # Lineage: round-2 generated with exactly the model promoted as interm-1.
        inputs = {i["name"]: i for i in runs["round-2"]["status"].get("inputs", [])}
        assert inputs["model"]["uri"].rstrip("/") == pointer.model_uri.rstrip("/")
        if pointer.model_sha256:
            assert inputs["model"]["sha256"] == pointer.model_sha256
        assert phases["align-2"] in {"Promoted", "Rejected"}, phases

    # Applying the folder again changes nothing: no object is written (kubectl may still say
    # "configured" when it sends a merge patch that the apiserver finds to be a no-op, because
    # CRD lists carry defaulted fields), and no Job is created.
    before_jobs, before_objects = _jobs(env, namespace), _versions(env, namespace)
    subprocess.run(["kubectl", "apply", "-n", namespace, "-f", str(LOOP)], env=env, check=True,
                   capture_output=True, text=True)
    assert _versions(env, namespace) == before_objects
    assert _jobs(env, namespace) == before_jobs

    index = write_report(build_report(namespace, objects), tmp_path / "report")
    text = index.read_text()
    assert "interm-1" in text or phases["align-1"] == "Rejected"
    assert "data:image/png;base64," in text
