"""Saving and loading model directories, locally or from the artifact store.

A model artifact is a Hugging Face directory (``config.json``, ``model.safetensors``,
``tokenizer.json``, ``tokenizer_config.json`` with the chat template). ``s3://`` models are
downloaded once into a cache keyed by URI, so several stages in one pod share one copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

    from synthloop.artifacts.store import ArtifactStore

CACHE_ENV = "SYNTHLOOP_MODEL_CACHE"
_COMPLETE = ".synthloop-complete"


class LoadedModel(NamedTuple):
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerFast


def save_model(
    model: Any, tokenizer: Any, out_dir: str | Path, *, state_dict: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` and ``tokenizer`` as one HF directory (safetensors); returns the dir.

    ``state_dict`` overrides the module's weights (consolidated ZeRO-3 weights)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if state_dict is not None:
        model.save_pretrained(out, state_dict=state_dict)
    else:
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # transformers 5 writes the template to chat_template.jinja; older loaders (and the
    # contract) read it from tokenizer_config.json, so keep it in both places.
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    if tokenizer.chat_template and "chat_template" not in cfg:
        cfg["chat_template"] = tokenizer.chat_template
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return out


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    return Path(tempfile.gettempdir()) / "synthloop-model-cache"


def fetch_model_dir(
    uri_or_dir: str | Path,
    *,
    store: ArtifactStore | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """A local directory holding the model at ``uri_or_dir`` (downloaded once per URI).

    Accepts a local path, a model prefix (``.../model/``) or a run prefix whose ``model/``
    holds the model, so a producer's run URI can be passed directly.
    """
    text = str(uri_or_dir)
    if "://" not in text:
        path = Path(text)
        if (path / "config.json").is_file():
            return path
        if (path / "model" / "config.json").is_file():
            return path / "model"
        raise FileNotFoundError(f"model directory {path}: no config.json (expected an HF model dir)")
    from synthloop.artifacts.store import open_store
    from synthloop.artifacts.uris import join

    store = store or open_store(text)
    prefix = text.rstrip("/")
    if not store.exists(join(prefix, "config.json")):
        if store.exists(join(prefix, "model", "config.json")):
            prefix = join(prefix, "model")
        else:
            raise FileNotFoundError(f"model {text}: no config.json there or under model/")
    key = hashlib.sha256(prefix.encode()).hexdigest()[:24]
    root = _cache_root(cache_dir)
    dest = root / key
    if (dest / _COMPLETE).is_file():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{key}.partial-", dir=root))
    try:
        store.download_dir(prefix + "/", partial)
        (partial / _COMPLETE).write_text(prefix)
        if (dest / _COMPLETE).is_file():  # another process (a rank of this pod) won the race:
            return dest                   # keep its copy, which it may be reading already
        if dest.exists():  # a stale incomplete copy
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.replace(partial, dest)
        except OSError:
            if not (dest / _COMPLETE).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return dest


def load_tokenizer(
    uri_or_dir: str | Path,
    *,
    store: ArtifactStore | None = None,
    cache_dir: str | Path | None = None,
) -> PreTrainedTokenizerFast:
    """The tokenizer of a model directory or URI (right padding, as training expects)."""
    from transformers import AutoTokenizer

    path = fetch_model_dir(uri_or_dir, store=store, cache_dir=cache_dir)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "right"
    return tok


def load_model(
    uri_or_dir: str | Path,
    *,
    store: ArtifactStore | None = None,
    cache_dir: str | Path | None = None,
    dtype: Any = None,
) -> LoadedModel:
    """Load ``(model, tokenizer)`` from a directory or an ``s3://``/``file://`` URI (eval mode)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = fetch_model_dir(uri_or_dir, store=store, cache_dir=cache_dir)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype) if dtype is not None else \
        AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "right"
    return LoadedModel(model, tok)
