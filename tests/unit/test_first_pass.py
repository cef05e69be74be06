"""Errors before any pod: what a new user gets wrong is refused by the schema or the first pass."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthloop import capacity, catalog
from synthloop.api.validate import SpecError, parse_resource
from synthloop.builders.profiles import BUILTIN
from synthloop.controllers.admission import first_pass_problems
from synthloop.models.presets import PRESETS

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "examples" / "loop").glob("*.yaml"))


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def example(name: str) -> dict[str, Any]:
    (doc,) = docs(ROOT / "examples" / name)
    return copy.deepcopy(doc)


def problems(doc: dict[str, Any], lookup: Any = None) -> list[str]:
    """Schema errors, then the operator's first-pass problems (what Failed would say)."""
    try:
        res = parse_resource(doc)
    except SpecError as exc:
        return exc.problems
    spec: Any = vars(res)["spec"]
    return first_pass_problems(doc["kind"], spec, BUILTIN.get(spec.resources.profile), lookup=lookup)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_passes_validation_and_the_first_pass(path: Path) -> None:
    for doc in docs(path):
        assert problems(doc) == []


def _align(**change: Any) -> dict[str, Any]:
    doc = example("alignjob.yaml")
    doc["spec"].update(change)
    return doc


CASES: list[tuple[str, dict[str, Any], str]] = []


def case(name: str, doc: dict[str, Any], expected: str) -> None:
    CASES.append((name, doc, expected))


d = example("alignjob.yaml")
d["spec"]["stages"][1]["iterations"] = 2
case("dpo-with-iterations", d, "spec.stages[1]: iterations applies to rpo stages only")
d = example("alignjob.yaml")
d["spec"]["stages"][0]["beta"] = 0.1
case("sft-with-beta", d, "spec.stages[0]: beta applies to dpo and rpo stages only")
d = example("alignjob.yaml")
d["spec"]["evaluation"]["suites"][0]["tasks"] = ["mmlu"]
case("unknown-eval-task", d, "tasks: a multipleChoice task must be one of arithmetic, colors")
d = example("alignjob.yaml")
d["spec"]["evaluation"]["gates"].append({"metric": "mc.hellaswag.acc", "min": 0.5})
case("gate-on-unproduced-metric", d, "gates[2].metric: no suite produces 'mc.hellaswag.acc'")
case("data-from-a-pretrainjob", _align(data={"fromRef": {"kind": "PretrainJob", "name": "base"}}),
     "data.fromRef.kind must be SynthRound")
case("reward-model-from-a-synthround", _align(rewardModel={"fromRef": {"kind": "SynthRound", "name": "r"}}),
     "rewardModel.fromRef.kind must be RewardTrain")
d = example("synthround.yaml")
d["spec"]["prompts"] = {}
d["spec"]["dialogues"] = {"count": 0}
case("round-with-nothing-to-generate", d, "nothing to generate")
d = example("synthround.yaml")
d["spec"]["rewardFilter"] = {"weights": {"helpfulness": 1, "humour": 1}}
case("unknown-reward-attribute", d, "keys must be reward attributes")
d = example("pretrainjob.yaml")
d["spec"]["parallelism"]["pipeline"] = 12
case("pipeline-the-trainer-does-not-run", d, "spec.parallelism.pipeline: Input should be less than or equal to 1")
d = example("pretrainjob.yaml")
del d["spec"]["data"]
case("blend-source-without-data", d, "needs spec.data")
d = example("pretrainjob.yaml")
d["spec"]["parallelism"] = {"tensor": 8, "zeroStage": 1, "microBatchSize": 1}
case("340b-without-zero3-does-not-fit", d, "needs about")
d = example("pretrainjob.yaml")
d["spec"]["parallelism"]["tensor"] = 16
case("tensor-beyond-a-node", d, "spec.parallelism.tensor: 16 exceeds resources.gpusPerNode 8")
d = example("pretrainjob.yaml")
d["spec"]["batchRamp"][0]["globalBatchSize"] = 1000
case("batch-not-a-multiple-of-data-parallel", d, "spec.batchRamp[0].globalBatchSize: 1000 is not a multiple")
d = example("synthround.yaml")
d["spec"]["generator"]["parametersBillions"] = 340
case("340b-generator-in-bf16", d, "try quantization: fp8")
d = example("rewardtrain.yaml")
d["spec"]["evaluation"]["suites"] = [{"type": "rewardWinRate"}]
d["spec"]["evaluation"]["gates"] = [{"metric": "reward.win_rate", "min": 0.5}]
case("win-rate-on-a-reward-model", d, "rewardWinRate compares generations of a policy")
d = example("alignjob.yaml")
d["spec"]["evaluation"]["backend"] = "vllm"
d["spec"]["resources"]["gpusPerNode"] = 0
case("vllm-eval-without-gpus", d, "spec.evaluation.backend: vllm generates only on GPUs")


