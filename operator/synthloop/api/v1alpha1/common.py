"""Types shared by all four kinds: references, resources, gates, conditions, status.

These pydantic models are the single source of truth for the CRDs (``synthloop crds``
generates ``crds/`` from them). Field descriptions are what ``kubectl explain`` shows.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "synthloop.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KINDS = ("PretrainJob", "SynthRound", "RewardTrain", "AlignJob")
Kind = Literal["PretrainJob", "SynthRound", "RewardTrain", "AlignJob"]

ConditionType = Literal["InputsReady", "Running", "Evaluated", "Promoted", "Failed"]
Phase = Literal[
    "Pending", "WaitingForInputs", "Running", "Evaluating", "Succeeded", "Promoted", "Rejected", "Failed"
]
DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


def cel(rule: str, message: str, *, field_path: str | None = None) -> dict[str, Any]:
    """One ``x-kubernetes-validations`` entry (a CEL rule checked by the apiserver).

    ``field_path`` (e.g. ``.data.fromRef.kind``) is the field the apiserver names in its error.
    """
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def cel_list(values: tuple[str, ...] | list[str]) -> str:
    """A CEL list literal of strings: ``['a', 'b']``."""
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def ref_kind_rule(field: str, kinds: tuple[str, ...], *, optional: bool, what: str) -> dict[str, Any]:
    """A rule that ``<field>.fromRef.kind`` names a kind that produces what the field needs."""
    guard = f"!has(self.{field}) || " if optional else ""
    return cel(
        f"{guard}!has(self.{field}.fromRef) || self.{field}.fromRef.kind in {cel_list(kinds)}",
        f"{field}.fromRef.kind must be {' or '.join(kinds)}: {what}",
        field_path=f".{field}",
    )


class Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True
    )

    def wire(self) -> dict[str, Any]:
        """The camelCase dict a CR holds (defaults included, unset optionals left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @model_validator(mode="after")
    def _cel_rules(self) -> Model:
        """Enforce this type's CEL rules in Python too, so a bad spec fails before it is applied.

        The rule text is the one in the CRD (``x-kubernetes-validations``): one source, two
        enforcers (the apiserver at admission, pydantic in the CLI, tests and the operator).
        """
        rules = _rules_of(type(self))
        if rules:
            data = self.wire()
            for rule, message, program in rules:
                if not _evaluate(program, data):
                    raise ValueError(f"{message} (rule: {rule})")
        return self


@cache
def _rules_of(cls: type[BaseModel]) -> tuple[tuple[str, str, Any], ...]:
    extra = cls.model_config.get("json_schema_extra")
    entries = extra.get("x-kubernetes-validations", []) if isinstance(extra, dict) else []
    if not isinstance(entries, list) or not entries:
        return ()
    import celpy  # light, pure Python; imported only by types that carry rules

    env = celpy.Environment()
    rules: list[tuple[str, str, Any]] = []
    for entry in entries:
        assert isinstance(entry, dict)
        rule, message = str(entry["rule"]), str(entry["message"])
        rules.append((rule, message, env.program(env.compile(rule))))
    return tuple(rules)


def _evaluate(program: Any, data: dict[str, Any]) -> bool:
    from celpy.adapter import json_to_cel

    result = program.evaluate({"self": json_to_cel(data)})
    if isinstance(result, Exception):
        raise ValueError(f"CEL evaluation failed: {result}")  # noqa: TRY004 - pydantic reports ValueError
    return bool(result)


class ObjectRef(Model):
    """A synthloop object in the same namespace whose output this one consumes."""

    kind: Kind = Field(description="Kind of the producer: PretrainJob, SynthRound, RewardTrain or AlignJob.")
    name: str = Field(description="Name of the producer in this namespace.", pattern=DNS_NAME, max_length=63)


class Source(Model):
    """Where an input comes from. Exactly one of fromRef, promoted, uri."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    # Sum, not a list filter: the apiserver's CEL cost budget counts a filter per
                    # Source in every gate of every list, which exceeds it.
                    "(has(self.fromRef) ? 1 : 0) + (has(self.promoted) ? 1 : 0) + (has(self.uri) ? 1 : 0) == 1",
                    "exactly one of fromRef, promoted or uri must be set",
                )
            ]
        }
    )

    from_ref: ObjectRef | None = Field(
        default=None, description="Wait until this producer has Succeeded and use its output."
    )
    promoted: str | None = Field(
        default=None,
        description=(
            "Wait until a model was promoted under this name in this namespace and use it "
            "(weak-to-strong). `<namespace>/<name>` names another namespace's promotion, which "
            "resolves only when its producer lists this namespace in spec.promotion.shareWith."
        ),
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=127,
    )
    uri: str | None = Field(
        default=None,
        description="An artifact that exists outside the loop, e.g. s3://synthloop/models/mixtral-8x7b/.",
        pattern=r"^(s3|file)://.+",
    )


class Resources(Model):
    """Hardware for the run's pods. Profiles (labels, tolerations, GPUs) live in operator config."""

    profile: str = Field(default="dgx-h100", description="Hardware profile name from the operator config.")
    nodes: int = Field(default=1, ge=1, le=4096, description="Number of nodes; one pod per node.")
    gpus_per_node: int = Field(default=8, ge=0, le=8, description="GPUs requested per pod (nvidia.com/gpu).")
    queue: str | None = Field(
        default=None,
        description="Kueue LocalQueue name; the Job is created suspended for gang admission.",
    )
    priority_class_name: str | None = Field(default=None, description="PriorityClass of the pods.")
    priority_class: str | None = Field(
        default=None,
        description="Kueue WorkloadPriorityClass (label kueue.x-k8s.io/priority-class): "
        "orders the queue and lets a higher-priority run preempt a lower one.",
    )
    rdma: bool = Field(default=False, description="Request the profile's RDMA resource and NCCL IB settings.")
    image: str | None = Field(default=None, description="Override the worker image for this run.")


class Gate(Model):
    """One promotion gate, checked against the evaluation's metrics."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.min) || has(self.maxRegression) || (has(self.mustBeatParent) && self.mustBeatParent)",
                    "a gate needs min, maxRegression or mustBeatParent",
                ),
                cel(
                    "!has(self.maxRegression) || has(self.baseline)",
                    "maxRegression needs a baseline to compare against",
                ),
            ]
        }
    )

    metric: str = Field(description="Metric name from the evaluation, e.g. ifeval.prompt_strict or mc.arithmetic.acc.")
    min: float | None = Field(default=None, description="Absolute bound: metric >= min.")
    max_regression: float | None = Field(
        default=None, ge=0, description="The metric may fall at most this much below the baseline's."
    )
    baseline: Source | None = Field(default=None, description="The model whose metric maxRegression compares to.")
    must_beat_parent: bool | None = Field(
        default=None, description="The metric must be strictly greater than the parent model's."
    )


def _task_rules() -> Any:  # JSON for json_schema_extra
    """Per suite type: every task is a built-in name from the catalog or a JSONL file URI."""
    from synthloop import catalog

    rules = []
    for suite_type, names in catalog.EVAL_TASKS.items():
        files = " || ".join(f"t.startsWith('{s}')" for s in catalog.URI_SCHEMES)
        builtin = f"t in {cel_list(names)} || " if names else ""
        expected = (f"one of {', '.join(names)}, or " if names else "") + "an s3:// or file:// JSONL file"
        rules.append(cel(
            f"self.type != '{suite_type}' || !has(self.tasks) || self.tasks.all(t, {builtin}{files})",
            f"tasks: a {suite_type} task must be {expected}",
            field_path=".tasks",
        ))
    return rules


class EvalSuite(Model):
    """One evaluation: multiple-choice log-likelihood, IFEval-style, or reward-model win rate."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _task_rules()})

    type: Literal["multipleChoice", "ifeval", "rewardWinRate", "preferenceAccuracy", "generative", "lmEval"] = Field(
        description="multipleChoice (k-shot log-likelihood), ifeval (verifiable instructions), "
        "rewardWinRate (against the parent), preferenceAccuracy (reward models), generative "
        "(k-shot greedy answers scored by verifiers: gen.<task>.acc and _stderr) or lmEval "
        "(lm-evaluation-harness tasks: lmeval.<task>.<metric>)."
    )
    tasks: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list, max_length=64,
        description="Built-in task names (multipleChoice: arithmetic, colors; ifeval: synthetic; "
        "rewardWinRate: arithmetic) or s3:// / file:// JSONL task files. Empty: the built-in ones.",
    )
    k_shot: int = Field(default=0, ge=0, le=25, description="Few-shot examples per question.")
    limit: int | None = Field(default=None, ge=1, description="Evaluate at most this many samples per task.")
    num_fewshot: int | None = Field(
        default=None, ge=0, le=25, description="lmEval: few-shot examples (default: each task's own)."
    )
    task_dir: str | None = Field(
        default=None, pattern=r"^(s3|file)://.+", max_length=512,
        description="lmEval: a prefix of lm-eval task YAMLs and their data (${TASK_DIR} in a YAML is "
        "this folder on the pod); tasks named here are looked up there before lm-eval's built-in ones.",
    )


