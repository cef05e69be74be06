"""Build Nemotron-4-style models with transformers' ``NemotronForCausalLM``.

That architecture matches Nemotron-4: RoPE, grouped-query attention, a squared-ReLU MLP without
gating (``hidden_act="relu2"``), LayerNorm1P, no linear biases and untied embeddings. Using it
means vLLM and ``AutoModelForCausalLM`` load our checkpoints without custom code.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthloop.models.presets import ModelDims, get_preset

if TYPE_CHECKING:
    from transformers import NemotronConfig, PreTrainedModel, PreTrainedTokenizerFast

PAD_ID, BOS_ID, EOS_ID, TURN_ID = 1, 2, 3, 5


def resolve_dims(preset_or_dims: str | ModelDims) -> ModelDims:
    return get_preset(preset_or_dims) if isinstance(preset_or_dims, str) else preset_or_dims


def make_config(dims: ModelDims, *, vocab_size: int | None = None) -> NemotronConfig:
    """The transformers config for ``dims`` (``vocab_size`` overrides, e.g. a trained tokenizer's)."""
    from transformers import NemotronConfig

    return NemotronConfig(
        vocab_size=vocab_size or dims.vocab_size,
        hidden_size=dims.hidden_size,
        intermediate_size=dims.ffn_hidden_size,
        num_hidden_layers=dims.num_layers,
        num_attention_heads=dims.num_attention_heads,
        num_key_value_heads=dims.num_kv_heads,
        head_dim=dims.head_dim,
        hidden_act="relu2",
        max_position_embeddings=dims.seq_length,
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": dims.rope_theta,
            "partial_rotary_factor": dims.partial_rotary_factor,
        },
    )


def dims_from_config(config: Any) -> ModelDims:
    """Recover the dims of a loaded model (for MFU and parameter reporting)."""
    rope = getattr(config, "rope_parameters", None) or {}
    return ModelDims(
        num_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        num_attention_heads=config.num_attention_heads,
        num_kv_heads=config.num_key_value_heads,
        ffn_hidden_size=config.intermediate_size,
        seq_length=config.max_position_embeddings,
        vocab_size=config.vocab_size,
        rope_theta=float(rope.get("rope_theta", 10000.0)),
        partial_rotary_factor=float(rope.get("partial_rotary_factor", 1.0)),
    )


def build_model(
    preset_or_config: str | ModelDims | NemotronConfig,
    *,
    vocab_size: int | None = None,
    seed: int | None = None,
) -> PreTrainedModel:
    """A randomly initialised ``NemotronForCausalLM``; ``seed`` makes the init reproducible."""
    import torch
    from transformers import GenerationConfig, NemotronConfig, NemotronForCausalLM

    if isinstance(preset_or_config, NemotronConfig):
        config = preset_or_config
    else:
        config = make_config(resolve_dims(preset_or_config), vocab_size=vocab_size)
    if seed is not None:
        torch.manual_seed(seed)
    model = NemotronForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=BOS_ID, eos_token_id=[EOS_ID, TURN_ID], pad_token_id=PAD_ID
    )
    return model


def make_tiny_model(
    out_dir: str | Path,
    *,
    texts: Iterable[str] | None = None,
    preset: str = "tiny-test",
    seed: int = 0,
) -> Path:
    """Save a random-init tiny model plus a tokenizer trained on ``texts`` into ``out_dir``.

    Without ``texts`` the tokenizer is trained on the built-in synthetic corpus, so tests
    anywhere get a loadable model in about a second without downloading anything.
    """
    from synthloop.models.io import save_model
    from synthloop.models.tokenizer import train_tokenizer

    dims = get_preset(preset)
    if texts is None:
        from synthloop.corpus import sample_texts

        texts = sample_texts(n=400, seed=seed)
    tokenizer = train_tokenizer(list(texts), vocab_size=dims.vocab_size)
    model = build_model(dims, vocab_size=len(tokenizer), seed=seed)
    return save_model(model, tokenizer, out_dir)


def tokenizer_matches(tokenizer: PreTrainedTokenizerFast) -> None:
    """Fail early when a tokenizer's special ids do not match the model config's fixed ids."""
    ids = tokenizer.convert_tokens_to_ids(["<pad>", "<s>", "</s>", "<extra_id_1>"])
    if ids != [PAD_ID, BOS_ID, EOS_ID, TURN_ID]:
        raise ValueError(
            f"tokenizer special ids {ids} for <pad>,<s>,</s>,<extra_id_1>: expected "
            f"{[PAD_ID, BOS_ID, EOS_ID, TURN_ID]} (train it with synthloop.models.tokenizer)"
        )
