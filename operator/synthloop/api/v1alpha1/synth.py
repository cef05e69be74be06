"""SynthRound: generate prompts, dialogues and preference pairs with a generator model."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from synthloop import catalog
from synthloop.api.v1alpha1.common import (
    CommonSpec,
    Model,
    Source,
    Status,
    cel,
    cel_list,
    ref_kind_rule,
)
from synthloop.api.v1alpha1.pod import PodSettings
from synthloop.api.v1alpha1.reward import ATTRIBUTES


class SecretKeyRef(Model):
    """One key of a Secret in the run's namespace."""

    name: str = Field(max_length=253, description="Name of the Secret.")
    key: str = Field(default="apiKey", max_length=253, description="Key in the Secret (default apiKey).")


class Generator(Model):
    """The model that generates this round's data, and how it samples."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.backend != 'openai' || has(self.endpoint)",
                    "backend openai needs an endpoint",
                ),
                cel(
                    "self.backend == 'openai' || has(self.model)",
                    "backends vllm and transformers need a model",
                ),
                cel("self.backend == 'vllm' || !has(self.quantization)",
                    "quantization is a vLLM option: set backend vllm", field_path=".quantization"),
                ref_kind_rule("model", catalog.MODEL_PRODUCERS, optional=True, what="the kinds that output a model"),
            ]
        }
    )

    model: Source | None = Field(
        default=None,
        description="The generator model (the teacher of this round); for openai, the endpoint's default model.",
    )
    backend: Literal["vllm", "transformers", "openai"] = Field(
        default="vllm", description="vllm (GPUs), transformers (CPU or GPU) or an OpenAI-compatible endpoint."
    )
    endpoint: str | None = Field(
        default=None, max_length=2048, description="Base URL of an OpenAI-compatible server (NIM, vLLM serve...)."
    )
    api_key_secret: SecretKeyRef | None = Field(
        default=None,
        description="openai: the Secret key holding the endpoint's bearer token (injected as OPENAI_API_KEY).",
    )
    tensor_parallel: int = Field(default=8, ge=1, le=8, description="vLLM tensor parallel size (GPUs per replica).")
    quantization: Literal["fp8"] | None = Field(
        default=None,
        description="vLLM weight quantization: fp8 halves the weights of a bf16 model (340B fits 8x80GB).",
    )
    parameters_billions: float | None = Field(
        default=None, gt=0,
        description="Parameter count of the generator in billions, for the capacity check (known for a "
        "PretrainJob's model without it).",
    )
    max_tokens: int = Field(default=512, ge=1, description="Most tokens generated per response.")
    temperature: float = Field(default=0.7, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(default=0.9, gt=0, le=1, description="Nucleus sampling probability mass.")
    batch_size: int = Field(default=64, ge=1, description="Prompts per generation batch.")


PROMPT_FAMILIES = ("openQA", "writing", "closedQA", "math", "python", "instructionFollowing", "twoTurn")


class Prompts(Model):
    """How many prompts of each family of the report to make (0 or absent: none)."""

    open_qa: int = Field(default=0, ge=0, alias="openQA", description="Open QA: topics, subtopics, questions, revision.")
    writing: int = Field(default=0, ge=0, description="Writing: a document type about a topic, then revision.")
    closed_qa: int = Field(default=0, ge=0, alias="closedQA", description="Closed QA: instructions over documents.")
    math: int = Field(default=0, ge=0, description="Math problems from keywords, with known answers.")
    python: int = Field(default=0, ge=0, description="Python problems from keywords.")
    instruction_following: int = Field(default=0, ge=0, description="Prompts with verifiable constraints.")
    two_turn: int = Field(default=0, ge=0, description="User, assistant, user prompts.")
    refusals: int = Field(
        default=0, ge=0, description="Unanswerable prompts (real-time, personal, physical actions) paired with a "
        "refusal as their SFT response and as the chosen response of a pair."
    )
    topics: list[str] = Field(default_factory=list, description="Seed macro topics (default: built-in).")
    keywords: list[str] = Field(default_factory=list, description="Seed math/Python keywords (default: built-in).")
    documents: Source | None = Field(default=None, description="JSONL documents ({text}) for closed QA (a uri).")


class Dialogues(Model):
    """Multi-turn dialogues: the generator plays both the user (a persona) and the assistant."""

    count: int = Field(default=0, ge=0, description="Dialogues to simulate.")
    turns: int = Field(default=3, ge=1, le=8, description="User turns per dialogue.")
    personas: list[str] = Field(default_factory=list, description="User personas (default: built-in).")


class Preference(Model):
    """Preference pairs: several responses per prompt, ranked into chosen and rejected."""

    responses_per_prompt: int = Field(default=4, ge=2, le=32, description="Candidate responses per prompt.")
    include_reference: bool = Field(
        default=False, description="Add a verified reference answer as a candidate where one is known."
    )
    judge: Literal["verifierThenReward", "verifier", "reward"] = Field(
        default="verifierThenReward", description="How responses are ranked."
    )


class RewardFilter(Model):
    """Drop generated data the reward model scores low."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [
            cel(f"!has(self.weights) || self.weights.all(k, k in {cel_list(ATTRIBUTES)})",
                f"weights: keys must be reward attributes: {', '.join(ATTRIBUTES)}", field_path=".weights"),
        ]}
    )

    threshold: float | None = Field(default=None, description="Drop data whose scalar reward is below this.")
    weights: dict[str, float] = Field(
        default_factory=dict, max_length=5,
        description="Attribute weights of the scalar reward (default: the reward model's)."
    )