class EvalSettings(Model):
    """How the eval worker generates (the same fields on the spec and in the pod)."""

    max_new_tokens: int = Field(default=64, ge=1, le=32768, description="Most tokens generated per answer.")
    batch_size: int = Field(default=8, ge=1, le=4096, description="Prompts per generation batch.")
    backend: Literal["auto", "transformers", "vllm"] = Field(
        default="auto",
        description="Generation backend of the generative suites (ifeval, generative, rewardWinRate), the "
        "synth worker's: transformers (CPU or GPU), vllm (GPUs; needs an image with vllm) or auto (vllm where "
        "the pod sees a GPU and vllm is installed, else transformers). Greedy either way.",
    )


class Evaluation(EvalSettings):
    """The evaluation that runs after training and the gates that decide promotion."""

    suites: list[EvalSuite] = Field(default_factory=list, max_length=32, description="Evaluations to run.")
    gates: list[Gate] = Field(default_factory=list, max_length=32, description="All must pass for promotion.")

    @model_validator(mode="after")
    def _gates_on_produced_metrics(self) -> Evaluation:
        """A gate on a metric no suite writes could never pass: refuse it now, not after training."""
        from synthloop import catalog

        produced = catalog.produced_metrics((s.type, s.tasks) for s in self.suites)
        if produced is None:  # a suite type the catalog does not know yet: its metrics are unknown
            return self
        for i, gate in enumerate(self.gates):
            if gate.metric not in produced:
                have = ", ".join(sorted(produced)) or "none (no suites)"
                raise ValueError(
                    f"gates[{i}].metric: no suite produces {gate.metric!r}; the suites produce: {have}"
                )
        return self


