"""The envelope the operator hands every worker pod: which run, where to read, where to write.

Kept in ``api`` because it is the contract between the two halves of the system: builders
produce it (as a JSON env var) and ``synthloop-worker`` consumes it. Task-specific parameters
travel in ``params``; each task's params model below is made of the API's own types (the
settings mixins of ``api/v1alpha1``), so a setting is declared once, for the CRD and the pod.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthloop.api.v1alpha1.align import AlignJobSpec, AlignSettings, Stage
from synthloop.api.v1alpha1.common import EvalSettings, EvalSuite, Evaluation
from synthloop.api.v1alpha1.pretrain import PretrainJobSpec, PretrainSettings
from synthloop.api.v1alpha1.reward import AttributeWeights, RewardSettings, RewardTrainSpec
from synthloop.api.v1alpha1.synth import SynthRoundSpec, SynthSettings

CONFIG_ENV = "SYNTHLOOP_WORKER_CONFIG"
TASKS = ("synth", "synth-merge", "pretrain", "reward-train", "align", "eval")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip().isdigit() else default


class WorkerConfig(BaseModel):
    """One worker invocation. ``output`` is the run prefix ``s3://<bucket>/<ns>/<kind>/<name>/<uid>/``."""

    model_config = ConfigDict(extra="forbid")

    task: str
    namespace: str = "default"
    kind: str = ""
    name: str = ""
    uid: str = ""
    output: str
    inputs: dict[str, str] = Field(default_factory=dict)
    # Expected sha256 of input objects by URI, as their producers recorded them: every download
    # of one of these is checked, and a mismatch fails the run (the object was corrupted).
    checksums: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    shard_index: int = Field(default_factory=lambda: _env_int("JOB_COMPLETION_INDEX", 0), ge=0)
    num_shards: int = Field(default=1, ge=1)
    resume_from: str | None = None
    spec_hash: str = ""
    image: str = ""
    workdir: str = Field(default_factory=lambda: os.environ.get("SYNTHLOOP_WORKDIR", ""))

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(f"unknown task {value!r}; expected one of {', '.join(TASKS)}")
        return value

    def scratch(self) -> Path:
        """A local working directory for this invocation (created on first use)."""
        if not self.workdir:
            self.workdir = tempfile.mkdtemp(prefix=f"synthloop-{self.task}-")
        path = Path(self.workdir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def input(self, role: str) -> str:
        """The URI of input ``role``; a clear error when the operator did not provide it."""
        try:
            return self.inputs[role]
        except KeyError:
            have = ", ".join(sorted(self.inputs)) or "none"
            raise ValueError(
                f"worker {self.task}: missing input {role!r} (inputs given: {have})"
            ) from None


def load_worker_config(source: str | None = None) -> WorkerConfig:
    """Load from a path, or from ``$SYNTHLOOP_WORKER_CONFIG`` (a path or inline JSON)."""
    raw = source if source is not None else os.environ.get(CONFIG_ENV, "")
    if not raw:
        raise SystemExit(f"no worker config: pass --config PATH or set {CONFIG_ENV}")
    text = raw if raw.lstrip().startswith("{") else Path(raw).read_text()
    data = json.loads(text)
    # The completion index is per pod; the config is per Job, so the env wins when present.
    if "JOB_COMPLETION_INDEX" in os.environ:
        data["shard_index"] = _env_int("JOB_COMPLETION_INDEX", 0)
    return WorkerConfig.model_validate(data)


class PretrainParams(PretrainSettings):
    """``params`` of a ``pretrain`` Job: the spec's pretraining settings."""

    @classmethod
    def of(cls, spec: PretrainJobSpec) -> PretrainParams:
        return cls.model_validate(spec.model_dump(include=set(PretrainSettings.model_fields)))


class RewardParams(RewardSettings):
    """``params`` of a ``reward-train`` Job: the spec's reward settings."""

    @classmethod
    def of(cls, spec: RewardTrainSpec) -> RewardParams:
        return cls.model_validate(spec.model_dump(include=set(RewardSettings.model_fields)))


class AlignParams(AlignSettings):
    """``params`` of an ``align`` Job: one stage of the spec (RPO iterations inside it)."""

    stages: list[Stage] = Field(min_length=1, max_length=16, description="The stages this Job runs, in order.")

    @classmethod
    def of(cls, spec: AlignJobSpec, stage: Stage) -> AlignParams:
        settings = spec.model_dump(include=set(AlignSettings.model_fields))
        return cls.model_validate({**settings, "stages": [stage.model_dump()]})


class EvalParams(EvalSettings):
    """``params`` of an ``eval`` Job: the suites (gates stay with the operator, which promotes)."""

    suites: list[EvalSuite] = Field(min_length=1, description="The spec's evaluation suites.")
    seed: int = Field(default=0, ge=0, description="Seed of sampled prompts and few-shot examples.")
    reward_weights: dict[str, float] | None = Field(
        default=None, description="Attribute weights of the scalar reward (default: the reward model's own)."
    )

    @classmethod
    def of(cls, evaluation: Evaluation, *, seed: int = 0, preference_uri: str | None = None,
           reward_weights: AttributeWeights | None = None) -> EvalParams:
        """A ``preferenceAccuracy`` suite without tasks scores the run's own held-out pairs
        (``preference_uri``, a RewardTrain's ``preferenceData``)."""
        suites = [s.model_copy(update={"tasks": [preference_uri]})
                  if s.type == "preferenceAccuracy" and not s.tasks and preference_uri else s
                  for s in evaluation.suites]
        settings = evaluation.model_dump(include=set(EvalSettings.model_fields))
        weights = reward_weights.model_dump() if reward_weights is not None else None
        return cls.model_validate({**settings, "suites": [s.model_dump() for s in suites], "seed": seed,
                                   "reward_weights": weights})


class SynthParams(SynthSettings):
    """``params`` of the ``synth`` shards and the ``synth-merge`` Job: the spec's synth settings
    (inputs such as the generator and reward models arrive resolved in ``inputs``)."""

    @classmethod
    def of(cls, spec: SynthRoundSpec) -> SynthParams:
        return cls.model_validate(spec.model_dump(include=set(SynthSettings.model_fields)))


TASK_PARAMS: dict[str, type[BaseModel]] = {
    "synth": SynthParams, "synth-merge": SynthParams, "pretrain": PretrainParams, "reward-train": RewardParams,
    "align": AlignParams, "eval": EvalParams,
}
