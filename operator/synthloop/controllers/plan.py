"""Which inputs each kind reads and which stages it runs: the kind-specific half of a pass."""

from __future__ import annotations

from typing import Any

from synthloop.api.v1alpha1.align import AlignJobSpec
from synthloop.api.v1alpha1.common import Evaluation, Source
from synthloop.api.v1alpha1.pretrain import PretrainJobSpec
from synthloop.api.v1alpha1.reward import AttributeWeights, RewardTrainSpec
from synthloop.api.v1alpha1.synth import SynthRoundSpec
from synthloop.builders import stages as S
from synthloop.builders.stages import StagePlan


def input_sources(kind: str, spec: Any) -> list[tuple[str, Source]]:
    """(role, source) of every input the kind's workers read (the parent is handled apart)."""
    pairs: list[tuple[str, Source | None]] = []
    if kind == "SynthRound":
        assert isinstance(spec, SynthRoundSpec)
        pairs = [("model", spec.generator.model), ("reward_model", spec.reward_model),
                 ("documents", spec.prompts.documents)]
    elif kind == "PretrainJob":
        assert isinstance(spec, PretrainJobSpec)
        pairs = [("tokenizer", spec.tokenizer.source), ("data", spec.data)]
    elif kind == "RewardTrain":
        assert isinstance(spec, RewardTrainSpec)
        pairs = [("model", spec.base_model), ("data", spec.data), ("preference", spec.preference_data)]
    elif kind == "AlignJob":
        assert isinstance(spec, AlignJobSpec)
        pairs = [("model", spec.base_model), ("data", spec.data), ("reward_model", spec.reward_model)]
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return [(role, src) for role, src in pairs if src is not None]


def training_stages(kind: str, spec: Any, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
    if kind == "SynthRound":
        return S.synth_stages(spec, prefix=prefix, inputs=inputs)
    if kind == "PretrainJob":
        return S.pretrain_stages(spec, prefix=prefix, inputs=inputs)
    if kind == "RewardTrain":
        return S.reward_stages(spec, prefix=prefix, inputs=inputs)
    if kind == "AlignJob":
        return S.align_stages(spec, prefix=prefix, inputs=inputs)
    raise ValueError(f"unknown kind {kind!r}")


def evaluation_of(kind: str, spec: Any) -> Evaluation | None:
    """The evaluation to run after training, or None (SynthRound, or nothing to evaluate)."""
    ev: Evaluation | None = getattr(spec, "evaluation", None)
    if ev is None or (not ev.suites and not ev.gates):
        return None
    return ev


def reward_weights(kind: str, spec: Any) -> AttributeWeights | None:
    """A RewardTrain's attribute weights: its preference accuracy uses its own scalar reward."""
    if kind == "RewardTrain":
        assert isinstance(spec, RewardTrainSpec)
        return spec.weights
    return None
