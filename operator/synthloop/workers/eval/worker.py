"""The eval worker: runs the CR's suites and writes ``metrics.json`` (every metric with its n).

Metric names: ``mc.<task>.acc`` / ``mc.<task>.acc_norm``, ``ifeval.prompt_strict`` (and
``_loose``, ``instruction_*``), ``reward.win_rate`` / ``reward.candidate_mean`` /
``reward.baseline_mean``, ``preference.accuracy``, ``gen.<task>.acc`` / ``gen.<task>.acc_stderr``
(generative), ``lmeval.<task>.<metric>`` (lmEval). Inputs: ``model`` (the candidate),
``reward_model`` and ``baseline_model`` for ``rewardWinRate``; ``preferenceAccuracy`` scores
with ``reward_model``, or with ``model`` when that is the reward model being evaluated. Any suite
that cannot run fails the whole run before a manifest is written.

Generation (ifeval, generative, rewardWinRate) goes through the synth worker's backends
(``evaluation.backend``: transformers, vllm or auto), greedy, so eval and synth have one loop.

Data parallel: under torchrun each rank takes a contiguous slice of every suite's items
(``shard_range``), and the per-item results are gathered in rank order (``gather_lists``), so
every metric is computed from the same ordered list as in one process and is identical to it.
Rank 0 writes ``metrics.json`` and the manifest; lmEval (lm-eval's own loop) runs on rank 0.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from synthloop.api.v1alpha1.common import EvalSuite
from synthloop.api.worker import EvalParams, WorkerConfig
from synthloop.artifacts.store import open_store
from synthloop.corpus import arithmetic_problem
from synthloop.workers.eval.suites import ifeval, multiple_choice
from synthloop.workers.runtime.distributed import (
    DistEnv,
    gather_lists,
    init_process_group,
    shard_range,
)
from synthloop.workers.runtime.run import (
    Run,
    log,
    pick_device,
    quiet_transformers,
    seed_everything,
)
from synthloop.workers.synth.backends.base import GenerationBackend, Sampling
from synthloop.workers.training.data import parse_preference, read_jsonl

Message = dict[str, str]
#: Suites that generate text (through a backend) rather than score log-likelihoods.
GENERATING = frozenset({"ifeval", "generative", "rewardWinRate"})


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


class Ranks:
    """This process's share of every suite: a contiguous slice of the items, results gathered."""

    def __init__(self, env: DistEnv) -> None:
        self.env = env

    def mine(self, n: int) -> range:
        return shard_range(n, index=self.env.rank, shards=self.env.world_size)

    def gather(self, values: list[Any]) -> list[Any]:
        """Every rank's results for its slice, in rank order: the one-process list."""
        return gather_lists(values, self.env)

    def map(self, items: Sequence[Any], fn: Any, *, what: str) -> list[Any]:
        """``fn(my slice of items)`` on every rank, gathered: the one-process ``fn(items)``."""
        share = self.mine(len(items))
        if self.env.world_size > 1:
            log("rank-share", rank=self.env.rank, what=what, items=[share.start, share.stop], of=len(items))
        return self.gather(list(fn([items[i] for i in share])) if len(share) else [])


class Generators:
    """The backends this run generates with, opened once per model and closed at the end.

    vLLM engines take most of a GPU each, so only one is open at a time (rewardWinRate's
    candidate closes before its baseline opens); transformers models stay loaded."""

    def __init__(self, io: Run, params: EvalParams, device: Any) -> None:
        self.io, self.params, self.device = io, params, device
        self.open: dict[str, GenerationBackend] = {}
        self.dirs: dict[str, Any] = {}
        self.name = ""

    def get(self, role: str, loaded: Any = None) -> GenerationBackend:
        if role not in self.open:
            from synthloop.workers.synth.backends import local_backend, resolve_local

            self.name = resolve_local(self.params.backend)
            if self.name == "vllm":
                self.close()
            self.open[role] = local_backend(
                self.name, model=str(self.model_dir(role)), batch_size=self.params.batch_size,
                device=str(self.device), loaded=loaded if self.name == "transformers" else None)
        return self.open[role]

    def model_dir(self, role: str) -> Any:
        """The local dir of input ``role``, fetched (and recorded as an input) once per run."""
        if role not in self.dirs:
            self.dirs[role] = self.io.fetch_model(role)
        return self.dirs[role]

    def close(self) -> None:
        for backend in self.open.values():
            backend.close()
        self.open.clear()


