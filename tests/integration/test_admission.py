"""Admission on the real apiserver: the examples install, the late errors are refused, runs are immutable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthloop.artifacts.store import open_store
from synthloop.artifacts.uris import run_prefix
from tests.conftest import LocalCluster, wait_for
from tests.integration import test_operator as op

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "examples" / "loop").glob("*.yaml"))


@pytest.fixture
def crds(local_cluster: LocalCluster) -> LocalCluster:
    local_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "crds"))
    for plural in ("pretrainjobs", "synthrounds", "rewardtrains", "alignjobs"):
        local_cluster.kubectl("wait", "--for=condition=Established", f"crd/{plural}.synthloop.io", "--timeout=60s")
    return local_cluster


def _apply(lc: LocalCluster, namespace: str, doc: dict[str, Any], *, dry_run: bool = True) -> Any:
    args = ["apply", "-n", namespace, "-f", "-"] + (["--dry-run=server"] if dry_run else [])
    return lc.kubectl(*args, input=yaml.safe_dump(doc), check=False)


def test_every_example_is_accepted_and_the_late_errors_are_refused(crds: LocalCluster, namespace: str) -> None:
    for path in EXAMPLES:
        proc = crds.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
        assert proc.returncode == 0, f"{path.name}: {proc.stderr}"
    align = yaml.safe_load((ROOT / "examples" / "alignjob.yaml").read_text())
    cases = []
    bad = json.loads(json.dumps(align))
    bad["spec"]["stages"][1]["iterations"] = 2
    cases.append((bad, "spec.stages[1].iterations: Invalid value", "iterations applies to rpo stages only"))
    bad = json.loads(json.dumps(align))
    bad["spec"]["stages"][0]["beta"] = 0.1
    cases.append((bad, "spec.stages[0].beta", "beta applies to dpo and rpo stages only"))
    bad = json.loads(json.dumps(align))
    bad["spec"]["evaluation"]["suites"][0]["tasks"] = ["mmlu"]
    cases.append((bad, "spec.evaluation.suites[0].tasks", "a multipleChoice task must be one of arithmetic, colors"))
    bad = json.loads(json.dumps(align))
    bad["spec"]["data"] = {"fromRef": {"kind": "PretrainJob", "name": "base"}}
    cases.append((bad, "spec.data", "data.fromRef.kind must be SynthRound"))
    round_ = yaml.safe_load((ROOT / "examples" / "synthround.yaml").read_text())
    round_["spec"]["prompts"], round_["spec"]["dialogues"] = {}, {}
    cases.append((round_, "spec.prompts", "nothing to generate"))
    pretrain = yaml.safe_load((ROOT / "examples" / "pretrainjob.yaml").read_text())
    pretrain["spec"]["parallelism"]["pipeline"] = 12
    cases.append((pretrain, "spec.parallelism.pipeline", "should be less than or equal to 1"))
    for doc, field, message in cases:
        proc = _apply(crds, namespace, doc)
        assert proc.returncode != 0, f"accepted: {message}"
        assert field in proc.stderr and message in proc.stderr, proc.stderr


def test_a_started_run_refuses_spec_changes(crds: LocalCluster, namespace: str) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "alignjob.yaml").read_text())
    assert _apply(crds, namespace, doc, dry_run=False).returncode == 0
    doc["spec"]["stages"][0]["epochs"] = 2  # not started: a waiting run may still be fixed
    assert _apply(crds, namespace, doc, dry_run=False).returncode == 0
    crds.kubectl("patch", "alignjob", "align-1", "-n", namespace, "--subresource=status", "--type=merge",
                 "-p", json.dumps({"status": {"phase": "Running", "startedAt": "2026-01-01T00:00:00Z"}}))
    doc["spec"]["stages"] = doc["spec"]["stages"][:1]
    proc = _apply(crds, namespace, doc, dry_run=False)
    assert proc.returncode != 0 and "spec is immutable once the run has started" in proc.stderr, proc.stderr
    assert "new metadata.name" in proc.stderr
    # metadata stays editable, and status writes go on
    crds.kubectl("label", "alignjob", "align-1", "-n", namespace, "team=alignment")
    crds.kubectl("patch", "alignjob", "align-1", "-n", namespace, "--subresource=status", "--type=merge",
                 "-p", json.dumps({"status": {"phase": "Failed"}}))


def test_kubectl_explain_describes_the_fields(crds: LocalCluster) -> None:
    out = crds.kubectl("explain", "alignjobs.spec.stages.iterations").stdout
    assert "RPO iterations" in out
    out = crds.kubectl("explain", "pretrainjobs.spec.parallelism.pipeline").stdout
    assert "no pipeline stages" in out


operator = op.operator  # the fixture: `synthloop operator` for the test's namespace
base = op.base


def test_a_failed_run_is_retried_by_annotation_keeping_its_artifacts(
    local_cluster: LocalCluster, namespace: str, operator: op.Operator, base: dict[str, str]
) -> None:
    lc = local_cluster
    store = open_store()
    data = f"s3://{lc.bucket}/{namespace}/inputs/broken/"
    store.put_bytes(data + "sft.jsonl", b"not json\n" * 4)
    op.apply(lc, namespace, op.cr("AlignJob", "a", {"baseModel": {"uri": base["model"]}, "data": {"uri": data},
                                                    "stages": [{"type": "sft"}], "backoffLimit": 0,
                                                    "resources": {"gpusPerNode": 1}}))
    operator.start()
    body = op.wait_phase(lc, operator, namespace, "AlignJob", "a", {"Failed"}, timeout=420)
    uid = body["metadata"]["uid"]
    (failed_job,) = op.jobs(lc, namespace)
    # the data is fixed where the run reads it; the spec cannot change (the run started), a retry can
    store.put_bytes(data + "sft.jsonl", store.get_bytes(base["data"] + "sft.jsonl"))
    lc.kubectl("annotate", "alignjob", "a", "-n", namespace, "--overwrite", "synthloop.io/retry=1")
    wait_for(lambda: (op.get_cr(lc, namespace, "AlignJob", "a").get("status") or {}).get("retry") == "1",
             timeout=120, what=f"the operator to take the retry\n{operator.logs()}")
    body = op.wait_phase(lc, operator, namespace, "AlignJob", "a", {"Succeeded"}, timeout=420)
    assert body["metadata"]["uid"] == uid and body["status"]["retry"] == "1"
    names = {j["metadata"]["name"] for j in op.jobs(lc, namespace)}
    assert failed_job["metadata"]["name"] in names and len(names) == 2  # a new attempt beside the failed one
    prefix = run_prefix(bucket=lc.bucket, namespace=namespace, kind="AlignJob", name="a", uid=uid)
    assert any(o["name"] == "model" and o["uri"].startswith(prefix) for o in body["status"]["outputs"])
