"""The model package: presets, the Nemotron-4 architecture, tokenizer, chat template, artifact I/O."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthloop.models.presets import PRESETS, ModelDims, get_preset

pytestmark = pytest.mark.unit


def test_340b_preset_parameter_count_matches_the_report() -> None:
    dims = PRESETS["nemotron4-340b"]
    # Report: 9.4B embedding + 331.6B other parameters.
    assert dims.embedding_params() / 1e9 == pytest.approx(9.4, abs=0.05)
    assert dims.non_embedding_params() / 1e9 == pytest.approx(331.6, abs=0.05)
    assert dims.total_params() / 1e9 == pytest.approx(341.0, abs=0.1)
    assert (dims.num_layers, dims.hidden_size, dims.num_attention_heads, dims.num_kv_heads) == (
        96, 18432, 96, 8)
    assert (dims.seq_length, dims.vocab_size) == (4096, 256000)


def test_parameter_arithmetic_matches_the_real_module() -> None:
    from synthloop.models.build import build_model

    dims = PRESETS["tiny-test"]
    model = build_model(dims, seed=0)
    assert sum(p.numel() for p in model.parameters()) == dims.total_params()


def test_config_is_nemotron4_shaped() -> None:
    from synthloop.models.build import make_config

    cfg = make_config(PRESETS["nemotron4-340b"])
    assert cfg.hidden_act == "relu2"
    assert cfg.tie_word_embeddings is False
    assert cfg.attention_bias is False and cfg.mlp_bias is False
    assert cfg.num_key_value_heads == 8 and cfg.head_dim == 192
    assert cfg.intermediate_size == 4 * cfg.hidden_size


def test_unknown_preset_and_bad_dims_are_named() -> None:
    with pytest.raises(ValueError, match="unknown model preset 'gpt-5'.*nemotron4-340b"):
        get_preset("gpt-5")
    with pytest.raises(ValueError, match="num_kv_heads=3"):
        ModelDims(num_layers=1, hidden_size=64, num_attention_heads=4, num_kv_heads=3,
                  ffn_hidden_size=128, seq_length=32, vocab_size=100)


def test_tokenizer_round_trips_the_chat_format() -> None:
    from synthloop.corpus import sample_texts
    from synthloop.models.tokenizer import train_tokenizer

    tok = train_tokenizer(sample_texts(n=200), vocab_size=400)
    messages = [
        {"role": "system", "content": "Answer with a number."},
        {"role": "user", "content": "Tom has 3 apples and gets 4 more.\nHow many?"},
        {"role": "assistant", "content": "The answer is 7."},
    ]
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == (
        "<extra_id_0>System\nAnswer with a number.\n<extra_id_1>User\nTom has 3 apples and gets 4 "
        "more.\nHow many?\n<extra_id_1>Assistant\nThe answer is 7.\n"
    )
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert ids[0] == tok.convert_tokens_to_ids("<extra_id_0>")
    prompt = tok.apply_chat_template(messages[1:2], tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<extra_id_0>System\n\n<extra_id_1>User\n")
    assert prompt.endswith("<extra_id_1>Assistant\n")
    with pytest.raises(ValueError, match="vocab_size=10"):
        train_tokenizer(["x"], vocab_size=10)


def test_make_tiny_model_loads_with_auto_classes_and_generates(tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from synthloop.models.build import make_tiny_model

    out = make_tiny_model(tmp_path / "m")
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert "chat_template" in json.loads((out / "tokenizer_config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "NemotronForCausalLM"
    assert model.config.vocab_size == len(tok)
    enc = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out_ids = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert out_ids.shape[1] <= enc["input_ids"].shape[1] + 4
    # Same seed, same weights: tests elsewhere rely on reproducible tiny models.
    again = make_tiny_model(tmp_path / "m2")
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def test_load_model_from_store_uses_a_cache(tmp_path: Path) -> None:
    from synthloop.artifacts.store import open_store
    from synthloop.models.build import make_tiny_model
    from synthloop.models.io import fetch_model_dir, load_model

    local = make_tiny_model(tmp_path / "m")
    store = open_store(env={})
    run = f"file://{tmp_path}/store/run"
    store.upload_dir(local, f"{run}/model/")
    cache = tmp_path / "cache"
    # A run prefix is accepted: the model lives under model/.
    first = fetch_model_dir(run, store=store, cache_dir=cache)
    assert (first / "config.json").is_file()
    second = fetch_model_dir(f"{run}/model/", store=store, cache_dir=cache)
    assert first == second
    model, _tok = load_model(f"{run}/model", store=store, cache_dir=cache)
    assert model.config.num_hidden_layers == PRESETS["tiny-test"].num_layers
    with pytest.raises(FileNotFoundError, match="no config.json"):
        fetch_model_dir(f"file://{tmp_path}/store/nothing", store=store, cache_dir=cache)
