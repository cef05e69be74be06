"""One settings source: workers read the API's own models, and only settings the API defines."""

from __future__ import annotations

import ast
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from synthloop.api.v1alpha1.align import AlignJob, Stage
from synthloop.api.v1alpha1.common import EvalSuite
from synthloop.api.v1alpha1.pretrain import Architecture, PretrainJob
from synthloop.api.v1alpha1.reward import RewardTrain, RewardTraining
from synthloop.api.v1alpha1.synth import Dedup, Dialogues, Generator, SynthRound
from synthloop.api.worker import (
    TASK_PARAMS,
    AlignParams,
    EvalParams,
    PretrainParams,
    RewardParams,
    SynthParams,
)
from synthloop.builders.stages import (
    align_stages,
    eval_stage,
    pretrain_stages,
    reward_stages,
    synth_stages,
)

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
WORKERS = ROOT / "operator" / "synthloop" / "workers"
#: Per worker module: the names bound to API models (``self.params``: an attribute), and their types.
TYPED_NAMES: dict[str, dict[str, type[BaseModel]]] = {
    "pretrain/worker.py": {"params": PretrainParams, "arch": Architecture},
    "reward/worker.py": {"params": RewardParams, "tp": RewardTraining},
    "align/worker.py": {"params": AlignParams, "st": Stage},
    "eval/worker.py": {"params": EvalParams, "suite": EvalSuite, "self.params": EvalParams},
    "synth/shard.py": {"params": SynthParams},
    "synth/io.py": {"params": SynthParams},
    "synth/merge.py": {"params": SynthParams, "d": Dedup},
    "synth/pipeline.py": {"params": SynthParams, "self.params": SynthParams, "dlg": Dialogues, "dd": Dedup},
    "synth/dialogues.py": {"params": Dialogues},
    "synth/backends/__init__.py": {"generator": Generator},
}
#: Worker folders that once had their own params.py copies of the API.
WORKER_FOLDERS = ("align", "eval", "reward", "pretrain", "training", "runtime", "synth")


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` (not inside a list or dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        models = [m for m in map(_model_of, typing.get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def _chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    names: list[str] = []
    cur: ast.expr = node
    while isinstance(cur, ast.Attribute):
        names.append(cur.attr)
        cur = cur.value
    return (cur.id, names[::-1]) if isinstance(cur, ast.Name) else None


def undefined_settings(source: str, typed: dict[str, type[BaseModel]]) -> list[str]:
    """Every ``name.a.b`` read in ``source`` where ``a`` (or ``b``) is not a field of the API model."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute) or isinstance(getattr(node, "ctx", None), ast.Store):
            continue
        found = _chain(node)
        if found is None:
            continue
        root, attrs = found
        if attrs and f"{root}.{attrs[0]}" in typed:  # an attribute bound to a model: self.params
            root, attrs = f"{root}.{attrs[0]}", attrs[1:]
        elif root not in typed:
            continue
        model: type[BaseModel] | None = typed[root]
        for attr in attrs:
            if model is None:
                break
            if attr in model.model_fields:
                model = _model_of(model.model_fields[attr].annotation)
            elif hasattr(model, attr):  # a method of the model (model_dump, wire)
                break
            else:
                bad.append(f"line {node.lineno}: {root}.{'.'.join(attrs)} ({attr!r} is not a field of {model.__name__})")
                break
    return sorted(set(bad))


@pytest.mark.parametrize("module", sorted(TYPED_NAMES))
def test_workers_read_only_settings_the_api_defines(module: str) -> None:
    source = (WORKERS / module).read_text()
    assert undefined_settings(source, TYPED_NAMES[module]) == []
    for name in WORKER_FOLDERS:
        assert f"synthloop.workers.{name}.params" not in source, "params models come from synthloop.api.worker"


def test_the_checker_catches_a_setting_the_api_does_not_define() -> None:
    source = "def f(params, st):\n    return params.micro_batch_size + st.warmup + params.stages[0].lr\n"
    assert undefined_settings(source, {"params": AlignParams, "st": Stage}) == [
        "line 2: st.warmup ('warmup' is not a field of Stage)"]


def test_the_checker_follows_an_attribute_bound_to_a_model() -> None:
    source = "def f(self):\n    return self.params.dedup.exact + self.params.quality.refusals + self.other.x\n"
    assert undefined_settings(source, {"self.params": SynthParams}) == [  # the chain and its prefix
        "line 2: self.params.quality ('quality' is not a field of SynthParams)",
        "line 2: self.params.quality.refusals ('quality' is not a field of SynthParams)"]


def test_no_worker_side_copies_of_the_api() -> None:
    for name in WORKER_FOLDERS:
        assert not (WORKERS / name / "params.py").exists()
    for copy in ("params.py", "synthparams.py"):  # operator-side hand mappings
        assert not (ROOT / "operator" / "synthloop" / "builders" / copy).exists()
    # every worker module that reads params is checked above
    readers = {str(p.relative_to(WORKERS)) for p in WORKERS.rglob("*.py") if "params." in p.read_text()}
    assert readers <= set(TYPED_NAMES), sorted(readers - set(TYPED_NAMES))


def _docs() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "examples").glob("loop/*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def test_params_built_from_every_example_are_the_specs_own_settings() -> None:
    prefix = "s3://b/ns/K/n/u/"
    seen = set()
    for doc in _docs():
        kind = doc["kind"]
        if kind == "PretrainJob":
            pj = PretrainJob.model_validate(doc).spec
            (plan,) = pretrain_stages(pj, prefix=prefix, inputs={})
            got = PretrainParams.model_validate(plan.params)
            assert got.phases == pj.phases and got.parallelism == pj.parallelism and got.model == pj.model
        elif kind == "RewardTrain":
            rt = RewardTrain.model_validate(doc).spec
            (plan,) = reward_stages(rt, prefix=prefix, inputs={})
            got_r = RewardParams.model_validate(plan.params)
            assert got_r.weights == rt.weights and got_r.training == rt.training
        elif kind == "SynthRound":
            sr = SynthRound.model_validate(doc).spec
            shards, merge = synth_stages(sr, prefix=prefix, inputs={})
            got_s = SynthParams.model_validate(shards.params)
            assert got_s == SynthParams.model_validate(merge.params)
            assert (got_s.generator, got_s.prompts, got_s.dialogues, got_s.preference, got_s.reward_filter,
                    got_s.dedup, got_s.shards, got_s.seed) == (sr.generator, sr.prompts, sr.dialogues,
                                                               sr.preference, sr.reward_filter, sr.dedup,
                                                               sr.shards, sr.seed)
        elif kind == "AlignJob":
            aj = AlignJob.model_validate(doc).spec
            plans = align_stages(aj, prefix=prefix, inputs={"model": "m"})
            assert [AlignParams.model_validate(p.params).stages for p in plans] == [[s] for s in aj.stages]
            assert AlignParams.model_validate(plans[0].params).micro_batch_size == aj.micro_batch_size
            if aj.evaluation.suites:
                ev = eval_stage(aj.evaluation, prefix=prefix, stage="eval", model="m", inputs={}, gpus=0)
                assert EvalParams.model_validate(ev.params).suites == aj.evaluation.suites
        else:
            continue
        seen.add(kind)
    assert seen == {"PretrainJob", "SynthRound", "RewardTrain", "AlignJob"}


def test_the_drifts_are_gone() -> None:
    with pytest.raises(ValidationError, match="iterations applies to rpo stages only"):
        AlignParams.model_validate({"stages": [{"type": "dpo", "beta": 0.1, "iterations": 2}]})
    with pytest.raises(ValidationError, match="rpo stages need a reference"):
        AlignParams.model_validate({"stages": [{"type": "rpo", "beta": 0.1}]})
    with pytest.raises(ValidationError, match="beta applies to dpo and rpo stages only"):
        AlignParams.model_validate({"stages": [{"type": "sft", "beta": 0.1}]})
    with pytest.raises(ValidationError, match="checkpointEvry"):
        PretrainParams.model_validate({"model": {"preset": "tiny"}, "checkpointEvry": 5,
                                       "phases": [{"name": "p", "steps": 1, "blend": [{"source": "qa", "weight": 1}]}]})
    a = PretrainParams.model_validate({"model": {"preset": "tiny"}, "batchRamp": [{"globalBatchSize": 8}],
                                       "phases": [{"name": "p", "steps": 1, "blend": [{"source": "qa", "weight": 1}]}]})
    b = PretrainParams.model_validate({"model": {"preset": "tiny"}, "batch_ramp": [{"global_batch_size": 8}],
                                       "phases": [{"name": "p", "steps": 1, "blend": [{"source": "qa", "weight": 1}]}]})
    assert a == b
    assert set(TASK_PARAMS) == {"synth", "synth-merge", "pretrain", "reward-train", "align", "eval"}


def test_api_catalog_and_checks_do_not_import_torch() -> None:
    code = ("import sys; import synthloop.api.worker, synthloop.catalog, synthloop.capacity, "
            "synthloop.controllers.admission; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


#: SynthRound fields that are not synth worker params: inputs (resolved into config.inputs),
#: placement and pod settings (the Job).
SYNTH_OPERATOR_ONLY = {"resources", "backoffLimit", "keepArtifacts", "podTemplate", "rewardModel"}


def test_every_synthround_setting_reaches_the_synth_worker() -> None:
    """The synth params are the spec's SynthSettings: every other spec field is the operator's."""
    from pydantic.alias_generators import to_camel

    from synthloop.api.v1alpha1.synth import SynthRoundSpec, SynthSettings

    operator_only = {to_camel(n) for n in set(SynthRoundSpec.model_fields) - set(SynthSettings.model_fields)}
    assert operator_only == SYNTH_OPERATOR_ONLY
    assert set(SynthParams.model_fields) == set(SynthSettings.model_fields)
