"""synthloop.io/v1alpha1: the four kinds and their shared types."""

from pydantic import BaseModel

from synthloop.api.v1alpha1.align import AlignJob, AlignJobSpec, Stage
from synthloop.api.v1alpha1.common import (
    API_VERSION,
    GROUP,
    KINDS,
    VERSION,
    Condition,
    Evaluation,
    Gate,
    ObjectRef,
    Output,
    Resources,
    Source,
    Status,
)
from synthloop.api.v1alpha1.pretrain import PretrainJob, PretrainJobSpec
from synthloop.api.v1alpha1.reward import RewardTrain, RewardTrainSpec
from synthloop.api.v1alpha1.synth import SynthRound, SynthRoundSpec

RESOURCES: dict[str, type[BaseModel]] = {
    "PretrainJob": PretrainJob,
    "SynthRound": SynthRound,
    "RewardTrain": RewardTrain,
    "AlignJob": AlignJob,
}
PLURALS = {
    "PretrainJob": "pretrainjobs",
    "SynthRound": "synthrounds",
    "RewardTrain": "rewardtrains",
    "AlignJob": "alignjobs",
}
SHORT_NAMES = {
    "PretrainJob": ["ptj"],
    "SynthRound": ["sr"],
    "RewardTrain": ["rwt"],
    "AlignJob": ["aj"],
}

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "PLURALS",
    "RESOURCES",
    "SHORT_NAMES",
    "VERSION",
    "AlignJob",
    "AlignJobSpec",
    "Condition",
    "Evaluation",
    "Gate",
    "ObjectRef",
    "Output",
    "PretrainJob",
    "PretrainJobSpec",
    "Resources",
    "RewardTrain",
    "RewardTrainSpec",
    "Source",
    "Stage",
    "Status",
    "SynthRound",
    "SynthRoundSpec",
]
