"""spec.podTemplate reaches every Job of a run; the operator's own pod settings win conflicts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthloop.api.v1alpha1 import AlignJob, SynthRound
from synthloop.api.validate import SpecError, parse_resource
from synthloop.builders.jobs import Owner, Platform, build_job
from synthloop.builders.profiles import BUILTIN
from synthloop.builders.stages import align_stages, eval_stage, job_request, synth_stages
from synthloop.controllers.kinds import plugin_for

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
PLATFORM = Platform(image="worker:test", s3_endpoint="http://minio:9000")
TEMPLATE = {
    "volumes": [{"name": "model-cache", "mountPath": "/models",
                 "persistentVolumeClaim": {"claimName": "model-cache", "readOnly": True}}],
    "imagePullSecrets": ["ngc"],
    "serviceAccountName": "trainer",
    "annotations": {"kueue.x-k8s.io/podset-required-topology": "cloud.provider.com/topology-block"},
    "labels": {"team": "alignment", "synthloop.io/stage": "spoofed"},
    "nodeSelector": {"example.com/fabric": "ib-a"},
    "env": [{"name": "HF_HOME", "value": "/models/hf"},
            {"name": "WANDB_API_KEY", "secretKeyRef": {"name": "wandb", "key": "apiKey"}},
            {"name": "SYNTHLOOP_WORKER_CONFIG", "value": "spoofed"}],
}


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((ROOT / "examples" / name).read_text()))


def jobs_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    cr = parse_resource(doc)
    spec: Any = vars(cr)["spec"]
    own = Owner(kind=doc["kind"], name="x", namespace="ns", uid="u")
    if isinstance(cr, AlignJob):
        plans = align_stages(spec, prefix="s3://b/p/", inputs={"model": "m"})
        plans.append(eval_stage(spec.evaluation, prefix="s3://b/p/", stage="eval", model="m", inputs={}, gpus=8))
    else:
        assert isinstance(cr, SynthRound)
        plans = synth_stages(spec, prefix="s3://b/p/", inputs={})
    out = []
    for plan in plans:
        req = job_request(plan, owner=own, job_name=f"x-{plan.stage}", spec_hash="h", image="i",
                          backoff_limit=1, resources=spec.resources, pod_template=plugin_for(doc["kind"]).pod_template(spec))
        out.append(build_job(own, PLATFORM, BUILTIN.get(None), req))
    return out


def test_every_job_of_the_run_gets_the_template() -> None:
    doc = example("alignjob.yaml")
    doc["spec"]["podTemplate"] = TEMPLATE
    jobs = jobs_of(doc)
    assert len(jobs) == 4  # sft, dpo, rpo, eval
    for job in jobs:
        pod = job["spec"]["template"]
        spec = pod["spec"]
        (container,) = spec["containers"]
        assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "model-cache", "readOnly": True}} \
            in spec["volumes"]
        assert {"name": "model-cache", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
        assert {v["name"] for v in spec["volumes"]} >= {"dshm", "scratch"}
        assert spec["imagePullSecrets"] == [{"name": "ngc"}] and spec["serviceAccountName"] == "trainer"
        assert spec["nodeSelector"] == {"example.com/fabric": "ib-a"}
        assert pod["metadata"]["annotations"]["kueue.x-k8s.io/podset-required-topology"]
        assert pod["metadata"]["labels"]["team"] == "alignment"
        assert pod["metadata"]["labels"]["synthloop.io/stage"] != "spoofed"  # the operator's label wins
        env = {e["name"]: e for e in container["env"]}
        assert env["HF_HOME"]["value"] == "/models/hf"
        assert env["WANDB_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "wandb", "key": "apiKey"}}
        assert env["SYNTHLOOP_WORKER_CONFIG"].get("value") != "spoofed"  # the operator's env wins
        assert [e["name"] for e in container["env"]].count("SYNTHLOOP_WORKER_CONFIG") == 1


def test_openai_key_comes_from_the_secret_named_in_the_spec() -> None:
    doc = example("synthround.yaml")
    doc["spec"]["generator"] = {"backend": "openai", "endpoint": "https://integrate.api.nvidia.com/v1",
                                "apiKeySecret": {"name": "nim", "key": "token"}}
    doc["spec"]["resources"]["gpusPerNode"] = 0
    for job in jobs_of(doc):
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["OPENAI_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "nim", "key": "token"}}


def test_without_a_template_the_job_is_unchanged() -> None:
    (job, *_) = jobs_of(example("alignjob.yaml"))
    spec = job["spec"]["template"]["spec"]
    assert "imagePullSecrets" not in spec and "serviceAccountName" not in spec and "nodeSelector" not in spec


@pytest.mark.parametrize(("change", "message"), [
    ({"volumes": [{"name": "dshm", "mountPath": "/x", "secretName": "s"}]}, "are the operator's own"),
    ({"volumes": [{"name": "v", "mountPath": "/x"}]}, "exactly one of persistentVolumeClaim"),
    ({"env": [{"name": "A"}]}, "exactly one of value or secretKeyRef"),
    ({"env": [{"name": "1A", "value": "x"}]}, "spec.podTemplate.env[0].name"),
])
def test_bad_templates_are_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    doc = example("alignjob.yaml")
    doc["spec"]["podTemplate"] = change
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_resource(doc)


def test_a_kinds_pod_env_joins_the_template_and_the_templates_own_entry_wins() -> None:
    """builders/podtemplate.py asks no kind: the env comes from the kind's plugin (``pod_env``)."""
    from synthloop.api.v1alpha1.pod import EnvVar, PodTemplate
    from synthloop.builders import podtemplate

    mine = PodTemplate(env=[EnvVar(name="OPENAI_API_KEY", value="from-the-template")])
    kind = [EnvVar(name="OPENAI_API_KEY", value="from-the-kind"), EnvVar(name="B", value="b")]
    out = podtemplate.pod_template_of(mine, env=kind)
    assert out is not None and [(e.name, e.value) for e in out.env] == [("OPENAI_API_KEY", "from-the-template"),
                                                                         ("B", "b")]
    assert podtemplate.pod_template_of(None) is None
    assert [e.name for e in podtemplate.pod_template_of(None, env=kind[1:]).env] == ["B"]  # type: ignore[union-attr]
    source = Path(podtemplate.__file__).read_text()
    assert "SynthRound" not in source and "isinstance" not in source  # no kind is asked for
