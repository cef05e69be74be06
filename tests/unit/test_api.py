"""The API models, the CRDs generated from them, and the examples users copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from synthloop.api.crdgen import crd_for, render_all, write_or_check
from synthloop.api.v1alpha1 import KINDS, AlignJob, SynthRound
from synthloop.api.validate import SpecError, parse_resource

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").rglob("*.yaml") if "invalid" not in p.parts)
INVALID = sorted((ROOT / "examples" / "invalid").glob("*.yaml"))


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def expectations(path: Path) -> list[str]:
    return [l.split(":", 1)[1].strip() for l in path.read_text().splitlines() if l.startswith("# expect:")]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_validates(path: Path) -> None:
    for doc in docs(path):
        if doc.get("apiVersion", "").startswith("synthloop.io/"):
            parse_resource(doc)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_every_invalid_example_is_rejected_naming_the_field(path: Path) -> None:
    wanted = expectations(path)
    assert wanted, f"{path.name} has no '# expect:' line"
    (doc,) = docs(path)
    with pytest.raises(SpecError) as info:
        parse_resource(doc)
    message = str(info.value).replace("'", '"')
    for text in wanted:
        assert text.lower() in message.lower(), f"{text!r} not in {message!r}"


def test_round_trip_keeps_the_wire_form() -> None:
    (doc,) = docs(ROOT / "examples" / "alignjob.yaml")
    job = parse_resource(doc)
    assert isinstance(job, AlignJob)
    again = AlignJob.model_validate(job.wire())
    assert again == job
    assert job.wire()["spec"]["stages"][2]["reference"] == "previous"
    assert job.spec.stages[1].sft_weight == 1.0e-5


def test_defaults_apply() -> None:
    sr = SynthRound.model_validate(
        {"spec": {"generator": {"model": {"promoted": "interm-1"}}, "prompts": {"math": 1}}}
    )
    assert sr.spec.generator.backend == "vllm"
    assert sr.spec.resources.profile == "dgx-h100" and sr.spec.resources.gpus_per_node == 8
    assert sr.spec.dialogues.turns == 3


def _walk(node: Any, path: str = "") -> list[str]:
    """Return every place a schema is not structural."""
    bad = []
    if isinstance(node, dict):
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "$defs", "const", "title"):
            if banned in node:
                bad.append(f"{path}: has {banned}")
        if "properties" in node:
            if node.get("type") != "object":
                bad.append(f"{path}: properties without type object")
            if "additionalProperties" in node:
                bad.append(f"{path}: properties with additionalProperties")
            for key, child in node["properties"].items():
                bad += _walk(child, f"{path}.{key}")
        elif "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            bad.append(f"{path}: no type")
        if isinstance(node.get("items"), dict):
            bad += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            bad += _walk(node["additionalProperties"], f"{path}{{}}")
    return bad


@pytest.mark.parametrize("kind", KINDS)
def test_generated_crd_is_structural(kind: str) -> None:
    crd = crd_for(kind)
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["categories"] == ["synthloop"]
    assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"Phase", "Stage", "Progress", "Promoted", "Age"}
    assert schema["properties"]["spec"]["properties"]["resources"]["properties"]["nodes"]["minimum"] == 1


def test_cel_rules_reach_the_crd() -> None:
    spec = crd_for("AlignJob")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    stage = spec["properties"]["stages"]["items"]
    messages = [r["message"] for r in stage["x-kubernetes-validations"]]
    assert any("reference policy" in m for m in messages)
    source = spec["properties"]["baseModel"]
    assert "exactly one of" in source["x-kubernetes-validations"][0]["message"]


def test_checked_in_crds_match_the_models(tmp_path: Path) -> None:
    assert write_or_check(ROOT / "crds", check=True) == []
    for name, text in render_all().items():
        (tmp_path / name).write_text(text)
    target = tmp_path / "synthloop.io_alignjobs.yaml"
    target.write_text(target.read_text().replace("minimum: 1", "minimum: 2", 1))
    problems = write_or_check(tmp_path, check=True)
    assert len(problems) == 1 and "alignjobs" in problems[0]


def _undescribed(node: dict[str, Any], path: str) -> list[str]:
    out = []
    for key, child in (node.get("properties") or {}).items():
        here = f"{path}.{key}"
        if not child.get("description"):
            out.append(here)
        out += _undescribed(child, here)
    if isinstance(node.get("items"), dict):
        out += _undescribed(node["items"], path + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _undescribed(node["additionalProperties"], path + "{}")
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_kubectl_explain_shows_a_description_on_every_field(kind: str) -> None:
    schema = crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    # metadata is the one exception: the apiserver refuses anything on it but its type
    assert _undescribed(schema, kind) == [f"{kind}.metadata"]


def test_a_started_run_is_immutable_by_a_transition_rule() -> None:
    for kind in KINDS:
        (rule,) = crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
        assert "oldSelf.status.startedAt" in rule["rule"] and "self.spec == oldSelf.spec" in rule["rule"]
