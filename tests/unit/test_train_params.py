"""Worker params accept what the operator builds from the example CRs (camelCase, whole specs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from synthloop.workers.align.params import AlignParams
from synthloop.workers.evaluate.params import EvalParams
from synthloop.workers.pretrain.params import PretrainParams
from synthloop.workers.reward.params import RewardParams

pytestmark = pytest.mark.unit
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("loop/*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_operator_built_params_validate_in_the_workers() -> None:
    from synthloop.api.v1alpha1.align import AlignJob
    from synthloop.api.v1alpha1.pretrain import PretrainJob
    from synthloop.api.v1alpha1.reward import RewardTrain
    from synthloop.builders import params as P

    seen = set()
    for doc in example_docs():
        kind = doc["kind"]
        if kind == "PretrainJob":
            spec = PretrainJob.model_validate(doc).spec
            parsed = PretrainParams.model_validate(P.pretrain_params(spec))
            assert [p.name for p in parsed.phases] == [p.name for p in spec.phases]
        elif kind == "RewardTrain":
            spec_r = RewardTrain.model_validate(doc).spec
            assert RewardParams.model_validate(P.reward_params(spec_r)).training.epochs == spec_r.training.epochs
        elif kind == "AlignJob":
            spec_a = AlignJob.model_validate(doc).spec
            for stage in spec_a.stages:
                assert AlignParams.model_validate(P.align_stage_params(spec_a, stage)).stages[0].type == stage.type
        else:
            continue
        EvalParams.model_validate(P.eval_params(doc_eval(doc)))
        seen.add(kind)
    assert seen == {"PretrainJob", "RewardTrain", "AlignJob"}


def doc_eval(doc: dict[str, Any]) -> Any:
    from synthloop.api.v1alpha1.common import Evaluation

    return Evaluation.model_validate((doc.get("spec") or {}).get("evaluation") or {})


def test_params_accept_both_spellings_and_reject_typos() -> None:
    a = PretrainParams.model_validate({"batchRamp": [{"globalBatchSize": 8}], "checkpoint": {"everySteps": 3}})
    b = PretrainParams.model_validate({"batch_ramp": [{"global_batch_size": 8}], "checkpoint": {"every_steps": 3}})
    assert a == b
    # whole-spec fields the worker does not use are dropped; unknown ones are errors
    assert PretrainParams.model_validate({"resources": {"nodes": 2}, "evaluation": {}}).seed == 0
    with pytest.raises(ValidationError, match="checkpointEvry"):
        PretrainParams.model_validate({"checkpointEvry": 5})
    with pytest.raises(ValidationError, match="minLr 0.5 exceeds lr 0.1"):
        PretrainParams.model_validate({"phases": [{"name": "p", "steps": 1, "lr": 0.1, "minLr": 0.5,
                                                   "blend": [{"source": "qa", "weight": 1}]}]})
    with pytest.raises(ValidationError, match="set a preset or all explicit dims"):
        PretrainParams.model_validate({"model": {"layers": 2}})


def test_params_modules_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; import synthloop.workers.pretrain.params, synthloop.workers.reward.params, "
            "synthloop.workers.align.params, synthloop.workers.evaluate.params, "
            "synthloop.models.presets; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
