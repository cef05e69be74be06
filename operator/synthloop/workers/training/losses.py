"""Training losses: LM cross-entropy, sequence log-probs, DPO, RPO (backward KL), reward losses.

Each takes plain tensors so it can be checked against hand-computed values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled positions (labels are aligned to inputs)."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
    )


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log p(label) over labelled positions, per sequence: log pi(y|x) of the response."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    safe = shift_labels.masked_fill(~mask, 0)
    logp = torch.gather(shift_logits.log_softmax(-1), 2, safe.unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(-1)


def implicit_reward_gap(
    policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, *, beta: float,
) -> torch.Tensor:
    """a = beta*log(pi(y_c)/ref(y_c)) - beta*log(pi(y_l)/ref(y_l))."""
    return beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))


def dpo_loss(
    policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor, ref_rejected: torch.Tensor, *, beta: float,
) -> torch.Tensor:
    """Per-pair DPO sigmoid loss -log sigma(a) (TRL ``loss_type="sigmoid"``, no smoothing)."""
    a = implicit_reward_gap(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=beta)
    return -F.logsigmoid(a)


def rpo_bwd_kl_loss(
    policy_chosen: torch.Tensor, policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
    reward_chosen: torch.Tensor, reward_rejected: torch.Tensor, *, beta: float, eta: float,
) -> torch.Tensor:
    """Per-pair RPO loss: KL(Bern(sigma(b)) || Bern(sigma(a))), b = eta*(r_c - r_l).

    L = sigma(b)*log(sigma(b)/sigma(a)) + (1-sigma(b))*log((1-sigma(b))/(1-sigma(a))), computed
    with log-sigmoids (NeMo-Aligner ``rpo_bwd_kl``) so large gaps do not overflow. It is zero
    exactly when the implicit reward gap matches the scaled reward-model gap.
    """
    a = implicit_reward_gap(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=beta)
    b = eta * (reward_chosen - reward_rejected).to(a.dtype)
    log_pb, log_qb = F.logsigmoid(b), F.logsigmoid(-b)
    return log_pb.exp() * (log_pb - F.logsigmoid(a)) + log_qb.exp() * (log_qb - F.logsigmoid(-a))


def reward_mse_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the attribute head; NaN targets (unrated attributes) are skipped."""
    mask = ~torch.isnan(target)
    if not mask.any():
        return predicted.sum() * 0.0
    return ((predicted - torch.nan_to_num(target)) ** 2)[mask].mean()


def bradley_terry_loss(reward_chosen: torch.Tensor, reward_rejected: torch.Tensor) -> torch.Tensor:
    """Per-pair -log sigma(r_c - r_l)."""
    return -F.logsigmoid(reward_chosen - reward_rejected)
