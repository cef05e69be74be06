"""AlignJob and RewardTrain memory per GPU: ZeRO over nodes x GPUs, checked on the first pass
with the producers of their base model present (the examples' own PretrainJob)."""

from __future__ import annotations

from typing import Any

import pytest

from synthloop import capacity
from synthloop.models.presets import PRESETS
from tests.unit.test_first_pass import (
    ROOT,
    SMALL,
    _on,
    _pretrain,
    _Producers,
    docs,
    example,
    problems,
)

pytestmark = pytest.mark.unit


def producers() -> _Producers:
    """Every example object, as a namespace where they were all applied (align-1's base is the
    340B PretrainJob, its reward model reward-1, its data round-1)."""
    return _Producers(*[d for p in sorted((ROOT / "examples").glob("*.yaml")) for d in docs(p)])


def test_the_flagship_340b_alignjob_and_rewardtrain_pass_the_first_pass_with_their_producers() -> None:
    lookup = producers()
    assert lookup.get("PretrainJob", "nemotron4-340b-base") is not None
    align, reward = example("alignjob.yaml"), example("rewardtrain.yaml")
    assert problems(align, lookup) == []
    assert problems(reward, lookup) == []
    # the check did run on the 340B shape: one more pair per GPU does not fit
    align["spec"]["microBatchSize"] = 2
    (problem,) = problems(align, lookup)
    assert problem.startswith("spec.microBatchSize: a 341.03B-parameter model in stage dpo"), problem
    assert "zeroStage 3 over 512 GPUs, activation checkpointing needs about 109.8 GiB" in problem
    assert "try microBatchSize 1 (66.3 GiB)" in problem


@pytest.mark.parametrize("change", [{"parallelism": {"zeroStage": 0, "activationCheckpointing": True}},
                                    {"deepspeed": False}], ids=["zeroStage0", "noDeepSpeed"])
def test_the_flagship_alignjob_without_zero_is_refused_with_the_numbers(change: dict[str, Any]) -> None:
    doc = example("alignjob.yaml")
    doc["spec"].update(change)
    (problem,) = problems(doc, producers())
    # a full replica per GPU: 16 B/param of 341B parameters, whatever the 512 GPUs
    assert problem.startswith("spec.parallelism: a 341.03B-parameter model in stage dpo (spec.stages[1]: "
                              "chosen and rejected together), microBatchSize 1, sequence length 4096, "
                              f"zeroStage 0{' (deepspeed: false)' if 'deepspeed' in change else ''} over 512 GPUs, "
                              "activation checkpointing needs about 5125.2 GiB per "
                              "GPU (weights 635.2, gradients 635.2, optimizer 3811.3, activations 31.8, "
                              "logits 11.7)"), problem
    assert "the profile's GPUs have 80 GiB (90% usable = 72.0 GiB)" in problem
    assert problem.endswith("try " + ("deepspeed: true, " if "deepspeed" in change else "")
                            + "parallelism.zeroStage: 3 (66.3 GiB)"), problem


def test_the_flagship_rewardtrain_without_zero_is_refused_with_the_numbers() -> None:
    doc = example("rewardtrain.yaml")
    doc["spec"]["parallelism"] = {"zeroStage": 0}
    (problem,) = problems(doc, producers())
    assert problem.startswith("spec.parallelism: a 341.03B-parameter model with a regression head, "
                              "globalBatchSize 128, sequence length 4096, zeroStage 0 over 128 GPUs needs about "
                              "5311.2 GiB per GPU (weights 635.2, gradients 635.2, optimizer 3811.3, "
                              "activations 229.5)"), problem
    assert "logits" not in problem  # five attributes, no vocabulary
    assert problem.endswith("try parallelism.zeroStage: 3, parallelism.activationCheckpointing: true (68.5 GiB)")


def test_a_replicated_alignjob_micro_batch_too_large_names_the_field_and_what_fits() -> None:
    lookup = _Producers(_pretrain("small", SMALL))
    doc = _on(example("alignjob.yaml"), "small")
    doc["spec"]["parallelism"] = {"zeroStage": 0}  # a full replica of 0.87B per GPU
    doc["spec"]["microBatchSize"] = 16  # dpo: 32 sequences of 4096 tokens per forward
    (problem,) = problems(doc, lookup)
    assert problem.startswith("spec.microBatchSize: a 0.87B-parameter model in stage dpo"), problem
    assert "microBatchSize 16" in problem and "try microBatchSize 5" in problem
    doc["spec"]["microBatchSize"] = 4
    assert problems(doc, lookup) == []
    # sft only: one sequence per example, so a larger micro batch fits
    doc["spec"]["stages"] = [{"type": "sft"}]
    doc["spec"]["evaluation"] = {}
    doc["spec"]["microBatchSize"] = 8
    assert problems(doc, lookup) == []


