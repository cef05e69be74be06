"""The eval worker: runs the CR's suites and writes ``metrics.json`` (every metric with its n).

Metric names: ``mc.<task>.acc`` / ``mc.<task>.acc_norm``, ``ifeval.prompt_strict`` (and
``_loose``, ``instruction_*``), ``reward.win_rate`` / ``reward.candidate_mean`` /
``reward.baseline_mean``, ``preference.accuracy``, ``gen.<task>.acc`` / ``gen.<task>.acc_stderr``
(generative), ``lmeval.<task>.<metric>`` (lmEval). Inputs: ``model`` (the candidate),
``reward_model`` and ``baseline_model`` for ``rewardWinRate``; ``preferenceAccuracy`` scores
with ``reward_model``, or with ``model`` when that is the reward model being evaluated. Any suite that cannot run fails the whole run before a manifest is written.
"""

from __future__ import annotations

import random
from pathlib import PurePosixPath
from typing import Any

from synthloop.api.v1alpha1.common import EvalSuite
from synthloop.api.worker import EvalParams, WorkerConfig
from synthloop.artifacts.store import open_store
from synthloop.corpus import arithmetic_problem
from synthloop.workers.eval.suites import ifeval, multiple_choice
from synthloop.workers.eval.suites.generation import generate
from synthloop.workers.runtime.distributed import DistEnv
from synthloop.workers.runtime.run import (
    Run,
    log,
    pick_device,
    quiet_transformers,
    seed_everything,
)
from synthloop.workers.training.data import parse_preference, read_jsonl


def _task_name(task: str) -> str:
    return PurePosixPath(task.rstrip("/")).stem if "://" in task else task


def check_suites(suites: list[EvalSuite], inputs: dict[str, str]) -> None:
    for s in suites:
        if s.type == "rewardWinRate":
            missing = [r for r in ("reward_model", "baseline_model") if r not in inputs]
            if missing:
                raise ValueError(f"rewardWinRate suite needs inputs {missing} (have {sorted(inputs)})")
        if s.type == "preferenceAccuracy" and not s.tasks:
            raise ValueError("preferenceAccuracy suite needs tasks: preference JSONL URIs")
        if s.type == "multipleChoice":
            for t in s.tasks or []:
                if "://" not in t and t not in multiple_choice.BUILTIN_TASKS:
                    raise ValueError(f"multipleChoice task {t!r}: expected one of "
                                     f"{list(multiple_choice.BUILTIN_TASKS)} or a JSONL URI")


def run(config: WorkerConfig) -> int:
    quiet_transformers()
    params = EvalParams.model_validate(config.params)
    env = DistEnv.from_env()
    store = open_store(config.output)
    io = Run(config, store, env=env)
    if io.already_finished():
        return 0
    seed_everything(params.seed)
    check_suites(params.suites, config.inputs)
    device = pick_device(env)
    metrics: dict[str, float] = {}
    counts: dict[str, int] = {}
    types = {s.type for s in params.suites}

    model = tokenizer = model_dir = None
    if types - {"preferenceAccuracy"}:
        from synthloop.models.io import load_model

        model_dir = io.fetch_model("model")
        model, tokenizer = load_model(model_dir)
        model.to(device)

    for n, suite in enumerate(params.suites):
        if suite.type == "multipleChoice":
            for task in suite.tasks or list(multiple_choice.BUILTIN_TASKS):
                name = _task_name(task)
                items = (multiple_choice.parse_task(_read(io, store, task), name=name)
                         if "://" in task else multiple_choice.builtin_task(task))
                res = multiple_choice.evaluate_task(model, tokenizer, items, k_shot=suite.k_shot,
                                                    seed=params.seed, limit=suite.limit)
                for key in ("acc", "acc_norm"):
                    metrics[f"mc.{name}.{key}"] = res[key]
                    counts[f"mc.{name}.{key}"] = int(res["n"])
        elif suite.type == "ifeval":
            prompts: list[ifeval.IFItem] = []
            for task in suite.tasks or ["synthetic"]:
                if task == "synthetic":
                    prompts += ifeval.synthetic_items(suite.limit or 32, seed=params.seed)
                else:
                    prompts += ifeval.parse_items(_read(io, store, task), name=_task_name(task))
            prompts = prompts[: suite.limit] if suite.limit else prompts
            responses = generate(model, tokenizer, [[{"role": "user", "content": i.prompt}] for i in prompts],
                                 max_new_tokens=params.max_new_tokens, batch_size=params.batch_size)
            m, c = ifeval.score_responses(prompts, responses)
            metrics.update(m)
            counts.update(c)
        elif suite.type == "generative":
            assert model_dir is not None
            m, c = _generative(io, store, suite, params, model_dir)
            metrics.update(m)
            counts.update(c)
        elif suite.type == "lmEval":
            from synthloop.workers.eval.suites import lmeval

            task_dir = None
            if suite.task_dir:
                task_dir = lmeval.localize_task_dir(
                    store.download_dir(suite.task_dir.rstrip("/") + "/", config.scratch() / f"lmeval-{n}"))
            m, c = lmeval.run_suite(model, tokenizer, tasks=list(suite.tasks), num_fewshot=suite.num_fewshot,
                                    limit=suite.limit, task_dir=task_dir, seed=params.seed, model_dir=model_dir,
                                    max_gen_toks=params.max_new_tokens)
            metrics.update(m)
            counts.update(c)
        elif suite.type == "rewardWinRate":
            m, c = _win_rate(io, model, tokenizer, suite, params, device)
            metrics.update(m)
            counts.update(c)
        elif suite.type == "preferenceAccuracy":
            from synthloop.models.reward import load_reward_model

            role = "reward_model" if "reward_model" in config.inputs else "model"
            scorer = load_reward_model(io.fetch_model(role), device=str(device))
            wins = total = 0
            for task in suite.tasks:
                pairs, _ = read_jsonl(_read(io, store, task), parse=parse_preference, what=task,
                                      max_malformed_fraction=0.0)
                pairs = pairs[: suite.limit] if suite.limit else pairs
                rc = scorer.reward([p.conversation(p.chosen) for p in pairs], params.reward_weights)
                rl = scorer.reward([p.conversation(p.rejected) for p in pairs], params.reward_weights)
                wins += sum(a > b for a, b in zip(rc, rl, strict=True))
                total += len(pairs)
            metrics["preference.accuracy"] = wins / total
            counts["preference.accuracy"] = total
        log("suite", index=n, type=suite.type)
        io.progress(done=n + 1, total=len(params.suites), suite=suite.type)

    io.finish(metrics=metrics, counts=counts)
    return 0


