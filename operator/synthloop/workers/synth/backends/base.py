"""The interface every generation backend implements: chat conversations in, completions out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

Message = dict[str, str]


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    #: Completions per conversation.
    n: int = 1
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: "stop" (end of turn) or "length" (hit max_tokens: the text may be cut off).
    finish_reason: str = "stop"

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class ModelLoadError(RuntimeError):
    """The generator (or reward) model named in the spec could not be loaded."""


class GenerationBackend(ABC):
    """Batched chat generation. Implementations must be safe to call repeatedly."""

    #: A short id of the model, recorded in outputs and the manifest.
    model_id: str = ""

    @abstractmethod
    def generate(
        self, conversations: Sequence[Sequence[Message]], *, sampling: Sampling
    ) -> list[list[Completion]]:
        """``sampling.n`` completions for each conversation, in input order."""

    def close(self) -> None:
        """Release the model (GPU memory, worker threads)."""
