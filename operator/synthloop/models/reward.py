"""The HelpSteer2-style reward model: a 5-attribute regression head over the base decoder.

Nemotron-4-340B-Reward replaces the LM head with a linear head predicting helpfulness,
correctness, coherence, complexity and verbosity (0-4), read at the end-of-response token; the
scalar reward is a weighted sum of those. We store it as transformers'
``NemotronForSequenceClassification`` (``num_labels=5``, regression), which pools the last
non-pad token, so ``AutoModelForSequenceClassification`` loads it; the attribute names and
default weights travel in ``config.json`` under ``synthloop_reward``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthloop.api.v1alpha1.reward import ATTRIBUTES as API_ATTRIBUTES
from synthloop.api.v1alpha1.reward import DEFAULT_WEIGHTS as API_DEFAULT_WEIGHTS
from synthloop.models.chat import encode_conversation, pad_batch

if TYPE_CHECKING:
    from synthloop.artifacts.store import ArtifactStore

#: The attributes and the model card's default weights: one source, the API (RewardTrain's defaults).
ATTRIBUTES: tuple[str, ...] = API_ATTRIBUTES
DEFAULT_WEIGHTS: dict[str, float] = dict(API_DEFAULT_WEIGHTS)
CONFIG_KEY = "synthloop_reward"
Conversation = Sequence[Mapping[str, str]]


def resolve_weights(weights: Mapping[str, float] | None) -> list[float]:
    """Weights in attribute order; unknown names are an error, missing ones count as 0."""
    if weights is None:
        weights = DEFAULT_WEIGHTS
    unknown = sorted(set(weights) - set(ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown reward attributes {unknown}: expected names from {list(ATTRIBUTES)}")
    return [float(weights.get(a, 0.0)) for a in ATTRIBUTES]


def build_reward_model(base: str | Path, *, weights: Mapping[str, float] | None = None) -> Any:
    """A reward model initialised from the base LM directory (the head starts random)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(ATTRIBUTES),
        problem_type="regression",
        id2label=dict(enumerate(ATTRIBUTES)),
        label2id={a: i for i, a in enumerate(ATTRIBUTES)},
    )
    setattr(model.config, CONFIG_KEY, {
        "attributes": list(ATTRIBUTES),
        "weights": dict(zip(ATTRIBUTES, resolve_weights(weights), strict=True)),
    })
    return model


def encode_for_reward(tokenizer: Any, conversation: Conversation, *, max_length: int) -> list[int]:
    """Tokens of a full conversation ending in ``</s>``, the token the head is read at."""
    if not conversation or conversation[-1]["role"] != "assistant":
        raise ValueError("reward scoring needs a conversation that ends with an assistant turn")
    ids, _ = encode_conversation(tokenizer, conversation, max_length=max_length, train_on="last")
    return ids


class RewardScorer:
    """Scores conversations with a reward model (eval mode, no grad, batched)."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 8) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        meta = getattr(model.config, CONFIG_KEY, None) or {}
        self.weights: dict[str, float] = dict(meta.get("weights") or DEFAULT_WEIGHTS)
        self.max_length = int(model.config.max_position_embeddings)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def predict(self, conversations: Sequence[Conversation]) -> list[list[float]]:
        import torch

        out: list[list[float]] = []
        for i in range(0, len(conversations), self.batch_size):
            rows = [encode_for_reward(self.tokenizer, c, max_length=self.max_length)
                    for c in conversations[i: i + self.batch_size]]
            ids, mask, _ = pad_batch([(r, r) for r in rows], pad_id=int(self.model.config.pad_token_id))
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.device),
                                    attention_mask=mask.to(self.device)).logits
            out.extend(logits.float().cpu().tolist())
        return out

    def score(self, conversations: Sequence[Conversation]) -> list[dict[str, float]]:
        """Predicted attributes (0-4 scale) for each conversation's last assistant turn."""
        return [dict(zip(ATTRIBUTES, row, strict=True)) for row in self.predict(conversations)]

    def reward(
        self, conversations: Sequence[Conversation], weights: Mapping[str, float] | None = None
    ) -> list[float]:
        """The scalar reward: the weighted attribute sum (model's stored weights by default)."""
        w = resolve_weights(weights if weights is not None else self.weights)
        return [sum(x * y for x, y in zip(row, w, strict=True)) for row in self.predict(conversations)]


def load_reward_model(
    uri_or_dir: str | Path,
    *,
    store: ArtifactStore | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    batch_size: int = 8,
) -> RewardScorer:
    """Load a reward model saved by the reward-train worker (local dir or ``s3://`` URI)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from synthloop.models.io import fetch_model_dir

    path = fetch_model_dir(uri_or_dir, store=store, cache_dir=cache_dir)
    model = AutoModelForSequenceClassification.from_pretrained(path)
    if getattr(model.config, "num_labels", 0) != len(ATTRIBUTES):
        raise ValueError(
            f"{uri_or_dir}: not a reward model (num_labels={model.config.num_labels}, expected "
            f"{len(ATTRIBUTES)} HelpSteer2 attributes)"
        )
    if device:
        model.to(device)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "right"
    return RewardScorer(model, tok, batch_size=batch_size)
