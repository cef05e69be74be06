"""SynthRound worker parameters (light: pydantic only, so the operator can validate specs).

The operator copies fields from the CR spec, so every model accepts camelCase aliases as well
as snake_case names. Unknown fields are errors: a typo in a spec must not silently do nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

#: Prompt families of the report, by their spec names.
FAMILY_NAMES: tuple[str, ...] = (
    "openQA", "writing", "closedQA", "math", "python", "instructionFollowing", "twoTurn",
)
BACKENDS: tuple[str, ...] = ("vllm", "transformers", "openai")


class _Params(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class GeneratorParams(_Params):
    """Which engine generates, and how it samples."""

    backend: Literal["vllm", "transformers", "openai"] = "transformers"
    #: A model URI/dir overriding ``inputs.model``; for ``openai`` the model name to request.
    model: str | None = None
    #: Base URL of an OpenAI-compatible server (``openai`` backend only).
    endpoint: str | None = None
    #: Env var holding the bearer token for ``endpoint`` (never the token itself).
    api_key_env: str = "OPENAI_API_KEY"
    tensor_parallel: int = Field(default=1, ge=1)
    #: vLLM weight quantization (``fp8``: half the bytes of bf16 weights).
    quantization: Literal["fp8"] | None = None
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.7, ge=0.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    batch_size: int = Field(default=16, ge=1)
    #: openai: concurrent requests, per-request timeout and retry budget.
    concurrency: int = Field(default=8, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    dtype: str | None = None
    #: transformers on CPU: torch threads while generating (None: torch's default).
    cpu_threads: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _endpoint_for_openai(self) -> GeneratorParams:
        if self.backend == "openai" and not self.endpoint:
            raise ValueError("generator.endpoint is required when generator.backend is 'openai'")
        return self


class FamilyParams(_Params):
    """One prompt family: how many prompts, plus optional seed material."""

    count: int = Field(default=0, ge=0)
    topics: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    #: Closed QA: a JSONL of ``{"text"}`` documents (else ``inputs.documents``, else built-in).
    documents: str | None = None
    #: Verifiable instructions per prompt (instruction following) — 1..3 in the report.
    instructions_per_prompt: int = Field(default=1, ge=1, le=5)
    #: Math/Python difficulty levels to draw from (1 = small numbers, one step).
    levels: list[int] = Field(default_factory=lambda: [1, 2, 3])

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[int]) -> list[int]:
        if not value or any(v not in (1, 2, 3) for v in value):
            raise ValueError(f"levels must be a non-empty list drawn from 1, 2, 3; got {value}")
        return value


class DialogueParams(_Params):
    count: int = Field(default=0, ge=0)
    turns: int = Field(default=3, ge=1, le=8)
    personas: list[str] = Field(default_factory=list)
    #: Greedy decoding for dialogues, as in the report.
    temperature: float = Field(default=0.0, ge=0.0)


class PreferenceParams(_Params):
    responses_per_prompt: int = Field(default=2, ge=1)
    #: Extra generators (model URIs or dirs) whose responses join the candidates.
    models: list[str] = Field(default_factory=list)
    #: Add the template-written ground-truth answer (math, python) as a candidate.
    include_reference: bool = False
    #: Ranking: verifier first then reward model (the report), verifier only, or reward only.
    judge: Literal["verifierThenReward", "verifier", "reward"] = "verifierThenReward"
    #: Make preference pairs at all (SFT rows are always made).
    enabled: bool = True


class RewardParams(_Params):
    #: A reward model URI/dir overriding ``inputs.reward_model``.
    model: str | None = None
    #: Attribute weights of the scalar reward (None: the weights stored with the model).
    weights: dict[str, float] | None = None
    #: Responses/dialogues whose scalar reward is below this are dropped (None: no filter).
    threshold: float | None = None


class DedupParams(_Params):
    exact: bool = True
    #: Jaccard similarity of word shingles above which two prompts are near duplicates.
    near_threshold: float | None = Field(default=0.9, gt=0.0, le=1.0)


class QualityParams(_Params):
    #: Unanswerable prompts (real-time, personal, physical actions) paired with refusals.
    refusals: int = Field(default=0, ge=0)
    #: Drop candidate responses that refuse an answerable prompt.
    drop_refusals: bool = True
    #: When the generator's output for a prompt-building step does not parse, use our
    #: template instead (counted as ``template_fallbacks``) rather than losing the prompt.
    template_fallback: bool = True
    #: Python verifier limits.
    exec_timeout_s: float = Field(default=5.0, gt=0)
    exec_memory_mb: int = Field(default=512, ge=64)


class SynthParams(_Params):
    """``params`` of a ``synth`` / ``synth-merge`` worker config."""

    generator: GeneratorParams = Field(default_factory=GeneratorParams)
    families: dict[str, FamilyParams] = Field(default_factory=dict)
    dialogues: DialogueParams = Field(default_factory=DialogueParams)
    preference: PreferenceParams = Field(default_factory=PreferenceParams)
    reward_model: RewardParams = Field(default_factory=RewardParams)
    dedup: DedupParams = Field(default_factory=DedupParams)
    quality: QualityParams = Field(default_factory=QualityParams)
    shards: int = Field(default=1, ge=1)
    seed: int = 0
    system_prompt: str = ""

    @field_validator("families", mode="before")
    @classmethod
    def _families(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(  # noqa: TRY004 - pydantic turns only ValueError into a field error
                f"families must be a mapping of family name to count, got {type(value).__name__}")
        out: dict[str, Any] = {}
        for name, spec in value.items():
            if name not in FAMILY_NAMES:
                raise ValueError(
                    f"families.{name}: unknown prompt family {name!r}; expected one of "
                    f"{', '.join(FAMILY_NAMES)}"
                )
            out[name] = {"count": spec} if isinstance(spec, int) else spec
        return out

    def family_counts(self) -> dict[str, int]:
        return {name: spec.count for name, spec in self.families.items() if spec.count}


def shard_range(total: int, *, index: int, shards: int) -> range:
    """Global item indices of shard ``index`` of ``shards``: contiguous, balanced, deterministic."""
    if shards < 1 or not 0 <= index < shards:
        raise ValueError(f"shard index {index} out of range for {shards} shard(s)")
    base, extra = divmod(total, shards)
    start = index * base + min(index, extra)
    return range(start, start + base + (1 if index < extra else 0))
