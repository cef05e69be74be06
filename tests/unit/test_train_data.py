"""Data formats the training workers accept, and the malformed-line policy."""

from __future__ import annotations

import json
import math

import pytest

from synthloop.workers.training.data import (
    DataError,
    parse_preference,
    parse_rating,
    parse_sft,
    read_jsonl,
)

pytestmark = pytest.mark.unit


def test_preference_formats_trl_nemo_and_conversational() -> None:
    trl = parse_preference({"prompt": "2+2?", "chosen": "4", "rejected": "5",
                            "chosen_reward": 4, "rejected_reward": 1.5})
    assert trl.prompt == [{"role": "user", "content": "2+2?"}]
    assert (trl.chosen, trl.rejected, trl.chosen_reward, trl.rejected_reward) == ("4", "5", 4.0, 1.5)
    nemo = parse_preference({"prompt": "2+2?", "chosen_response": "4", "rejected_response": "5"})
    assert nemo.chosen == "4" and nemo.chosen_reward is None
    conv = parse_preference({
        "prompt": [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "2+2?"}],
        "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}]})
    assert conv.prompt[0]["role"] == "system" and conv.rejected == "5"
    with pytest.raises(KeyError, match="chosen_response"):
        parse_preference({"prompt": "x", "chosen": "a"})
    with pytest.raises(TypeError, match="chosen_reward must be a number"):
        parse_preference({"prompt": "x", "chosen": "a", "rejected": "b", "chosen_reward": "high"})


def test_sft_and_rating_formats() -> None:
    msgs = parse_sft({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    with pytest.raises(ValueError, match="unknown role 'robot'"):
        parse_sft({"conversations": [{"from": "robot", "value": "x"}]})
    r = parse_rating({"prompt": "q", "response": "a", "helpfulness": 3, "correctness": 4})
    assert r.attributes[:2] == (3.0, 4.0) and math.isnan(r.attributes[4])
    with pytest.raises(ValueError, match="verbosity=5.0: expected 0..4"):
        parse_rating({"prompt": "q", "response": "a", "verbosity": 5})


def test_malformed_lines_are_counted_within_the_cap_and_rejected_beyond() -> None:
    good = [json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})] * 99
    rows, bad = read_jsonl("\n".join([*good, "{oops", ""]), parse=parse_preference, what="pref",
                           max_malformed_fraction=0.01)
    assert (len(rows), bad) == (99, 1)
    with pytest.raises(DataError, match=r"pref: 2 of 101 lines are malformed.*line 100: JSONDecodeError.*line 101: KeyError"):
        read_jsonl("\n".join([*good, "{oops", '{"prompt": "p"}']), parse=parse_preference,
                   what="pref", max_malformed_fraction=0.01)
    with pytest.raises(DataError, match="no valid rows in 1 lines"):
        read_jsonl("[]", parse=parse_preference, what="pref", max_malformed_fraction=1.0)
