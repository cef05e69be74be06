"""The envelope the operator hands every worker pod: which run, where to read, where to write.

Kept in ``api`` because it is the contract between the two halves of the system: builders
produce it (as a JSON env var) and ``synthloop-worker`` consumes it. Task-specific parameters
travel in ``params`` and are validated by each worker's own params model.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
