"""The reward model as a judge: a scalar reward per (prompt, response) conversation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from synthloop.workers.synth.backends.base import Message, ModelLoadError

if TYPE_CHECKING:
    from synthloop.artifacts.store import ArtifactStore


class RewardJudge:
    """Wraps ``synthloop.models.reward``; ``rewards`` is the weighted attribute sum."""

    def __init__(
        self,
        uri: str,
        *,
        weights: Mapping[str, float] | None = None,
        store: ArtifactStore | None = None,
        cache_dir: str | None = None,
        batch_size: int = 8,
        num_threads: int | None = None,
    ) -> None:
        from synthloop.models.reward import load_reward_model, resolve_weights

        if weights is not None:
            resolve_weights(weights)  # unknown attribute names fail here, before any loading
        try:
            self.scorer: Any = load_reward_model(uri, store=store, cache_dir=cache_dir, batch_size=batch_size)
        except Exception as exc:
            raise ModelLoadError(f"reward model {uri!r} does not load: {type(exc).__name__}: {exc}") from exc
        self.uri = uri
        self.weights = dict(weights) if weights is not None else None
        self.num_threads = num_threads

    def rewards(self, conversations: Sequence[Sequence[Message]]) -> list[float]:
        if not conversations:
            return []
        import torch

        previous = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            return [float(r) for r in self.scorer.reward(conversations, self.weights)]
        finally:
            torch.set_num_threads(previous)
