"""The align worker: ordered SFT, DPO and RPO stages on one policy.

* SFT: next-token loss on assistant turns only.
* DPO: ``-log sigma(a)`` (TRL sigmoid), plus ``sftWeight`` x NLL of the chosen response.
* RPO: the backward KL between Bern(sigma(eta*(r_c - r_l))) and Bern(sigma(a)) (``rpo_bwd_kl``),
  plus the same optional SFT term. Each iteration starts from the previous iteration's result
  and uses it as the reference (``reference: base`` pins the job's base model instead: the
``base_model`` input when given, else ``model``).

Reference log-probs are computed once per stage/iteration before training (the reference is
frozen), so no second model is held beside the policy: ``reference: previous`` is the policy
itself; ``reference: base``, when the policy does not start from the base, loads the base alone,
scores every pair and frees it before the policy is loaded. On GPUs with ``deepspeed`` the
policy trains under DeepSpeed ZeRO (``parallelism.zeroStage``; ``workers/runtime/sharded.py``),
one engine for the Job whose optimizer restarts at each unit; ``activationCheckpointing``
recomputes activations. The stage list is checked against the inputs
before anything is trained (a ``data`` input, a SynthRound prefix, supplies ``sft.jsonl`` and
``preference.jsonl`` when those inputs are not given); each finished stage (and RPO iteration) is saved under
``<output>/stages/<n>-<type>[-<iter>]/`` with its manifest, and a retried pod skips the stages
that are already complete.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import torch

from synthloop.api.v1alpha1.align import Stage
from synthloop.api.worker import AlignParams, WorkerConfig
from synthloop.artifacts.manifest import (
    ArtifactRef,
    Manifest,
    ManifestError,
    verify_manifest,
    write_manifest,
)
from synthloop.artifacts.store import open_store
from synthloop.models.chat import encode_conversation, pad_batch
from synthloop.models.io import save_model
from synthloop.workers.runtime.distributed import DistEnv, gather_lists, shard_range
from synthloop.workers.runtime.run import (
    Engine,
    Run,
    log,
    pick_device,
    quiet_transformers,
    seed_everything,
)
from synthloop.workers.runtime.sharded import (
    finetune_deepspeed,
    micro_batches,
    steps_per_rank,
    zero3_loading,
)
from synthloop.workers.training.data import (
    PreferencePair,
    batches,
    parse_preference,
    parse_sft,
    read_jsonl,
)
from synthloop.workers.training.losses import (
    IGNORE_INDEX,
    causal_lm_loss,
    dpo_loss,
    rpo_bwd_kl_loss,
    sequence_logps,
)


class StagePlanError(ValueError):
    """The stage list cannot run with the inputs given."""


def unit_names(stages: list[Stage]) -> list[tuple[int, Stage, int, str]]:
    """``(stage index, stage, iteration, name)`` for every unit of work, in order."""
    out = []
    for i, st in enumerate(stages):
        for it in range(st.iterations):
            suffix = f"-{it + 1}" if st.type == "rpo" else ""
            out.append((i, st, it, f"{i}-{st.type}{suffix}"))
    return out


def data_inputs(inputs: dict[str, str]) -> dict[str, str]:
    """``sft``/``preference`` inputs, defaulting to the files of a SynthRound ``data`` prefix."""
    from synthloop.artifacts.uris import join

    out = dict(inputs)
    if "data" in inputs:
        out.setdefault("sft", join(inputs["data"], "sft.jsonl"))
        out.setdefault("preference", join(inputs["data"], "preference.jsonl"))
    return out


def check_plan(params: AlignParams, inputs: dict[str, str], pairs_have_rewards: bool | None) -> None:
    kinds = {s.type for s in params.stages}
    if "sft" in kinds and "sft" not in inputs:
        raise StagePlanError("an sft stage needs an 'sft' input (SFT JSONL); inputs: "
                             f"{sorted(inputs)}")
    if kinds & {"dpo", "rpo"} and "preference" not in inputs:
        raise StagePlanError("dpo/rpo stages need a 'preference' input (pairs JSONL); inputs: "
                             f"{sorted(inputs)}")
    if "rpo" in kinds and pairs_have_rewards is False and "reward_model" not in inputs:
        raise StagePlanError("rpo stages need rewards: chosen_reward/rejected_reward on every "
                             "pair or a 'reward_model' input")


class Policy:
    """The model being aligned, its tokenizer and device, with batched log-prob helpers.

    Under torchrun every rank holds the same weights; ``mine`` picks a rank's share of a
    batch's micro-batches (the same micro-batches one process would run, so the per-micro
    token means, and hence the summed gradients, are the one-process ones).
    """

    def __init__(self, model: Any, tokenizer: Any, device: torch.device, max_length: int,
                 micro: int, env: DistEnv | None = None) -> None:
        self.model, self.tok, self.device, self.max_length, self.micro = (
            model, tokenizer, device, max_length, micro)
        self.env = env or DistEnv()
        self.pad = int(model.config.pad_token_id)
        self.lockstep = False  # ZeRO-3: every rank runs as many forward passes (they gather weights)

    def mine(self, items: list[Any]) -> list[list[Any]]:
        """This rank's micro-batches of ``items`` (a contiguous run of them; maybe none)."""
        micros = batches(items, self.micro)
        return [micros[i] for i in shard_range(len(micros), index=self.env.rank, shards=self.env.world_size)]

    def step_micros(self, engine: Engine, batch: list[Any], lr: float) -> list[tuple[list[Any], float]]:
        """Start a global step on ``batch``: this rank's micro-batches with their weight (see
        ``sharded.micro_batches``: under DeepSpeed every rank runs as many, fillers weighted 0)."""
        total = len(batches(batch, self.micro))
        ds = engine.ds_engine is not None
        engine.begin(lr, global_batch_size=(self.micro * steps_per_rank(total, self.env.world_size)
                                            * self.env.world_size) if ds else None)
        return micro_batches(self.mine(batch), total=total, world_size=self.env.world_size,
                             filler=batch[:self.micro], deepspeed=ds)

    def encode(self, convs: list[list[dict[str, str]]], train_on: str) -> tuple[torch.Tensor, ...]:
        rows = [encode_conversation(self.tok, c, max_length=self.max_length, train_on=train_on)  # type: ignore[arg-type]
                for c in convs]
        ids, mask, labels = pad_batch(rows, pad_id=self.pad)
        return ids.to(self.device), mask.to(self.device), labels.to(self.device)

    def logits(self, model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids, attention_mask=mask).logits

    def pair_logps(self, model: Any, pairs: list[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log pi(chosen), log pi(rejected), chosen NLL per token) for a batch of pairs."""
        convs = [p.conversation(p.chosen) for p in pairs] + [p.conversation(p.rejected) for p in pairs]
        ids, mask, labels = self.encode(convs, "last")
        logits = self.logits(model, ids, mask)
        logps = sequence_logps(logits, labels)
        n = len(pairs)
        chosen_tokens = (labels[:n, 1:] != IGNORE_INDEX).sum(-1).clamp(min=1)
        nll = -(logps[:n] / chosen_tokens).mean()
        return logps[:n], logps[n:], nll

    @torch.no_grad()
    def reference_logps(self, pairs: list[PreferencePair]) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(chosen), log pi(rejected) of every pair, on every rank: each rank scores its
        micro-batches and the ranks gather them in order."""
        self.model.eval()
        rows: list[tuple[float, float]] = []
        for b, keep in micro_batches(self.mine(pairs), total=len(batches(pairs, self.micro)),
                                     world_size=self.env.world_size, filler=pairs[:self.micro],
                                     deepspeed=self.lockstep):
            lc, lr, _ = self.pair_logps(self.model, b)
            if keep:
                rows.extend(zip(lc.tolist(), lr.tolist(), strict=True))
        self.model.train()
        every = gather_lists(rows, self.env)
        return (torch.tensor([c for c, _ in every], dtype=torch.float32),
                torch.tensor([r for _, r in every], dtype=torch.float32))


def run(config: WorkerConfig) -> int:
    quiet_transformers()
    params = AlignParams.model_validate(config.params)
    env = DistEnv.from_env()
    config = config.model_copy(update={"inputs": data_inputs(config.inputs)})
    store = open_store(config.output)
    io = Run(config, store, env=env)
    if io.already_finished():
        return 0
    seed_everything(params.seed)
    kinds = {s.type for s in params.stages}
    check_plan(params, config.inputs, None)

    counts: dict[str, int] = {}
    sft_rows: list[list[dict[str, str]]] = []
    pairs: list[PreferencePair] = []
    if "sft" in kinds:
        sft_rows, counts["sft_malformed"] = read_jsonl(
            io.fetch_text("sft"), parse=parse_sft, what="sft",
            max_malformed_fraction=params.max_malformed_fraction)
        counts["sft_rows"] = len(sft_rows)
    if kinds & {"dpo", "rpo"}:
        pairs, counts["preference_malformed"] = read_jsonl(
            io.fetch_text("preference"), parse=parse_preference, what="preference",
            max_malformed_fraction=params.max_malformed_fraction)
        counts["preference_pairs"] = len(pairs)
    have_rewards = all(p.chosen_reward is not None and p.rejected_reward is not None for p in pairs)
    check_plan(params, config.inputs, have_rewards if pairs else None)

    base_dir = io.fetch_model("model")
    rewards: tuple[torch.Tensor, torch.Tensor] | None = None
    if "rpo" in kinds:
        rewards = _pair_rewards(io, pairs, have_rewards)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(env)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    units = unit_names(params.stages)
    # Resume: the last unit with a complete stage manifest.
    start, model_dir = 0, base_dir
    for k, (_, _, _, name) in enumerate(units):
        try:
            verify_manifest(store, io.uri("stages", name), check_sha256=False)
        except ManifestError:
            break
        start = k + 1
    if start:
        model_dir = config.scratch() / "resume"
        shutil.rmtree(model_dir, ignore_errors=True)
        store.download_dir(io.uri("stages", units[start - 1][3]) + "/", model_dir)
        log("resumed", after=units[start - 1][3])
    ds_cfg = finetune_deepspeed(params, params.parallelism, device=device, env=env,
                                micro_batch_size=params.micro_batch_size)
    # ``reference: base``: the job's input model (``base_model`` when the operator runs one Job
    # per stage; ``model`` is then the previous stage's result). When the policy starts from it,
    # the policy scores it; else it is loaded alone, before the policy, and freed.
    wants_base = any(st.type != "sft" and st.reference == "base" for _, st, _, _ in units[start:])
    base_is_start = start == 0 and config.inputs.get("base_model", config.inputs["model"]) == config.inputs["model"]
    base_ref: tuple[torch.Tensor, torch.Tensor] | None = None
    if wants_base and not base_is_start:
        ref_dir = io.fetch_model("base_model") if "base_model" in config.inputs else base_dir
        ref_model = AutoModelForCausalLM.from_pretrained(
            ref_dir, **({"dtype": torch.bfloat16} if device.type == "cuda" else {})).to(device)
        max_length = params.max_length or int(ref_model.config.max_position_embeddings)
        base_ref = Policy(ref_model, tokenizer, device, max_length, params.micro_batch_size, env).reference_logps(pairs)
        del ref_model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    loading = zero3_loading(ds_cfg)  # noqa: F841  (alive while the policy loads: ZeRO-3 partitions it)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if ds_cfg is None:
        model.to(device)  # DeepSpeed places (and partitions) it itself
    if params.parallelism.activation_checkpointing:
        model.gradient_checkpointing_enable()  # what the operator's capacity check assumed
    model.train()
    max_length = params.max_length or int(model.config.max_position_embeddings)
    policy = Policy(model, tokenizer, device, max_length, params.micro_batch_size, env)
    # each rank runs its micro-batches of every global batch; gradients summed at the step
    engine = Engine(model, lr=units[start][1].lr if start < len(units) else 0.0,
                    weight_decay=params.weight_decay, grad_clip=1.0, env=env, ddp=False, ds_config=ds_cfg)
    policy.lockstep = engine.ds_engine is not None
    if wants_base and base_ref is None:
        base_ref = policy.reference_logps(pairs)  # the policy's start is the base
    metrics: dict[str, float] = {}

    for k, (i, st, it, name) in enumerate(units):
        if k < start:
            continue
        if k > start:
            engine.reset_optimizer()  # each stage and RPO iteration starts a fresh AdamW
        rng = random.Random(f"{params.seed}:{name}")
        if st.type == "sft":
            losses = _train_sft(policy, engine, st, sft_rows, rng, io, name)
            metrics[f"stage.{name}.loss.first"] = losses[0]
            metrics[f"stage.{name}.loss.final"] = losses[-1]
        else:
            if st.reference == "base":
                assert base_ref is not None
                ref = base_ref
            else:
                ref = policy.reference_logps(pairs)  # previous checkpoint = reference
            before = _margin(ref)
            _train_pref(policy, engine, st, pairs, ref, rewards, rng, io, name)
            after = _margin(policy.reference_logps(pairs))
            metrics[f"stage.{name}.margin_before"] = before
            metrics[f"stage.{name}.margin_after"] = after
            if env.is_main:
                log("stage", name=name, margin_before=before, margin_after=after)
        full = engine.full_state_dict()  # ZeRO-3: gathered on every rank (a collective)
        if env.is_main:
            _save_stage(io, name, model, tokenizer, config.scratch(), state_dict=full)

    full = engine.full_state_dict()
    if not env.is_main:  # the ranks hold the same weights; rank 0 writes them and the manifest
        return 0
    out = config.scratch() / "final-model"
    shutil.rmtree(out, ignore_errors=True)
    save_model(model, tokenizer, out, state_dict=full)
    io.upload_model(out)
    io.finish(metrics=metrics, counts=counts, model_uri=io.uri("model") + "/",
              stages=[u[3] for u in units])
    return 0


def _margin(logps: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Mean chosen-minus-rejected log-likelihood margin."""
    return float((logps[0] - logps[1]).mean())


def _pair_rewards(io: Run, pairs: list[PreferencePair], have: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if have:
        return (torch.tensor([p.chosen_reward for p in pairs], dtype=torch.float32),
                torch.tensor([p.rejected_reward for p in pairs], dtype=torch.float32))
    from synthloop.models.reward import load_reward_model

    scorer = load_reward_model(io.fetch_model("reward_model"))
    rc = scorer.reward([p.conversation(p.chosen) for p in pairs])
    rl = scorer.reward([p.conversation(p.rejected) for p in pairs])
    return torch.tensor(rc), torch.tensor(rl)


def _train_sft(policy: Policy, engine: Engine, st: Stage, rows: list[list[dict[str, str]]],
               rng: random.Random, io: Run, name: str) -> list[float]:
    losses: list[float] = []
    total = st.epochs * max(1, -(-len(rows) // st.global_batch_size))
    for _ in range(st.epochs):
        order = list(rows)
        rng.shuffle(order)
        for batch in batches(order, st.global_batch_size):
            step_loss = 0.0
            if not losses and policy.env.world_size > 1:  # what each rank took of the first batch
                log("rank-share", rank=policy.env.rank, world=policy.env.world_size, stage=st.type,
                    rows=[i for m in policy.mine(list(range(len(batch)))) for i in m], of=len(batch))
            for micro, weight in policy.step_micros(engine, batch, st.lr):
                ids, mask, labels = policy.encode(micro, "assistant")
                loss = causal_lm_loss(policy.logits(engine, ids, mask), labels)
                engine.backward(loss * (weight * len(micro) / len(batch)))
                step_loss += float(loss.detach()) * weight * len(micro) / len(batch)
            engine.step(st.lr)
            step_loss = engine.all_sum(step_loss)
            losses.append(step_loss)
            _tick(io, name, len(losses), total, step_loss)
    return losses


def _train_pref(policy: Policy, engine: Engine, st: Stage, pairs: list[PreferencePair],
                ref: tuple[torch.Tensor, torch.Tensor],
                rewards: tuple[torch.Tensor, torch.Tensor] | None,
                rng: random.Random, io: Run, name: str) -> None:
    assert st.beta is not None
    index = list(range(len(pairs)))
    total = st.epochs * max(1, -(-len(pairs) // st.global_batch_size))
    done = 0
    for _ in range(st.epochs):
        rng.shuffle(index)
        for batch in batches(index, st.global_batch_size):
            step_loss = 0.0
            for micro, weight in policy.step_micros(engine, batch, st.lr):
                sel = torch.tensor(micro)
                pc, pr, nll = policy.pair_logps(engine, [pairs[j] for j in micro])
                rc, rr = ref[0][sel].to(pc.device), ref[1][sel].to(pc.device)
                if st.type == "dpo":
                    loss = dpo_loss(pc, pr, rc, rr, beta=st.beta).mean()
                else:
                    assert rewards is not None
                    loss = rpo_bwd_kl_loss(pc, pr, rc, rr, rewards[0][sel].to(pc.device),
                                           rewards[1][sel].to(pc.device), beta=st.beta,
                                           eta=st.eta).mean()
                if st.sft_weight:
                    loss = loss + st.sft_weight * nll
                engine.backward(loss * (weight * len(micro) / len(batch)))
                step_loss += float(loss.detach()) * weight * len(micro) / len(batch)
            engine.step(st.lr)
            step_loss = engine.all_sum(step_loss)
            done += 1
            _tick(io, name, done, total, step_loss)


def _tick(io: Run, name: str, done: int, total: int, loss: float) -> None:
    if io.env.is_main and (done % 10 == 0 or done == total):
        log("step", stage=name, step=done, loss=round(loss, 5))
        io.progress(done=done, total=total, stage=name, loss=loss)


def _save_stage(io: Run, name: str, model: Any, tokenizer: Any, scratch: Path,
                state_dict: dict[str, Any] | None = None) -> None:
    local = scratch / "stage"
    shutil.rmtree(local, ignore_errors=True)
    save_model(model, tokenizer, local, state_dict=state_dict)
    uri = io.uri("stages", name) + "/"
    infos = io.store.upload_dir(local, uri)
    write_manifest(io.store, uri, Manifest(task=f"{io.config.task}-stage",
                                           outputs=[ArtifactRef.of(i, role="model") for i in infos],
                                           extra={"stage": name}))
    log("stage-saved", name=name, uri=uri)
