"""SynthRound: generate prompts, dialogues and preference pairs with a generator model."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from synthloop.api.v1alpha1.common import CommonSpec, Model, Source, Status, cel


class Generator(Model):
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
            ]
        }
    )

    model: Source | None = Field(default=None, description="The generator model (the teacher of this round).")
    backend: Literal["vllm", "transformers", "openai"] = Field(
        default="vllm", description="vllm (GPUs), transformers (CPU or GPU) or an OpenAI-compatible endpoint."
    )
    endpoint: str | None = Field(default=None, description="Base URL of an OpenAI-compatible server.")
    tensor_parallel: int = Field(default=8, ge=1, le=8, description="vLLM tensor parallel size.")
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=0.9, gt=0, le=1)
    batch_size: int = Field(default=64, ge=1)


class Prompts(Model):
    """How many prompts of each family of the report to make (0 or absent: none)."""

    open_qa: int = Field(default=0, ge=0, alias="openQA", description="Open QA: topics, subtopics, questions, revision.")
    writing: int = Field(default=0, ge=0, description="Writing: a document type about a topic, then revision.")
    closed_qa: int = Field(default=0, ge=0, alias="closedQA", description="Closed QA: instructions over documents.")
    math: int = Field(default=0, ge=0, description="Math problems from keywords, with known answers.")
    python: int = Field(default=0, ge=0, description="Python problems from keywords.")
    instruction_following: int = Field(default=0, ge=0, description="Prompts with verifiable constraints.")
    two_turn: int = Field(default=0, ge=0, description="User, assistant, user prompts.")
    topics: list[str] = Field(default_factory=list, description="Seed macro topics (default: built-in).")
    keywords: list[str] = Field(default_factory=list, description="Seed math/Python keywords (default: built-in).")
    documents: Source | None = Field(default=None, description="JSONL documents ({text}) for closed QA.")


class Dialogues(Model):
    count: int = Field(default=0, ge=0, description="Dialogues to simulate.")
    turns: int = Field(default=3, ge=1, le=8, description="User turns per dialogue.")
    personas: list[str] = Field(default_factory=list, description="User personas (default: built-in).")


class Preference(Model):
    responses_per_prompt: int = Field(default=4, ge=2, le=32)
    include_reference: bool = Field(
        default=False, description="Add a verified reference answer as a candidate where one is known."
    )
    judge: Literal["verifierThenReward", "verifier", "reward"] = Field(
        default="verifierThenReward", description="How responses are ranked."
    )


class RewardFilter(Model):
    threshold: float | None = Field(default=None, description="Drop data whose scalar reward is below this.")
    weights: dict[str, float] = Field(
        default_factory=dict, description="Attribute weights of the scalar reward (default: the reward model's)."
    )


class Dedup(Model):
    exact: bool = True
    near_threshold: float = Field(default=0.9, gt=0, le=1, description="Jaccard similarity above which two are duplicates.")


class SynthRoundSpec(CommonSpec):
    generator: Generator
    prompts: Prompts = Field(default_factory=Prompts)
    dialogues: Dialogues = Field(default_factory=Dialogues)
    preference: Preference = Field(default_factory=Preference)
    reward_model: Source | None = Field(default=None, description="Reward model used as judge and filter.")
    reward_filter: RewardFilter = Field(default_factory=RewardFilter)
    dedup: Dedup = Field(default_factory=Dedup)
    shards: int = Field(default=1, ge=1, le=1024, description="Parallel generation shards (Indexed Job).")
    seed: int = Field(default=0, ge=0)

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.resources) || self.resources.nodes == 1",
                    "a SynthRound scales with shards, not nodes: set resources.nodes to 1",
                ),
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