class Promotion(Model):
    """Promote the trained model under a name when every gate passes."""

    name: str = Field(description="Name later rounds use as `promoted: <name>`.", pattern=DNS_NAME, max_length=63)
    replace: bool = Field(
        default=False,
        description="Replace a pointer of this name that another run wrote. Takes effect only when "
        "this run had gates and all passed; without it, another run's promotion is never replaced.",
    )
    share_with: list[Annotated[str, Field(pattern=DNS_NAME, max_length=63)]] = Field(
        default_factory=list, max_length=64,
        description="Other namespaces allowed to use this promotion as `promoted: <this namespace>/<name>`.",
    )


class Condition(Model):
    """One observation of the run, in the Kubernetes conditions convention."""

    type: str = Field(description="InputsReady, Running, Evaluated, Promoted or Failed.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="CamelCase reason, e.g. WaitingForProducer, InvalidSpec.")
    message: str = Field(default="", description="What happened, for people.")
    last_transition_time: str = Field(default="", description="When status last changed (RFC 3339).")
    observed_generation: int = Field(default=0, description="The metadata.generation this condition is about.")


class Output(Model):
    """An artifact of the run, or one it read."""

    name: str = Field(description="Role of the artifact, e.g. model, data, sft, preference, manifest:<stage>.")
    uri: str = Field(description="Where it is, e.g. s3://synthloop/<namespace>/<kind>/<name>/<uid>/model/.")
    sha256: str = Field(default="", description="sha256 of its content (the weights file of a model).")
    size: int = Field(default=0, description="Size in bytes.")


class Status(Model):
    """What the operator observed. Written once per pass, only when it changed."""

    model_config = ConfigDict(extra="ignore")

    phase: Phase | None = Field(default=None, description="Summary for printer columns; conditions are authoritative.")
    stage: str | None = Field(default=None, description="The stage running now (e.g. shards, merge, sft, dpo, eval).")
    progress: str | None = Field(default=None, description="Human-readable progress, e.g. 3/4 shards or 120/400 steps.")
    key_metric: str | None = Field(default=None, description="The first gate's metric and value, for printer columns.")
    promoted_as: str | None = Field(default=None, description="The promotion name when promoted.")
    run_id: str | None = Field(default=None, description="The uid the run's artifacts are written under.")
    retry: str | None = Field(
        default=None, description="The synthloop.io/retry annotation value the operator last retried for."
    )
    observed_generation: int | None = Field(default=None, description="The metadata.generation this status describes.")
    conditions: list[Condition] = Field(default_factory=list, description="The authoritative state of the run.")
    outputs: list[Output] = Field(default_factory=list, description="Artifacts produced, with sha256 and size.")
    inputs: list[Output] = Field(default_factory=list, description="Artifacts consumed, resolved from references.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Evaluation metrics.")
    counts: dict[str, int] = Field(default_factory=dict, description="Counters reported by the workers.")
    attempts: int = Field(default=0, description="Pods started so far across the run's Jobs (retries included).")
    stage_attempt: int | None = Field(
        default=None, description="Attempt of the current multi-node stage (a new Job each, 1-based).")
    resumed_from_step: int | None = Field(
        default=None, description="The checkpoint step the current attempt resumed from (0: from scratch).")
    started_at: str | None = Field(
        default=None, description="When the first Job was created; from then on the spec is immutable."
    )
    finished_at: str | None = Field(default=None, description="When the run ended (Succeeded, Promoted, Rejected or Failed).")
    gpu_hours: float = Field(default=0.0, description="GPU-hours consumed: pods x GPUs x wall time.")


class CommonSpec(Model):
    """Fields every kind has."""

    resources: Resources = Field(default_factory=Resources, description="Where the pods run.")
    backoff_limit: int = Field(default=2, ge=0, le=20, description="Retries of a failed pod before the run fails.")
    keep_artifacts: bool = Field(
        default=True, description="Keep MinIO artifacts when the object is deleted (default true)."
    )
