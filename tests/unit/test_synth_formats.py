"""Output rows load in the shapes TRL and NeMo-Aligner expect.

Neither library is installed here, so each test does what the library's loader does: TRL
applies the tokenizer's chat template to ``messages`` / ``prompt`` + ``chosen`` (and requires
the rendered prompt to be a prefix of the rendered prompt+completion); NeMo's chat SFT dataset
renders ``system``/``conversations`` with the Nemotron prompt template, and NeMo-Aligner's DPO
dataset concatenates ``prompt`` with each response. Both must produce the same text our
tokenizer's chat template produces, or training would see a different format than inference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloop.workers.synth import formats

pytestmark = pytest.mark.unit

MESSAGES = [
    {"role": "system", "content": "You are concise."},
    {"role": "user", "content": "What is 2 + 2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And times 3?"},
    {"role": "assistant", "content": "12"},
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from synthloop.models.tokenizer import train_tokenizer

    texts = [m["content"] for m in MESSAGES] * 20 + ["the quick brown fox jumps over the lazy dog"] * 20
    return train_tokenizer(texts, vocab_size=300)


def nemo_chat_text(row: dict[str, Any]) -> str:
    """NeMo GPTSFTChatDataset's rendering with the Nemotron prompt template."""
    out = "<extra_id_0>System\n" + row["system"] + "\n"
    for turn in row["conversations"]:
        out += f"<extra_id_1>{turn['from']}\n{turn['value']}\n"
    return out


def is_conversational(example: dict[str, Any]) -> bool:
    """TRL's ``is_conversational``: a supported key holding a list of role/content dicts."""
    for key in ("prompt", "chosen", "rejected", "completion", "messages"):
        value = example.get(key)
        if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0] and "content" in value[0]:
            return True
    return False


def test_trl_sft_row_renders_like_nemo_chat_sft(tokenizer: Any) -> None:
    row = formats.sft_row(MESSAGES, id="x-1", family="openQA")
    assert is_conversational(row)
    nemo = formats.to_nemo_sft(row)
    formats.validate_nemo_sft(nemo)
    assert nemo["mask"] == "User" and nemo["system"] == "You are concise."
    assert [t["from"] for t in nemo["conversations"]] == ["User", "Assistant", "User", "Assistant"]
    assert tokenizer.apply_chat_template(row["messages"], tokenize=False) == nemo_chat_text(nemo)


def test_trl_preference_row_has_prompt_prefix_property(tokenizer: Any) -> None:
    row = formats.preference_row(MESSAGES[:4], chosen="36", rejected="thirty", chosen_reward=2.0,
                                 rejected_reward=0.5, judge="verifier", id="m-1", family="math")
    assert is_conversational(row)
    prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    for key in ("chosen", "rejected"):
        full = tokenizer.apply_chat_template(row["prompt"] + row[key], tokenize=False)
        assert full.startswith(prompt)
        assert full[len(prompt):] == row[key][0]["content"] + "\n"


def test_nemo_preference_row_matches_chat_template(tokenizer: Any) -> None:
    row = formats.preference_row(MESSAGES[:4], chosen="36", rejected="thirty", chosen_reward=2.0,
                                 rejected_reward=0.5, judge="verifier", id="m-1", family="math")
    nemo = formats.to_nemo_preference(row)
    formats.validate_nemo_preference(nemo)
    assert (nemo["chosen_reward"], nemo["rejected_reward"]) == (2.0, 0.5)
    full = tokenizer.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
    assert nemo["prompt"] + nemo["chosen_response"] == full + "<extra_id_1>"
    assert nemo["prompt"] == tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)


def test_prompt_without_system_renders_an_empty_system_block(tokenizer: Any) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    assert formats.render_nemo_prompt(messages) == "<extra_id_0>System\n\n<extra_id_1>User\nHi\n<extra_id_1>Assistant\n"
    assert formats.render_nemo_prompt(messages) == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_jsonl_rows_share_one_schema(tmp_path: Path) -> None:
    """datasets/Arrow infers one schema per file: every row needs the same keys and types."""
    rows = [
        formats.preference_row(MESSAGES[1:2], chosen="4", rejected="5", chosen_reward=1, rejected_reward=0,
                               judge="verifier", id="a", family="math"),
        formats.preference_row(MESSAGES[:2], chosen="4", rejected="four?", chosen_reward=0.25, rejected_reward=-1.5,
                               judge="reward_model", id="b", family="openQA"),
    ]
    path = tmp_path / "p.jsonl"
    assert formats.write_jsonl(path, rows) == 2
    loaded = list(formats.read_jsonl(path))
    assert loaded == rows
    schemas = {tuple(sorted((k, type(v).__name__) for k, v in r.items())) for r in loaded}
    assert len(schemas) == 1
    assert json.loads(path.read_text().splitlines()[0])["chosen_reward"] == 1.0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "last message must be the assistant"),
        ({"messages": [{"role": "bot", "content": "hi"}]}, "role must be one of"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"},
                       {"role": "assistant", "content": "c"}]}, "system message may only come first"),
        ({"messages": []}, "non-empty list"),
    ],
)
def test_invalid_sft_rows_name_the_problem(row: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        formats.validate_trl_sft(row)


def test_invalid_preference_rows_name_the_problem() -> None:
    with pytest.raises(ValueError, match="last message must be a user turn"):
        formats.preference_row(MESSAGES[:3], chosen="a", rejected="b", chosen_reward=0, rejected_reward=0,
                               judge="verifier", id="x", family="f")
    with pytest.raises(ValueError, match="chosen_response must end"):
        formats.validate_nemo_preference({"prompt": "<extra_id_0>System\n\n<extra_id_1>Assistant\n",
                                          "chosen_response": "a", "rejected_response": "b\n<extra_id_1>",
                                          "chosen_reward": 0.0, "rejected_reward": 0.0})


def test_the_align_workers_loader_reads_both_formats() -> None:
    """The consumer contract: AlignJob's data loader accepts our TRL and NeMo rows alike."""
    from synthloop.workers.training.data import parse_preference, parse_sft

    row = formats.sft_row(MESSAGES, id="x", family="openQA")
    assert parse_sft(row) == parse_sft(formats.to_nemo_sft(row)) == MESSAGES
    pref = formats.preference_row(MESSAGES[:4], chosen="36", rejected="30", chosen_reward=1.5,
                                  rejected_reward=0.0, judge="verifier", id="m", family="math")
    pair = parse_preference(pref)
    assert (pair.prompt, pair.chosen, pair.rejected) == (MESSAGES[:4], "36", "30")
    assert (pair.chosen_reward, pair.rejected_reward) == (1.5, 0.0)
