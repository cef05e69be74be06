"""The synth worker's ``params`` from a SynthRound spec (the one kind not yet on API-typed params).

The pretrain, reward, align and eval workers read the API's own models (``api/worker.py``).
The synth pipeline still has its own params shape (families by name, quality knobs), so the
spec is mapped here, once; ``tests/unit/test_settings_source.py`` checks the mapping keeps
every spec field.
"""

from __future__ import annotations

from typing import Any

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
    if gen.quantization:
        generator["quantization"] = gen.quantization
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
            "judge": spec.preference.judge,
        },
        "rewardModel": reward,
        "dedup": {"exact": spec.dedup.exact, "nearThreshold": spec.dedup.near_threshold},
        "shards": spec.shards,
        "seed": spec.seed,
    }
