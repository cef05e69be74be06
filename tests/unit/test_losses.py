"""Losses against hand-computed values and TRL's DPO formula on the same tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from synthloop.workers.training.losses import (
    bradley_terry_loss,
    causal_lm_loss,
    dpo_loss,
    reward_mse_loss,
    rpo_bwd_kl_loss,
    sequence_logps,
)

pytestmark = pytest.mark.unit


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def trl_sigmoid_dpo(pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor,
                    beta: float, label_smoothing: float = 0.0) -> torch.Tensor:
    """TRL ``DPOTrainer.dpo_loss`` with ``loss_type="sigmoid"`` (trl/trainer/dpo_trainer.py):
    logits = (pi_c - pi_r) - (ref_c - ref_r);
    losses = -logsigmoid(beta*logits)*(1-ls) - logsigmoid(-beta*logits)*ls."""
    logits = (pc - pr) - (rc - rr)
    return (-F.logsigmoid(beta * logits) * (1 - label_smoothing)
            - F.logsigmoid(-beta * logits) * label_smoothing)


def test_dpo_matches_trl_sigmoid_formula() -> None:
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(16, generator=g) * 20 for _ in range(4))
    for beta in (0.01, 0.1, 1.0):
        torch.testing.assert_close(dpo_loss(pc, pr, rc, rr, beta=beta), trl_sigmoid_dpo(pc, pr, rc, rr, beta))


def test_dpo_hand_value() -> None:
    # a = 0.5 * ((-1 - -2) - (-3 - -2)) = 0.5 * (1 + 1) = 1.0 -> -log sigma(1) = 0.31326
    loss = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]),
                    torch.tensor([-2.0]), beta=0.5)
    assert float(loss) == pytest.approx(-math.log(_sig(1.0)), rel=1e-6)
    assert float(loss) == pytest.approx(0.3132617, rel=1e-6)


@pytest.mark.parametrize(("a_parts", "rewards", "beta", "eta"), [
    ((-1.0, -3.0, -2.0, -2.0), (4.0, 1.0), 0.5, 1.0),     # a = 1.0, b = 3.0
    ((-5.0, -1.0, -2.0, -2.0), (2.0, 2.5), 0.1, 2.0),     # a = -0.4, b = -1.0
    ((0.0, 0.0, 0.0, 0.0), (1.0, 0.0), 1.0, 0.5),         # a = 0, b = 0.5
])
def test_rpo_bwd_kl_hand_values(a_parts: tuple[float, ...], rewards: tuple[float, float],
                                beta: float, eta: float) -> None:
    pc, pr, rc, rr = a_parts
    a = beta * ((pc - rc) - (pr - rr))
    b = eta * (rewards[0] - rewards[1])
    sa, sb = _sig(a), _sig(b)
    expected = sb * math.log(sb / sa) + (1 - sb) * math.log((1 - sb) / (1 - sa))
    got = rpo_bwd_kl_loss(*(torch.tensor([v]) for v in a_parts), torch.tensor([rewards[0]]),
                          torch.tensor([rewards[1]]), beta=beta, eta=eta)
    assert float(got) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_rpo_is_zero_when_gaps_match_and_stable_for_large_gaps() -> None:
    # a = 0.5*(2 - -2) = 2 = b = 1*(3 - 1)
    z = rpo_bwd_kl_loss(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([-2.0]),
                        torch.tensor([2.0]), torch.tensor([3.0]), torch.tensor([1.0]), beta=0.5, eta=1.0)
    assert float(z) == pytest.approx(0.0, abs=1e-7)
    big = rpo_bwd_kl_loss(torch.tensor([500.0]), torch.tensor([-500.0]), torch.tensor([0.0]),
                          torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), beta=1.0, eta=1.0)
    assert torch.isfinite(big).all() and float(big) == pytest.approx(0.5 * 1000 - math.log(2), rel=1e-3)


def test_sequence_logps_and_lm_loss_respect_the_mask() -> None:
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]]))
    labels = torch.tensor([[-100, 1, 2]])  # predict 1 from pos 0, 2 from pos 1
    assert float(sequence_logps(logits, labels)) == pytest.approx(math.log(0.25) + math.log(0.1))
    assert float(causal_lm_loss(logits, labels)) == pytest.approx(-(math.log(0.25) + math.log(0.1)) / 2)
    masked = torch.tensor([[-100, -100, 2]])
    assert float(sequence_logps(logits, masked)) == pytest.approx(math.log(0.1))


def test_reward_losses() -> None:
    pred = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    target = torch.tensor([[2.0, float("nan")], [3.0, 2.0]])
    assert float(reward_mse_loss(pred, target)) == pytest.approx((1 + 0 + 4) / 3)
    assert float(bradley_terry_loss(torch.tensor([2.0]), torch.tensor([1.0]))) == pytest.approx(
        -math.log(_sig(1.0)))