@pytest.mark.parametrize(("name", "doc", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_case_is_refused_naming_the_field(name: str, doc: dict[str, Any], expected: str) -> None:
    found = problems(doc)
    assert found, f"{name} was accepted"
    assert any(expected in p for p in found), found


def test_fp8_makes_the_340b_generator_fit() -> None:
    d = example("synthround.yaml")
    d["spec"]["generator"].update(parametersBillions=340, quantization="fp8")
    assert problems(d) == []


def test_generator_size_is_read_from_a_pretrainjob_producer() -> None:
    base = example("pretrainjob.yaml")

    class Lookup:
        def get(self, kind: str, name: str) -> dict[str, Any] | None:
            return base if (kind, name) == ("PretrainJob", "nemotron4-340b-base") else None

    d = example("synthround.yaml")
    d["spec"]["generator"]["model"] = {"fromRef": {"kind": "PretrainJob", "name": "nemotron4-340b-base"}}
    assert any("B parameters in bf16" in p and "quantization: fp8" in p for p in problems(d, Lookup()))


def test_training_memory_numbers() -> None:
    dims = PRESETS["nemotron4-340b"]
    plain = capacity.training_memory(dims, tensor=8, data=768, zero_stage=1, micro_batch=1,
                                     activation_checkpointing=False)
    # bf16 weights over 8 tensor ranks: 2 B x 341e9 / 8 = 85 GB, already past an 80 GB GPU
    assert plain.weights == pytest.approx(2 * dims.total_params() / 8)
    assert plain.optimizer == pytest.approx(12 * dims.total_params() / 8 / 768)
    sharded = capacity.training_memory(dims, tensor=8, data=768, zero_stage=3, micro_batch=1,
                                       activation_checkpointing=True)
    assert sharded.total < 0.9 * 80 * capacity.GIB < plain.total
    assert sharded.activations < plain.activations / 5


def test_catalog_matches_the_workers_registries() -> None:
    from synthloop import corpus
    from synthloop.workers.eval.suites import multiple_choice

    assert catalog.EVAL_TASKS["multipleChoice"] == multiple_choice.BUILTIN_TASKS
    assert tuple(corpus.source_names()) == catalog.BLEND_SOURCES
    assert catalog.suite_metrics("multipleChoice", ["s3://b/eval/mmlu.jsonl"]) == {"mc.mmlu.acc", "mc.mmlu.acc_norm"}


def test_reward_weights_default_to_the_model_card_everywhere() -> None:
    from synthloop.api.v1alpha1.reward import DEFAULT_WEIGHTS, AttributeWeights
    from synthloop.models import reward

    assert AttributeWeights().model_dump() == DEFAULT_WEIGHTS == reward.DEFAULT_WEIGHTS
    crd = yaml.safe_load((ROOT / "crds" / "synthloop.io_rewardtrains.yaml").read_text())
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert {k: v["default"] for k, v in props["weights"]["properties"].items()} == DEFAULT_WEIGHTS


class _Producers:
    """A namespace holding the given objects (kind, name) -> body, as the first pass's lookup."""

    def __init__(self, *docs: dict[str, Any]) -> None:
        self.docs = {(d["kind"], d["metadata"]["name"]): d for d in docs}

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.docs.get((kind, name))

    def list(self, kind: str) -> list[dict[str, Any]]:
        return [d for (k, _), d in self.docs.items() if k == kind]


SMALL = {"layers": 16, "hidden": 2048, "heads": 16, "kvHeads": 8, "ffnHidden": 8192, "seqLength": 4096,
         "vocab": 32000}  # 0.87B parameters


def _pretrain(name: str, model: dict[str, Any]) -> dict[str, Any]:
    doc = example("pretrainjob.yaml")
    doc["metadata"]["name"], doc["spec"]["model"] = name, model
    return doc


def _on(doc: dict[str, Any], producer: str) -> dict[str, Any]:
    doc["spec"]["baseModel"] = {"fromRef": {"kind": "PretrainJob", "name": producer}}
    return doc


def test_the_iteration_2_generator_is_sized_from_the_alignjob_that_promotes_it() -> None:
    """``promoted: interm-1`` names the AlignJob here that promotes it, whose base is the 340B PretrainJob:
    its bf16 weights cannot fit tensorParallel 8 on 80 GiB GPUs, and fp8 is offered."""
    lookup = _Producers(example("pretrainjob.yaml"), example("alignjob.yaml"))  # align-1 promotes interm-1
    d = example("synthround.yaml")
    d["spec"]["generator"].pop("parametersBillions", None)
    d["spec"]["generator"]["model"] = {"promoted": "interm-1"}
    (problem,) = problems(d, lookup)
    assert problem.startswith("spec.generator: generator weights of 341") and "try quantization: fp8" in problem
    d["spec"]["generator"]["quantization"] = "fp8"
    assert problems(d, lookup) == []
    d["spec"]["generator"]["model"] = {"promoted": "nobody-promotes-this"}
    d["spec"]["generator"].pop("quantization")
    assert problems(d, lookup) == []  # unknown size: nothing to refuse
