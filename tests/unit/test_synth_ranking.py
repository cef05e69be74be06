"""Preference ranking (verifier first, reward model second, ties dropped) and SFT picks."""

from __future__ import annotations

import pytest

from synthloop.workers.synth.ranking import NO_JUDGE, TIE, TOO_FEW, Candidate, pick_sft, rank_pair

pytestmark = pytest.mark.unit


def c(text: str, *, verifier: float | None = None, verified: bool = False, reward: float | None = None,
      refusal: bool = False) -> Candidate:
    return Candidate(text=text, source="m", verifier=verifier, verified=verified, reward=reward, refusal=refusal)


def test_verifier_ranks_even_against_the_reward_model() -> None:
    pair, why = rank_pair([c("wrong", verifier=0.0, reward=9.0), c("right", verifier=1.5, verified=True, reward=-1.0)])
    assert why == "" and pair is not None
    assert (pair.chosen.text, pair.rejected.text, pair.judge) == ("right", "wrong", "verifier")
    assert pair.chosen_reward == 1.5 and pair.rejected_reward == 0.0


def test_reward_model_breaks_verifier_ties_among_the_best() -> None:
    pair, _ = rank_pair([c("a", verifier=1.0, reward=0.1), c("b", verifier=1.0, reward=0.9), c("z", verifier=0.0, reward=5.0)])
    assert pair is not None and pair.chosen.text == "b" and pair.rejected.text == "z"


def test_all_equal_verifier_falls_back_to_reward_model() -> None:
    pair, _ = rank_pair([c("a", verifier=0.0, reward=0.2), c("b", verifier=0.0, reward=0.7)])
    assert pair is not None and pair.judge == "reward_model"
    assert (pair.chosen.text, pair.chosen_reward, pair.rejected_reward) == ("b", 0.7, 0.2)


def test_ties_without_reward_model_are_dropped_with_a_reason() -> None:
    assert rank_pair([c("a", verifier=1.0), c("b", verifier=1.0)]) == (None, TIE)
    assert rank_pair([c("a", reward=0.5), c("b", reward=0.5)]) == (None, TIE)
    assert rank_pair([c("a"), c("b")]) == (None, NO_JUDGE)
    assert rank_pair([c("a", verifier=1.0)]) == (None, TOO_FEW)


def test_sft_pick_needs_verified_response_in_verifier_families() -> None:
    assert pick_sft([c("x", verifier=0.5)], threshold=None) == (None, "failed_verification")
    best, _ = pick_sft([c("x", verifier=1.0, verified=True, reward=0.1), c("y", verifier=1.0, verified=True, reward=0.3)], threshold=None)
    assert best is not None and best.text == "y"


def test_sft_pick_applies_reward_threshold_and_drops_refusals() -> None:
    assert pick_sft([c("x", reward=1.0), c("y", reward=2.0)], threshold=3.0) == (None, "filtered_by_reward")
    best, _ = pick_sft([c("x", reward=1.0), c("y", reward=2.0)], threshold=1.5)
    assert best is not None and best.text == "y"
    assert pick_sft([c("no", refusal=True)], threshold=None) == (None, "refusals")
    first, _ = pick_sft([c("no", refusal=True), c("fine")], threshold=None)
    assert first is not None and first.text == "fine"


def test_judge_modes() -> None:
    cands = [c("wrong", verifier=0.0, reward=9.0), c("right", verifier=1.0, verified=True, reward=1.0)]
    by_reward, _ = rank_pair(cands, judge="reward")
    assert by_reward is not None and by_reward.chosen.text == "wrong" and by_reward.judge == "reward_model"
    by_verifier, _ = rank_pair(cands, judge="verifier")
    assert by_verifier is not None and by_verifier.chosen.text == "right"
    assert rank_pair([c("a", verifier=1.0, reward=1.0), c("b", verifier=1.0, reward=2.0)], judge="verifier") == (None, TIE)
    assert rank_pair([c("a", reward=1.0), c("b", reward=2.0)], judge="verifier") == (None, NO_JUDGE)
    with pytest.raises(ValueError, match="judge must be one of"):
        rank_pair(cands, judge="coin")
