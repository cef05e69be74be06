"""Choosing SFT responses and preference pairs from scored candidates.

Ground truth first: where a verifier exists (instruction constraints, a math answer, Python
tests) it ranks the candidates and the reward model only breaks ties; elsewhere the reward
model ranks. With neither able to separate the candidates the pair is dropped and counted,
because a coin-flip pair teaches the policy noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Why a prompt produced no preference pair (keys of the drop statistics).
TOO_FEW = "too_few_candidates"
TIE = "ties"
NO_JUDGE = "no_judge"


@dataclass
class Candidate:
    text: str
    source: str
    #: Verifier score (higher is better), None when the family has no verifier.
    verifier: float | None = None
    #: Whether every verifiable check passed.
    verified: bool = False
    #: Scalar reward-model score, None without a reward model.
    reward: float | None = None
    refusal: bool = False


@dataclass(frozen=True)
class Pair:
    chosen: Candidate
    rejected: Candidate
    judge: str
    chosen_reward: float
    rejected_reward: float


def _reward_of(c: Candidate, judge: str) -> float:
    if judge == "reward_model" and c.reward is not None:
        return c.reward
    return float(c.verifier or 0.0)


JUDGES = ("verifierThenReward", "verifier", "reward")


def rank_pair(candidates: Sequence[Candidate], *, judge: str = "verifierThenReward") -> tuple[Pair | None, str]:
    """``(pair, "")`` or ``(None, reason)``; chosen = best, rejected = worst.

    ``judge``: ``verifierThenReward`` (the report's order), ``verifier`` (ground truth only) or
    ``reward`` (the reward model only, ignoring verifiers).
    """
    if judge not in JUDGES:
        raise ValueError(f"judge must be one of {JUDGES}, got {judge!r}")
    if len(candidates) < 2:
        return None, TOO_FEW
    cands = list(candidates)
    if judge != "reward" and any(c.verifier is not None for c in cands):
        scores = [c.verifier if c.verifier is not None else 0.0 for c in cands]
        hi, lo = max(scores), min(scores)
        if hi > lo:
            # Among equally verified candidates the reward model (if any) picks the extremes.
            best = max((c for c in cands if (c.verifier or 0.0) == hi), key=lambda c: c.reward or 0.0)
            worst = min((c for c in cands if (c.verifier or 0.0) == lo), key=lambda c: c.reward or 0.0)
            return Pair(best, worst, "verifier", _reward_of(best, "verifier"), _reward_of(worst, "verifier")), ""
    if judge == "verifier":
        return None, (TIE if any(c.verifier is not None for c in cands) else NO_JUDGE)
    rewards = [c.reward for c in cands]
    if any(r is None for r in rewards):
        return None, (TIE if any(c.verifier is not None for c in cands) else NO_JUDGE)
    best = max(cands, key=lambda c: c.reward or 0.0)
    worst = min(cands, key=lambda c: c.reward or 0.0)
    if (best.reward or 0.0) <= (worst.reward or 0.0):
        return None, TIE
    return Pair(best, worst, "reward_model", best.reward or 0.0, worst.reward or 0.0), ""


def pick_sft(
    candidates: Sequence[Candidate], *, threshold: float | None
) -> tuple[Candidate | None, str]:
    """The response to train on, or ``(None, reason)``.

    Verifier families need a verified-correct candidate; otherwise the best by reward must
    clear ``threshold``; with no reward model the first non-refusal candidate is taken.
    """
    usable = [c for c in candidates if not c.refusal]
    if not usable:
        return None, "refusals"
    if any(c.verifier is not None for c in usable):
        verified = [c for c in usable if c.verified]
        if not verified:
            return None, "failed_verification"
        return max(verified, key=lambda c: c.reward if c.reward is not None else 0.0), ""
    if all(c.reward is not None for c in usable):
        best = max(usable, key=lambda c: c.reward or 0.0)
        if threshold is not None and (best.reward or 0.0) < threshold:
            return None, "filtered_by_reward"
        return best, ""
    return usable[0], ""