def greedy(backend: Any, prompts: Sequence[Sequence[Message]], *, max_tokens: int) -> list[str]:
    """Greedy responses, stripped: what every generating suite scores."""
    out = backend.generate(list(prompts), sampling=Sampling(max_tokens=max_tokens, temperature=0.0, n=1))
    return [c[0].text.strip() for c in out]


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
    init_process_group(env)
    ranks = Ranks(env)
    metrics: dict[str, float] = {}
    counts: dict[str, int] = {}
    types = {s.type for s in params.suites}
    gens = Generators(io, params, device)
    model = tokenizer = model_dir = loaded = None
    # Log-likelihood suites need the HF model; the transformers backend generates from it too.
    if types & {"multipleChoice", "lmEval"} or (types & GENERATING and _local_name(params) == "transformers"):
        from synthloop.models.io import LoadedModel, load_model

        model_dir = gens.dirs["model"] = io.fetch_model("model")
        model, tokenizer = load_model(model_dir)
        model.to(device)
        loaded = LoadedModel(model, tokenizer)

    try:
        for n, suite in enumerate(params.suites):
            if suite.type == "multipleChoice":
                for task in suite.tasks or list(multiple_choice.BUILTIN_TASKS):
                    name = _task_name(task)
                    items = (multiple_choice.parse_task(_read(io, store, task), name=name)
                             if "://" in task else multiple_choice.builtin_task(task))
                    chosen = list(range(len(items)))[: suite.limit] if suite.limit else list(range(len(items)))
                    right = ranks.map(chosen, partial(multiple_choice.score_items, model, tokenizer, items,
                                                      k_shot=suite.k_shot, seed=params.seed), what=f"mc.{name}")
                    for key, k in (("acc", 0), ("acc_norm", 1)):
                        metrics[f"mc.{name}.{key}"] = sum(r[k] for r in right) / len(right)
                        counts[f"mc.{name}.{key}"] = len(right)
            elif suite.type == "ifeval":
                prompts: list[ifeval.IFItem] = []
                for task in suite.tasks or ["synthetic"]:
                    if task == "synthetic":
                        prompts += ifeval.synthetic_items(suite.limit or 32, seed=params.seed)
                    else:
                        prompts += ifeval.parse_items(_read(io, store, task), name=_task_name(task))
                prompts = prompts[: suite.limit] if suite.limit else prompts
                backend = gens.get("model", loaded)
                responses = ranks.map(prompts, lambda part, b=backend: greedy(
                    b, [[{"role": "user", "content": i.prompt}] for i in part], max_tokens=params.max_new_tokens),
                    what="ifeval")
                m, c = ifeval.score_responses(prompts, responses)
                metrics.update(m)
                counts.update(c)
            elif suite.type == "generative":
                m, c = _generative(io, store, suite, params, gens.get("model", loaded), ranks)
                metrics.update(m)
                counts.update(c)
            elif suite.type == "lmEval":
                if env.is_main:
                    m, c = _lmeval(config, store, suite, params, model, tokenizer, model_dir, n)
                    metrics.update(m)
                    counts.update(c)
            elif suite.type == "rewardWinRate":
                m, c = _win_rate(io, gens, loaded, suite, params, device, ranks)
                metrics.update(m)
                counts.update(c)
            elif suite.type == "preferenceAccuracy":
                m, c = _preference_accuracy(io, gens, config, suite, params, device, ranks)
                metrics.update(m)
                counts.update(c)
            log("suite", index=n, type=suite.type, rank=env.rank)
            io.progress(done=n + 1, total=len(params.suites), suite=suite.type)
    finally:
        gens.close()

    io.finish(metrics=metrics, counts=counts, ranks=env.world_size,
              **({"generation_backend": gens.name} if gens.name else {}))
    return 0


def _local_name(params: EvalParams) -> str:
    from synthloop.workers.synth.backends import resolve_local

    return resolve_local(params.backend)


def _read(io: Run, store: Any, uri: str) -> str:
    data = store.get_bytes(uri)
    from hashlib import sha256

    from synthloop.artifacts.manifest import ArtifactRef

    io.inputs.append(ArtifactRef(uri=uri, sha256=sha256(data).hexdigest(), size=len(data), role="task"))
    from synthloop.workers.runtime.records import as_jsonl_text

    return as_jsonl_text(data, name=uri)  # JSONL, gzipped JSONL or Parquet, as released


def _lmeval(config: WorkerConfig, store: Any, suite: EvalSuite, params: EvalParams, model: Any,
            tokenizer: Any, model_dir: Any, n: int) -> tuple[dict[str, float], dict[str, int]]:
    from synthloop.workers.eval.suites import lmeval

    task_dir = None
    if suite.task_dir:
        task_dir = lmeval.localize_task_dir(
            store.download_dir(suite.task_dir.rstrip("/") + "/", config.scratch() / f"lmeval-{n}"))
    return lmeval.run_suite(model, tokenizer, tasks=list(suite.tasks), num_fewshot=suite.num_fewshot,
                            limit=suite.limit, task_dir=task_dir, seed=params.seed, model_dir=model_dir,
                            max_gen_toks=params.max_new_tokens, use_vllm=_local_name(params) == "vllm")


