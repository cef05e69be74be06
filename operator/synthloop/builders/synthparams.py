"""Worker ``params`` from a CR spec: the task-specific half of each worker config.

The operator copies spec fields (camelCase, as on the wire) into the shape each worker's own
params model validates, so a field the worker does not know is caught by its model, not here.
"""

from __future__ import annotations

from typing import Any

from synthloop.api.v1alpha1.align import AlignJobSpec, Stage
from synthloop.api.v1alpha1.common import Evaluation
from synthloop.api.v1alpha1.pretrain import PretrainJobSpec
from synthloop.api.v1alpha1.reward import RewardTrainSpec
from synthloop.api.v1alpha1.synth import SynthRoundSpec

TOPIC_FAMILIES = ("openQA", "writing", "closedQA", "instructionFollowing", "twoTurn")
KEYWORD_FAMILIES = ("math", "python")


def synth_params(spec: SynthRoundSpec) -> dict[str, Any]:
    """``SynthParams`` (``synthloop.workers.synth.params``) for the shards and the merge."""
    gen = spec.generator
    generator: dict[str, Any] = {
        "backend": gen.backend,
        "tensorParallel": gen.tensor_parallel,
        "maxTokens": gen.max_tokens,
        "temperature": gen.temperature,
        "topP": gen.top_p,
        "batchSize": gen.batch_size,
    }
    if gen.endpoint:
        generator["endpoint"] = gen.endpoint
    prompts = spec.prompts.wire()
    families: dict[str, Any] = {}
    for family in TOPIC_FAMILIES + KEYWORD_FAMILIES:
        count = int(prompts.get(family, 0))
        if count <= 0:
            continue
        entry: dict[str, Any] = {"count": count}
        if family in TOPIC_FAMILIES and spec.prompts.topics:
            entry["topics"] = list(spec.prompts.topics)
        if family in KEYWORD_FAMILIES and spec.prompts.keywords:
            entry["keywords"] = list(spec.prompts.keywords)
        families[family] = entry
    reward: dict[str, Any] = {}
    if spec.reward_filter.threshold is not None:
        reward["threshold"] = spec.reward_filter.threshold
    if spec.reward_filter.weights:
        reward["weights"] = dict(spec.reward_filter.weights)
    return {
        "generator": generator,
        "families": families,
        "dialogues": {
            "count": spec.dialogues.count,
            "turns": spec.dialogues.turns,
            "personas": list(spec.dialogues.personas),
        },
        "preference": {
            "responsesPerPrompt": spec.preference.responses_per_prompt,
            "includeReference": spec.preference.include_reference,
        },
        "rewardModel": reward,
        "dedup": {"exact": spec.dedup.exact, "nearThreshold": spec.dedup.near_threshold},
        "shards": spec.shards,
        "seed": spec.seed,
    }


def pretrain_params(spec: PretrainJobSpec) -> dict[str, Any]:
    wire = spec.wire()
    out: dict[str, Any] = {k: wire[k] for k in ("model", "tokenizer", "phases", "batchRamp", "parallelism", "checkpoint", "seed") if k in wire}
    # The tokenizer source is an input (resolved to a URI), not a param.
    if isinstance(out.get("tokenizer"), dict):
        out["tokenizer"] = {k: v for k, v in out["tokenizer"].items() if k != "source"}
    return out


def reward_params(spec: RewardTrainSpec) -> dict[str, Any]:
    wire = spec.wire()
    return {"weights": wire["weights"], "training": wire["training"]}


def align_stage_params(spec: AlignJobSpec, stage: Stage) -> dict[str, Any]:
    """One Job per stage: the worker gets a one-element ``stages`` list (RPO iterations inside)."""
    return {"stages": [stage.wire()], "seed": spec.seed}


def eval_params(
    evaluation: Evaluation,
    *,
    preference_uri: str | None = None,
    reward_weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The suites to run (gates stay with the operator: it decides promotion).

    A ``preferenceAccuracy`` suite without tasks scores the run's own held-out pairs
    (``preference_uri``, a RewardTrain's ``preferenceData``).
    """
    suites = []
    for suite in evaluation.suites:
        wire = suite.wire()
        if suite.type == "preferenceAccuracy" and not suite.tasks and preference_uri:
            wire["tasks"] = [preference_uri]
        suites.append(wire)
    out: dict[str, Any] = {"suites": suites}
    if reward_weights:
        out["rewardWeights"] = dict(reward_weights)
    return out
