"""The ``lmEval`` suite: lm-evaluation-harness run as a library on the stage's model.

lm-eval does the task side exactly as the field runs it (prompts, few-shot sampling,
target delimiters, filters, metrics); the model side is :class:`SynthloopLM`, a ``TemplateLM``
over the stage's HF directory (so context/continuation splitting is lm-eval's own), or
lm-eval's ``vllm`` model on a GPU where vLLM is installed. Task data never comes from a hub:
``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` are set, and tasks are either lm-eval's built-in
ones with their data already in the image's datasets cache, or YAML configs in ``taskDir`` (an
``s3://``/``file://`` prefix, fetched to local disk) whose ``${TASK_DIR}`` is replaced by that
local directory, e.g. ``dataset_kwargs: {data_files: {test: ${TASK_DIR}/qa.jsonl}}``.

Metrics are ``lmeval.<task>.<metric>`` with lm-eval's filter suffix dropped for the default
filter (``exact_match,none`` -> ``lmeval.gsm8k.exact_match``; another filter keeps its name:
``lmeval.gsm8k.exact_match_flexible-extract``); stderr values are
``lmeval.<task>.<metric>_stderr``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.model import TemplateLM

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TASK_DIR_TOKEN = "${TASK_DIR}"


class SynthloopLM(TemplateLM):
    """A causal HF model (ours) behind lm-eval's model interface, greedy, batch of one."""

    def __init__(self, model: Any, tokenizer: Any, *, max_gen_toks: int = 256) -> None:
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self._device = next(model.parameters()).device
        self.max_length = int(getattr(model.config, "max_position_embeddings", 2048))
        self.max_gen_toks = max_gen_toks
        self.backend = "causal"

    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return int(bos) if bos is not None else self.eot_token_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_: Any) -> list[int]:
        return list(self.tokenizer(string, add_special_tokens=False)["input_ids"])

    @torch.no_grad()
    def _score(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        full = (context + continuation)[-(self.max_length + 1):]
        ids = torch.tensor([full[:-1]], device=self._device)
        logp = self.model(input_ids=ids).logits[0].float().log_softmax(-1)[-len(continuation):]
        target = torch.tensor(continuation, device=self._device)
        total = float(logp.gather(1, target.unsqueeze(1)).sum())
        greedy = bool((logp.argmax(-1) == target).all())
        return total, greedy

    def _loglikelihood_tokens(self, requests: Sequence[Any], disable_tqdm: bool = False,
                              **_: Any) -> list[tuple[float, bool]]:
        out = []
        for key, context_enc, continuation_enc in requests:
            result = self._score(list(context_enc), list(continuation_enc)) if continuation_enc else (0.0, True)
            out.append(result)
            self.cache_hook.add_partial("loglikelihood", key, result)
        return out

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
        """Whole-text log-likelihood in disjoint windows of the model's length."""
        out = []
        for (text,) in (r.args for r in requests):
            tokens = self.tok_encode(text)
            total, prev = 0.0, [self.prefix_token_id]
            for start in range(0, len(tokens), self.max_length):
                window = tokens[start: start + self.max_length]
                total += self._score(prev[-1:] if start == 0 else prev, window)[0]
                prev = window
            out.append(total)
        return out

    @torch.no_grad()
    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        out = []
        for context, gen_kwargs in (r.args for r in requests):
            kwargs = dict(gen_kwargs or {})
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.get("max_gen_toks", self.max_gen_toks))
            ids = self.tok_encode(context)[-(self.max_length - max_new):] or [self.prefix_token_id]
            gen = self.model.generate(input_ids=torch.tensor([ids], device=self._device),
                                      attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=self._device),
                                      max_new_tokens=max_new, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id or self.eot_token_id,
                                      eos_token_id=self.eot_token_id)
            text = self.tokenizer.decode(gen[0, len(ids):], skip_special_tokens=True)
            for stop in until:
                if stop and stop in text:
                    text = text.split(stop)[0]
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return out


def localize_task_dir(src: Path) -> Path:
    """Replace ``${TASK_DIR}`` in the YAML configs under ``src`` with ``src`` itself."""
    for path in src.rglob("*.yaml"):
        text = path.read_text()
        if TASK_DIR_TOKEN in text:
            path.write_text(text.replace(TASK_DIR_TOKEN, str(src)))
    return src


def metric_names(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """lm-eval's ``results`` -> ``lmeval.<task>.<metric>`` (see the module docstring)."""
    out: dict[str, float] = {}
    for task, values in results.items():
        for key, value in values.items():
            if "," not in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            metric, flt = key.split(",", 1)
            if isinstance(value, float) and math.isnan(value):
                continue
            stderr = metric.endswith("_stderr")
            base = metric.removesuffix("_stderr")
            name = base if flt == "none" else f"{base}_{flt}"
            out[f"lmeval.{task}.{name}{'_stderr' if stderr else ''}"] = float(value)
    return out


def run_suite(model: Any, tokenizer: Any, *, tasks: list[str], num_fewshot: int | None, limit: int | None,
              task_dir: Path | None, seed: int, model_dir: Path | None = None,
              max_gen_toks: int = 256, use_vllm: bool | None = None) -> tuple[dict[str, float], dict[str, int]]:
    """Run lm-eval's ``simple_evaluate``; returns (metrics, counts per metric). ``use_vllm``:
    lm-eval's vllm model (``evaluation.backend``); None: where a GPU and vllm are there."""
    os.environ.update(OFFLINE_ENV)
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(task_dir)) if task_dir else TaskManager()
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        raise ValueError(f"lmEval tasks {unknown} are not known to lm-eval"
                         + (f" nor defined under taskDir ({task_dir})" if task_dir else " (set taskDir for your own)"))
    lm: Any
    if use_vllm is None:
        use_vllm = torch.cuda.is_available() and _has_vllm()
    if model_dir is not None and use_vllm:
        from lm_eval.models.vllm_causallms import VLLM

        lm = VLLM(pretrained=str(model_dir), max_gen_toks=max_gen_toks, seed=seed)
    else:
        lm = SynthloopLM(model, tokenizer, max_gen_toks=max_gen_toks)
    res = simple_evaluate(model=lm, tasks=tasks, num_fewshot=num_fewshot, limit=limit, task_manager=manager,
                          random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                          fewshot_random_seed=seed, log_samples=False, bootstrap_iters=100)
    metrics = metric_names(res["results"])
    n_samples = res.get("n-samples") or {}
    counts = {}
    for name in metrics:
        task = name.split(".")[1]
        n = (n_samples.get(task) or {}).get("effective")
        if n is not None:
            counts[name] = int(n)
    return metrics, counts


def _has_vllm() -> bool:
    from importlib.util import find_spec

    return find_spec("vllm") is not None