def test_a_rewardtrain_step_is_each_gpus_share_of_the_global_batch() -> None:
    lookup = _Producers(_pretrain("small", SMALL))
    doc = _on(example("rewardtrain.yaml"), "small")
    doc["spec"]["parallelism"] = {"zeroStage": 0}
    assert problems(doc, lookup) == []  # 128 ratings over 16 x 8 GPUs: one each
    doc["spec"]["resources"]["nodes"] = 1  # 16 ratings of 4096 tokens per GPU in one forward
    (problem,) = problems(doc, lookup)
    assert problem.startswith("spec.training.globalBatchSize: a 0.87B-parameter model with a regression head, "
                              "globalBatchSize 128"), problem
    # 16 ratings per GPU need 68.0 GiB of activations; 104 is the largest batch at 13 per GPU
    assert "zeroStage 0 over 8 GPUs" in problem and "activations 68.0" in problem
    assert problem.endswith("try globalBatchSize 104 (68.2 GiB)"), problem
    doc["spec"]["training"]["globalBatchSize"] = 104
    assert problems(doc, lookup) == []
    # a Bradley-Terry term puts each GPU's pairs (chosen and rejected) in the same step
    doc["spec"]["training"]["bradleyTerryWeight"] = 0.1
    (problem,) = problems(doc, lookup)
    assert "(ratings and pairs in one step)" in problem and problem.endswith("try globalBatchSize 32 (64.0 GiB)")


def test_a_base_reference_after_the_first_stage_must_fit_one_gpu_unsharded() -> None:
    """``reference: base`` on stage 0 is the stage's own start (the sharded policy scores it);
    on a later stage the worker loads an unsharded bf16 copy of the base model, alone, to score pairs."""
    doc = example("alignjob.yaml")
    doc["spec"]["stages"][1]["reference"] = "base"  # the dpo stage after sft
    (problem,) = problems(doc, producers())
    assert problem.startswith("spec.stages[1].reference: reference: base loads an unsharded bf16 copy of the "
                              "341.03B-parameter base model on every GPU to score the pairs (635.2 GiB)"), problem
    assert problem.endswith("use reference: previous (the stage's own start, scored by the sharded policy)")
    doc["spec"]["stages"] = doc["spec"]["stages"][1:]  # dpo first: its base is its start
    assert problems(doc, producers()) == []


def test_finetune_memory_shards_like_pretraining_and_counts_pairs() -> None:
    dims = PRESETS["tiny"]
    full = capacity.finetune_memory(dims, sequences=4, seq_length=256)
    assert full.weights + full.gradients + full.optimizer == pytest.approx(16 * dims.total_params())
    pairs = capacity.finetune_memory(dims, sequences=8, seq_length=256)
    assert pairs.activations == pytest.approx(2 * full.activations)  # chosen and rejected in one forward
    z3 = capacity.finetune_memory(dims, sequences=4, seq_length=256, data=64, zero_stage=3)
    expect = capacity.training_memory(dims.with_(seq_length=256), tensor=1, data=64, zero_stage=3, micro_batch=4,
                                      activation_checkpointing=False)
    assert z3 == expect
    assert z3.weights + z3.gradients + z3.optimizer == pytest.approx(16 * dims.total_params() / 64)
    assert capacity.finetune_memory(dims, sequences=4, seq_length=256, vocab_logits=False).logits == 0


def test_a_pretrainjob_without_deepspeed_is_estimated_unsharded() -> None:
    """deepspeed: false trains with plain DDP whatever zeroStage says, and the estimate says so."""
    doc = example("pretrainjob.yaml")
    assert problems(doc) == []
    doc["spec"]["deepspeed"] = False
    (problem,) = problems(doc)
    assert problem.startswith("spec.parallelism: a 341.0B-parameter model with tensor 8, data 768, zeroStage 0"), problem
