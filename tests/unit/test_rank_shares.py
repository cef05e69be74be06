"""The rank shares of reward-train and align add up to the one-process step, for any world size.

No process group: each rank's share is computed here in turn (``DistEnv(rank=r, world_size=w)``)
and the shares are summed as ``Engine.step`` sums gradients over the ranks.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from synthloop.workers.align.worker import Policy
from synthloop.workers.reward.worker import _local_loss
from synthloop.workers.runtime.distributed import DistEnv
from synthloop.workers.training.data import PreferencePair, Rating

NAN = math.nan


class Scorer:
    """A linear reward head over a fixed feature of each conversation (so gradients exist)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.head = torch.nn.Linear(3, 5)
        self.weights = torch.tensor([0.3, 0.7, 0.0, 0.0, -0.1])
        self.device = torch.device("cpu")

    def attrs(self, conversations: list[list[dict[str, str]]]) -> torch.Tensor:
        text = [c[-1]["content"] for c in conversations]
        feats = torch.tensor([[len(t), t.count("a"), 1.0] for t in text], dtype=torch.float32)
        return self.head(feats / 10)

    def reward(self, conversations: list[list[dict[str, str]]]) -> torch.Tensor:
        return self.attrs(conversations) @ self.weights


def _ratings() -> list[Rating]:
    prompt = [{"role": "user", "content": "q"}]
    attrs = [(4, 3, NAN, 1, 0), (NAN, NAN, NAN, NAN, NAN), (1, 2, 3, 4, 0), (0, NAN, 2, 2, 2), (3, 3, 3, 3, 3)]
    return [Rating(prompt=prompt, response="a" * (i + 1) + "b" * i, attributes=tuple(float(x) for x in a))
            for i, a in enumerate(attrs)]


def _pairs() -> list[PreferencePair]:
    return [PreferencePair(prompt=[{"role": "user", "content": "q"}], chosen="aa" * i, rejected="b" * i)
            for i in range(1, 4)]


def _grads_and_loss(scorer: Scorer, world: int) -> tuple[list[torch.Tensor], float]:
    scorer.head.zero_grad()
    total = 0.0
    for rank in range(world):
        share = _local_loss(scorer, _ratings(), _pairs(), env=DistEnv(world_size=world, rank=rank),  # type: ignore[arg-type]
                            bt_weight=0.5)
        if share is not None:  # a rank with nothing to score adds zero gradients
            share.backward()
            total += float(share.detach())
    return [p.grad.clone() for p in scorer.head.parameters() if p.grad is not None], total


@pytest.mark.parametrize("world", [2, 3, 4, 7])
def test_reward_shares_sum_to_the_one_process_loss_and_gradient(world: int) -> None:
    scorer = Scorer()
    one_grads, one_loss = _grads_and_loss(scorer, 1)
    grads, loss = _grads_and_loss(scorer, world)
    assert loss == pytest.approx(one_loss, rel=1e-6)
    for a, b in zip(grads, one_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6), (world, a, b)


@pytest.mark.parametrize(("n", "micro", "world"), [(6, 2, 2), (7, 2, 3), (3, 2, 4), (1, 4, 2), (10, 3, 3)])
def test_align_ranks_take_the_one_process_micro_batches_disjointly(n: int, micro: int, world: int) -> None:
    items = list(range(n))

    def policy(rank: int, size: int) -> Any:
        p = Policy.__new__(Policy)  # only the batching: no model needed
        p.micro, p.env = micro, DistEnv(world_size=size, rank=rank)
        return p

    one = policy(0, 1).mine(items)
    shares = [policy(r, world).mine(items) for r in range(world)]
    assert [m for share in shares for m in share] == one  # in rank order: the same micro-batches
    assert sum(1 for share in shares if share) == min(world, len(one))  # a rank may get none