class Dedup(Model):
    """Remove duplicate prompts."""

    exact: bool = Field(default=True, description="Drop exact duplicates (after normalising whitespace and case).")
    near_threshold: float = Field(default=0.9, gt=0, le=1, description="Jaccard similarity above which two are duplicates.")


class SynthSettings(Model):
    """What the synth worker reads (the same fields on the spec and in the pod's params)."""

    generator: Generator = Field(description="The model that generates, and how it samples.")
    prompts: Prompts = Field(default_factory=Prompts, description="Prompts to make, per family of the report.")
    dialogues: Dialogues = Field(default_factory=Dialogues, description="Multi-turn dialogues to simulate.")
    preference: Preference = Field(default_factory=Preference, description="How preference pairs are made.")
    reward_filter: RewardFilter = Field(default_factory=RewardFilter, description="Drop data scored low.")
    dedup: Dedup = Field(default_factory=Dedup, description="Duplicate removal.")
    shards: int = Field(default=1, ge=1, le=1024, description="Parallel generation shards (Indexed Job).")
    seed: int = Field(default=0, ge=0, description="Seed of every random choice of the round.")


class SynthRoundSpec(CommonSpec, SynthSettings, PodSettings):
    """Generate a round of synthetic data: prompts, dialogues and preference pairs."""

    reward_model: Source | None = Field(default=None, description="Reward model used as judge and filter.")

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.resources) || self.resources.nodes == 1",
                    "a SynthRound scales with shards, not nodes: set resources.nodes to 1",
                ),
                cel(
                    "(has(self.prompts) && (" + " + ".join(
                        f"(has(self.prompts.{f}) ? self.prompts.{f} : 0)" for f in PROMPT_FAMILIES
                    ) + ") > 0) || (has(self.dialogues) && has(self.dialogues.count) && self.dialogues.count > 0)",
                    "nothing to generate: set a count in prompts (" + ", ".join(PROMPT_FAMILIES)
                    + ") or dialogues.count",
                    field_path=".prompts",
                ),
                ref_kind_rule("rewardModel", catalog.REWARD_PRODUCERS, optional=True,
                              what="the kind that outputs a reward model"),
                cel("has(self.rewardModel) || !has(self.rewardFilter) || !has(self.rewardFilter.threshold)",
                    "rewardFilter.threshold needs spec.rewardModel (the scores it filters on)",
                    field_path=".rewardFilter.threshold"),
                cel("has(self.rewardModel) || !has(self.preference) || !has(self.preference.judge) "
                    "|| self.preference.judge != 'reward'",
                    "preference.judge reward needs spec.rewardModel", field_path=".preference.judge"),
                cel("!has(self.prompts) || !has(self.prompts.documents) || !has(self.prompts.documents.fromRef)",
                    "prompts.documents: no kind outputs documents; give a uri (s3:// or file://)",
                    field_path=".prompts.documents"),
            ]
        }
    )


class SynthRound(Model):
    """A round of synthetic data: prompts, dialogues and preference pairs from a generator."""

    api_version: Literal["synthloop.io/v1alpha1"] = "synthloop.io/v1alpha1"
    kind: Literal["SynthRound"] = "SynthRound"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: SynthRoundSpec
    status: Status | None = None