def _read(io: Run, store: Any, uri: str) -> str:
    data = store.get_bytes(uri)
    from hashlib import sha256

    from synthloop.artifacts.manifest import ArtifactRef

    io.inputs.append(ArtifactRef(uri=uri, sha256=sha256(data).hexdigest(), size=len(data), role="task"))
    from synthloop.workers.runtime.records import as_jsonl_text

    return as_jsonl_text(data, name=uri)  # JSONL, gzipped JSONL or Parquet, as released


def _generative(io: Run, store: Any, suite: EvalSuite, params: EvalParams,
                model_dir: Any) -> tuple[dict[str, float], dict[str, int]]:
    """``gen.<task>.acc`` and ``gen.<task>.acc_stderr``: greedy answers through the synth
    worker's backend (vLLM on a GPU where installed, else transformers), verifier-scored."""
    from importlib.util import find_spec

    import torch

    from synthloop.workers.eval.suites import generative
    from synthloop.workers.synth.backends import make_backend
    from synthloop.workers.synth.params import GeneratorParams

    backend_name = "vllm" if torch.cuda.is_available() and find_spec("vllm") else "transformers"
    backend = make_backend(GeneratorParams(backend=backend_name, batch_size=params.batch_size),
                           model=str(model_dir))
    memo = generative.Memo(backend)
    metrics: dict[str, float] = {}
    counts: dict[str, int] = {}
    try:
        for task in suite.tasks or list(generative.BUILTIN_TASKS):
            name = _task_name(task)
            items = (generative.parse_task(_read(io, store, task), name=name) if "://" in task
                     else generative.builtin_task(task, n=suite.limit or 64, seed=params.seed))
            res = generative.evaluate(memo, items, k_shot=suite.k_shot, seed=params.seed,
                                      max_tokens=params.max_new_tokens, limit=suite.limit)
            metrics[f"gen.{name}.acc"], metrics[f"gen.{name}.acc_stderr"] = res.accuracy, res.stderr
            counts[f"gen.{name}.acc"] = counts[f"gen.{name}.acc_stderr"] = res.n
            log("generative", task=name, acc=round(res.accuracy, 4), stderr=round(res.stderr, 4), n=res.n,
                sample=res.responses[:2])
    finally:
        backend.close()
    return metrics, counts


def _win_rate(io: Run, model: Any, tokenizer: Any, suite: EvalSuite, params: EvalParams,
              device: Any) -> tuple[dict[str, float], dict[str, int]]:
    """Reward-model win rate of the candidate's responses over the baseline's (ties count 1/2)."""
    from synthloop.models.io import load_model
    from synthloop.models.reward import load_reward_model

    prompts: list[list[dict[str, str]]] = []
    for task in suite.tasks or ["arithmetic"]:
        if task == "arithmetic":
            rng = random.Random(f"winrate:{params.seed}")
            prompts += [[{"role": "user", "content": arithmetic_problem(rng)[0]}]
                        for _ in range(suite.limit or 32)]
        else:
            pairs, _ = read_jsonl(_read(io, io.store, task), parse=parse_preference, what=task,
                                  max_malformed_fraction=0.0)
            prompts += [p.prompt for p in pairs]
    prompts = prompts[: suite.limit] if suite.limit else prompts
    baseline, btok = load_model(io.fetch_model("baseline_model"))
    baseline.to(device)
    cand = generate(model, tokenizer, prompts, max_new_tokens=params.max_new_tokens,
                    batch_size=params.batch_size)
    base = generate(baseline, btok, prompts, max_new_tokens=params.max_new_tokens,
                    batch_size=params.batch_size)
    scorer = load_reward_model(io.fetch_model("reward_model"), device=str(device))
    rc = scorer.reward([[*p, {"role": "assistant", "content": r}] for p, r in zip(prompts, cand, strict=True)],
                       params.reward_weights)
    rb = scorer.reward([[*p, {"role": "assistant", "content": r}] for p, r in zip(prompts, base, strict=True)],
                       params.reward_weights)
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(rc, rb, strict=True))
    n = len(prompts)
    return ({"reward.win_rate": wins / n, "reward.candidate_mean": sum(rc) / n,
             "reward.baseline_mean": sum(rb) / n},
            {"reward.win_rate": n, "reward.candidate_mean": n, "reward.baseline_mean": n})
