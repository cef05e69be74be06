"""SynthRound parameters: camelCase aliases, clear errors, deterministic shard slices."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from synthloop.workers.synth.params import FAMILY_NAMES, SynthParams, shard_range

pytestmark = pytest.mark.unit


def test_camel_case_spec_fields_and_count_shorthand() -> None:
    p = SynthParams.model_validate({
        "generator": {"backend": "transformers", "maxTokens": 64, "tensorParallel": 2, "topP": 0.9, "batchSize": 4},
        "families": {"openQA": 5, "math": {"count": 3, "keywords": ["fractions"], "levels": [1]}},
        "dialogues": {"count": 2},
        "preference": {"responsesPerPrompt": 3, "includeReference": True},
        "rewardModel": {"threshold": 3.0, "weights": {"helpfulness": 1.0}},
        "dedup": {"nearThreshold": 0.8},
    })
    assert p.generator.max_tokens == 64 and p.generator.tensor_parallel == 2
    assert p.family_counts() == {"openQA": 5, "math": 3}
    assert p.families["math"].keywords == ["fractions"]
    assert p.preference.responses_per_prompt == 3 and p.preference.include_reference
    assert p.reward_model.threshold == 3.0 and p.dedup.near_threshold == 0.8
    assert p.dialogues.turns == 3  # the report's three user turns by default


def test_unknown_family_names_the_field_and_allowed_values() -> None:
    with pytest.raises(ValidationError) as info:
        SynthParams.model_validate({"families": {"poetry": 3}})
    message = str(info.value)
    assert "families.poetry" in message
    for name in FAMILY_NAMES:
        assert name in message


def test_bad_values_are_rejected() -> None:
    with pytest.raises(ValidationError, match="generator.endpoint is required"):
        SynthParams.model_validate({"generator": {"backend": "openai"}})
    with pytest.raises(ValidationError, match="backend"):
        SynthParams.model_validate({"generator": {"backend": "tgi"}})
    with pytest.raises(ValidationError, match="levels"):
        SynthParams.model_validate({"families": {"math": {"count": 1, "levels": [7]}}})
    with pytest.raises(ValidationError, match="extra"):
        SynthParams.model_validate({"shardz": 2})


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
        "import synthloop.workers.synth.params\n"
        "assert 'torch' not in sys.modules, 'params imported torch'\n"
        "import synthloop.workers.synth.shard, synthloop.workers.synth.merge\n"
        "heavy = sorted(m for m in ('torch', 'vllm', 'transformers', 'kopf') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