def _generative(io: Run, store: Any, suite: EvalSuite, params: EvalParams, backend: GenerationBackend,
                ranks: Ranks) -> tuple[dict[str, float], dict[str, int]]:
    """``gen.<task>.acc`` and ``gen.<task>.acc_stderr``: greedy answers, verifier-scored."""
    from synthloop.workers.eval.suites import generative

    memo = generative.Memo(backend)
    metrics: dict[str, float] = {}
    counts: dict[str, int] = {}
    for task in suite.tasks or list(generative.BUILTIN_TASKS):
        name = _task_name(task)
        items = (generative.parse_task(_read(io, store, task), name=name) if "://" in task
                 else generative.builtin_task(task, n=suite.limit or 64, seed=params.seed))
        prompts = generative.prompts(items, k_shot=suite.k_shot, seed=params.seed, limit=suite.limit)
        responses = ranks.map(prompts, lambda part: [c[0].text.strip() for c in memo.generate(
            part, sampling=generative.greedy_sampling(params.max_new_tokens))], what=f"gen.{name}")
        if not ranks.env.is_main:  # verifying (python tests in a sandbox) is rank 0's alone
            continue
        res = generative.result_of(items, responses)
        metrics[f"gen.{name}.acc"], metrics[f"gen.{name}.acc_stderr"] = res.accuracy, res.stderr
        counts[f"gen.{name}.acc"] = counts[f"gen.{name}.acc_stderr"] = res.n
        log("generative", task=name, acc=round(res.accuracy, 4), stderr=round(res.stderr, 4), n=res.n,
            sample=res.responses[:2])
    return metrics, counts


def _win_rate(io: Run, gens: Generators, loaded: Any, suite: EvalSuite, params: EvalParams,
              device: Any, ranks: Ranks) -> tuple[dict[str, float], dict[str, int]]:
    """Reward-model win rate of the candidate's responses over the baseline's (ties count 1/2)."""
    from synthloop.models.reward import load_reward_model

    prompts: list[list[Message]] = []
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
    mine = [prompts[i] for i in ranks.mine(len(prompts))]
    cand = greedy(gens.get("model", loaded), mine, max_tokens=params.max_new_tokens) if mine else []
    base = greedy(gens.get("baseline_model"), mine, max_tokens=params.max_new_tokens) if mine else []
    scorer = load_reward_model(gens.model_dir("reward_model"), device=str(device))

    def rewards(responses: list[str]) -> list[float]:
        convs = [[*p, {"role": "assistant", "content": r}] for p, r in zip(mine, responses, strict=True)]
        return list(scorer.reward(convs, params.reward_weights)) if convs else []

    rc, rb = ranks.gather(rewards(cand)), ranks.gather(rewards(base))
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(rc, rb, strict=True))
    n = len(prompts)
    return ({"reward.win_rate": wins / n, "reward.candidate_mean": sum(rc) / n,
             "reward.baseline_mean": sum(rb) / n},
            {"reward.win_rate": n, "reward.candidate_mean": n, "reward.baseline_mean": n})


def _preference_accuracy(io: Run, gens: Generators, config: WorkerConfig, suite: EvalSuite, params: EvalParams,
                         device: Any, ranks: Ranks) -> tuple[dict[str, float], dict[str, int]]:
    """The share of held-out pairs whose chosen response the reward model scores higher."""
    from synthloop.models.reward import load_reward_model

    role = "reward_model" if "reward_model" in config.inputs else "model"
    scorer = load_reward_model(gens.model_dir(role), device=str(device))
    pairs: list[Any] = []
    for task in suite.tasks:
        found, _ = read_jsonl(_read(io, io.store, task), parse=parse_preference, what=task,
                              max_malformed_fraction=0.0)
        pairs += found[: suite.limit] if suite.limit else found

    def wins(part: list[Any]) -> list[bool]:
        rc = scorer.reward([p.conversation(p.chosen) for p in part], params.reward_weights)
        rl = scorer.reward([p.conversation(p.rejected) for p in part], params.reward_weights)
        return [a > b for a, b in zip(rc, rl, strict=True)]

    won = ranks.map(pairs, wins, what="preference")
    return {"preference.accuracy": sum(won) / len(won)}, {"preference.accuracy": len(won)}
