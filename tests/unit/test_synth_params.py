"""The synth worker's params are the API's ``SynthParams`` (the SynthRound's own settings):
camelCase as in the CR, clear errors that name the field, deterministic shard slices."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from synthloop.api.v1alpha1.synth import PROMPT_FAMILIES, SynthRoundSpec
from synthloop.api.worker import SynthParams
from synthloop.workers.runtime.distributed import shard_range
from synthloop.workers.synth.families import FAMILIES
from synthloop.workers.synth.families.base import KEYWORD_FAMILIES, TOPIC_FAMILIES, family_options

pytestmark = pytest.mark.unit
GENERATOR: dict[str, Any] = {"backend": "transformers", "model": {"uri": "s3://b/gen/"}}


def test_the_spec_settings_are_the_worker_params() -> None:
    spec = SynthRoundSpec.model_validate({
        "generator": {**GENERATOR, "maxTokens": 64, "tensorParallel": 2, "topP": 0.8, "batchSize": 4},
        "prompts": {"openQA": 5, "math": 3, "refusals": 2, "topics": ["tides"], "keywords": ["fractions"]},
        "dialogues": {"count": 2},
        "preference": {"responsesPerPrompt": 3, "includeReference": True},
        "rewardModel": {"uri": "s3://b/rm/"},
        "rewardFilter": {"threshold": 3.0, "weights": {"helpfulness": 1.0}},
        "dedup": {"nearThreshold": 0.8}, "shards": 4, "seed": 9,
        "resources": {"gpusPerNode": 8},
    })
    wire = SynthParams.of(spec).wire()
    assert "resources" not in wire and "rewardModel" not in wire  # placement and resolved inputs
    p = SynthParams.model_validate(wire)
    assert p.generator == spec.generator and p.prompts == spec.prompts and p.dedup == spec.dedup
    assert p.reward_filter.threshold == 3.0 and (p.shards, p.seed) == (4, 9)
    assert p.dialogues.turns == 3  # the report's three user turns by default
    opts = family_options(p.prompts)
    assert list(opts) == ["openQA", "math"]
    assert (opts["openQA"].count, opts["openQA"].topics, opts["openQA"].keywords) == (5, ("tides",), ())
    assert (opts["math"].count, opts["math"].topics, opts["math"].keywords) == (3, (), ("fractions",))


def test_every_prompt_family_of_the_api_has_a_builder() -> None:
    assert set(FAMILIES) == set(PROMPT_FAMILIES) == set(TOPIC_FAMILIES + KEYWORD_FAMILIES)
    counts = {name: i + 1 for i, name in enumerate(PROMPT_FAMILIES)}
    params = SynthParams.model_validate({"generator": GENERATOR, "prompts": counts})
    assert {k: o.count for k, o in family_options(params.prompts).items()} == counts


def test_bad_values_are_rejected_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="backend openai needs an endpoint"):
        SynthParams.model_validate({"generator": {"backend": "openai"}})
    with pytest.raises(ValidationError, match="generator.backend"):
        SynthParams.model_validate({"generator": {**GENERATOR, "backend": "tgi"}})
    with pytest.raises(ValidationError, match=r"prompts.poetry\n  Extra inputs are not permitted"):
        SynthParams.model_validate({"generator": GENERATOR, "prompts": {"poetry": 3}})
    with pytest.raises(ValidationError, match="shardz"):
        SynthParams.model_validate({"generator": GENERATOR, "shardz": 2})
    with pytest.raises(ValidationError, match="responsesPerPrompt"):
        SynthParams.model_validate({"generator": GENERATOR, "preference": {"responsesPerPrompt": 1}})


@pytest.mark.parametrize(("total", "shards"), [(0, 1), (7, 3), (10, 4), (3, 5), (100, 7)])
def test_shard_ranges_partition_the_items(total: int, shards: int) -> None:
    ranges = [shard_range(total, index=i, shards=shards) for i in range(shards)]
    flat = [j for r in ranges for j in r]
    assert flat == list(range(total))
    assert max(len(r) for r in ranges) - min(len(r) for r in ranges) <= 1
    with pytest.raises(ValueError, match="out of range"):
        shard_range(total, index=shards, shards=shards)


def test_params_and_worker_modules_import_no_heavy_dependencies() -> None:
    """The operator validates params without torch; vllm loads only for the vllm backend."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import synthloop.api.worker\n"
        "assert 'torch' not in sys.modules, 'params imported torch'\n"
        "import synthloop.workers.synth.shard, synthloop.workers.synth.merge\n"
        "heavy = sorted(m for m in ('torch', 'vllm', 'transformers', 'kopf') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
