"""What the workers know, for the operator: tasks, blend sources, metrics, parallelism.

The API validates specs against this module (CEL rules are generated from it, and the
operator's first pass calls it), so a spec that names a task, a blend source or a metric the
workers do not have is refused before any pod starts. Torch-free on purpose: the operator
imports it. ``tests/unit/test_catalog.py`` checks it against the workers' own registries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

#: Built-in eval task names per suite type; any other task must be a JSONL file (s3:// or file://).
#: A suite type missing here is not checked (another helper may add types the catalog learns later).
EVAL_TASKS: dict[str, tuple[str, ...]] = {
    "multipleChoice": ("arithmetic", "colors"),  # workers/eval/suites/multiple_choice.BUILTIN_TASKS
    "ifeval": ("synthetic",),  # workers/eval/suites/ifeval.synthetic_items
    "rewardWinRate": ("arithmetic",),  # prompts from the arithmetic corpus
    "preferenceAccuracy": (),  # only JSONL pair files (or a RewardTrain's preferenceData)
    "generative": ("arithmetic", "arithmetic_format"),  # workers/eval/suites/generative.BUILTIN_TASKS
    # lmEval is not listed: its tasks are lm-eval task names (built in or under taskDir)
}
#: What a suite runs when ``tasks`` is empty.
DEFAULT_TASKS: dict[str, tuple[str, ...]] = {
    "multipleChoice": ("arithmetic", "colors"),
    "ifeval": ("synthetic",),
    "rewardWinRate": ("arithmetic",),
    "preferenceAccuracy": (),
    "generative": ("arithmetic",),
}
URI_SCHEMES = ("s3://", "file://")

#: Built-in pretraining corpus sources (corpus.SOURCES); any other blend
#: source is read from ``<spec.data>/<source>.jsonl`` (or ``.txt``).
BLEND_SOURCES: tuple[str, ...] = ("arithmetic", "code", "english", "qa")

#: The trainer is DeepSpeed ZeRO data parallelism with AutoTP tensor parallelism: no pipeline stages.
MAX_PIPELINE_PARALLEL = 1

#: Which producer kinds can feed each input role (their output of that role exists).
MODEL_PRODUCERS: tuple[str, ...] = ("PretrainJob", "AlignJob")
REWARD_PRODUCERS: tuple[str, ...] = ("RewardTrain",)
DATA_PRODUCERS: tuple[str, ...] = ("SynthRound",)


def is_uri(task: str) -> bool:
    return task.startswith(URI_SCHEMES)


def task_name(task: str) -> str:
    """The metric name part of a task: the built-in name, or a task file's stem."""
    return PurePosixPath(task.rstrip("/")).stem if is_uri(task) else task


def unknown_tasks(suite_type: str, tasks: Sequence[str]) -> list[str]:
    """Tasks of a suite that are neither built in nor a file URI (empty when the type is unknown)."""
    known = EVAL_TASKS.get(suite_type)
    if known is None:
        return []
    return [t for t in tasks if not is_uri(t) and t not in known]


def suite_metrics(suite_type: str, tasks: Sequence[str]) -> set[str] | None:
    """The metric names a suite writes to ``metrics.json``; None when the catalog cannot tell."""
    names = [task_name(t) for t in (tasks or DEFAULT_TASKS.get(suite_type, ()))]
    if suite_type == "multipleChoice":
        return {f"mc.{n}.{m}" for n in names for m in ("acc", "acc_norm")}
    if suite_type == "ifeval":
        return {f"ifeval.{p}_{m}" for p in ("prompt", "instruction") for m in ("strict", "loose")}
    if suite_type == "rewardWinRate":
        return {"reward.win_rate", "reward.candidate_mean", "reward.baseline_mean"}
    if suite_type == "preferenceAccuracy":
        return {"preference.accuracy"}
    if suite_type == "generative":
        return {f"gen.{n}.{m}" for n in names for m in ("acc", "acc_stderr")}
    return None  # lmEval: the metrics are the lm-eval tasks' own (lmeval.<task>.<metric>)


def produced_metrics(suites: Iterable[tuple[str, Sequence[str]]]) -> set[str] | None:
    """Union of what the suites produce; None if any suite's metrics are unknown to the catalog."""
    out: set[str] = set()
    for suite_type, tasks in suites:
        metrics = suite_metrics(suite_type, tasks)
        if metrics is None:
            return None
        out |= metrics
    return out


def unknown_blend_sources(sources: Iterable[str]) -> list[str]:
    return sorted(set(sources) - set(BLEND_SOURCES))
