"""The reward-train worker: the 5-attribute regression head, MSE, optional Bradley-Terry.

The base LM's weights initialise the body; the head reads the hidden state at the end-of-
response token. The MSE is over rated attributes only. With ``bradleyTerryWeight`` > 0 and a
``preference`` input, each step also adds ``-log sigma(r_c - r_l)`` on the weighted reward.
Held-out ratings give the MSE; held-out pairs (the ``preference`` input's tail, else pairs of
held-out responses to the same prompt) give the preference accuracy. On GPUs with ``deepspeed``
the model trains under DeepSpeed ZeRO (``parallelism.zeroStage``; ``workers/runtime/sharded.py``):
every rank's share of a global batch is one micro-batch of ceil(batch / ranks) ratings, and a
rank whose share is empty runs a zero-weighted one so that ZeRO's collectives line up.
"""

from __future__ import annotations

import math
import random
import shutil
from collections import defaultdict
from typing import Any

import torch

from synthloop.api.worker import RewardParams, WorkerConfig
from synthloop.artifacts.store import open_store
from synthloop.models.chat import pad_batch
from synthloop.models.io import save_model
from synthloop.models.reward import ATTRIBUTES, build_reward_model, encode_for_reward
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
    Rating,
    batches,
    parse_preference,
    parse_rating,
    read_jsonl,
)
from synthloop.workers.training.losses import bradley_terry_loss, reward_mse_loss


def _split(items: list[Any], fraction: float, rng: random.Random) -> tuple[list[Any], list[Any]]:
    items = list(items)
    rng.shuffle(items)
    k = round(len(items) * fraction)
    if fraction > 0 and len(items) > 1:
        k = max(1, min(k, len(items) - 1))
    return items[k:], items[:k]


class _Scorer:
    def __init__(self, model: Any, tokenizer: Any, max_length: int, weights: list[float],
                 device: torch.device) -> None:
        self.model, self.tok, self.max_length, self.device = model, tokenizer, max_length, device
        self.weights = torch.tensor(weights, device=device)
        self.pad = int(model.config.pad_token_id)

    def attrs(self, conversations: list[list[dict[str, str]]]) -> torch.Tensor:
        rows = [encode_for_reward(self.tok, c, max_length=self.max_length) for c in conversations]
        ids, mask, _ = pad_batch([(r, r) for r in rows], pad_id=self.pad)
        return self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()

    def reward(self, conversations: list[list[dict[str, str]]]) -> torch.Tensor:
        return self.attrs(conversations) @ self.weights


def run(config: WorkerConfig) -> int:
    quiet_transformers()
    params = RewardParams.model_validate(config.params)
    env = DistEnv.from_env()
    store = open_store(config.output)
    io = Run(config, store, env=env)
    if io.already_finished():
        return 0
    seed_everything(params.seed)
    rng = random.Random(params.seed)
    tp = params.training

    ratings, bad_ratings = read_jsonl(io.fetch_text("data"), parse=parse_rating, what="data (ratings)",
                                      max_malformed_fraction=params.max_malformed_fraction)
    pairs: list[PreferencePair] = []
    bad_pairs = 0
    if "preference" in config.inputs:
        pairs, bad_pairs = read_jsonl(io.fetch_text("preference"), parse=parse_preference,
                                      what="preference", max_malformed_fraction=params.max_malformed_fraction)
    elif tp.bradley_terry_weight > 0:
        raise ValueError("training.bradleyTerryWeight > 0 needs a 'preference' input (pairs)")
    train_r, held_r = _split(ratings, tp.held_out_fraction, rng)
    train_p, held_p = _split(pairs, tp.held_out_fraction, rng)
    if not held_p:
        held_p = _pairs_from_ratings(held_r)

    base = io.fetch_model("model")
    weights = params.weights.model_dump()
    device = pick_device(env)
    ds_cfg = finetune_deepspeed(params, params.parallelism, device=device, env=env,
                                micro_batch_size=steps_per_rank(tp.global_batch_size, env.world_size))
    loading = zero3_loading(ds_cfg)  # noqa: F841  (alive while the model loads: ZeRO-3 partitions it)
    model = build_reward_model(base, weights=weights)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    if ds_cfg is None:
        model.to(device)  # DeepSpeed places (and partitions) it itself
    if params.parallelism.activation_checkpointing:
        model.gradient_checkpointing_enable()  # what the operator's capacity check assumed
    model.train()
    max_length = params.max_length or int(model.config.max_position_embeddings)
    scorer = _Scorer(model, tokenizer, max_length, [weights[a] for a in ATTRIBUTES], device)
    # data parallel under torchrun: each rank scores its share of every global batch and the
    # gradients are summed (``ddp=False``: several forward passes per backward)
    engine = Engine(model, lr=tp.lr, weight_decay=0.0, grad_clip=1.0, env=env, ddp=False, ds_config=ds_cfg)

    steps_per_epoch = max(1, -(-len(train_r) // tp.global_batch_size))
    total = steps_per_epoch * tp.epochs
    step = 0
    for epoch in range(tp.epochs):
        order = list(train_r)
        random.Random(f"{params.seed}:{epoch}").shuffle(order)
        pair_order = list(train_p)
        random.Random(f"{params.seed}:pairs:{epoch}").shuffle(pair_order)
        pair_batches = batches(pair_order, tp.global_batch_size) if pair_order else []
        for b, batch in enumerate(batches(order, tp.global_batch_size)):
            pb = pair_batches[b % len(pair_batches)] if tp.bradley_terry_weight > 0 and pair_batches else []
            share = _local_loss(scorer, batch, pb, env=env, bt_weight=tp.bradley_terry_weight,
                                lockstep=engine.ds_engine is not None)
            if step == 0 and env.world_size > 1:  # what each rank took of the first global batch
                log("rank-share", rank=env.rank, world=env.world_size,
                    rows=list(shard_range(len(batch), index=env.rank, shards=env.world_size)), of=len(batch))
            if share is not None:
                engine.backward(share)
            engine.step(tp.lr)
            loss = engine.all_sum(float(share.detach()) if share is not None else 0.0)
            step += 1
            if env.is_main and (step % 10 == 0 or step == total):
                log("step", step=step, epoch=epoch, loss=round(loss, 5))
                io.progress(done=step, total=total, loss=loss)

    model.eval()
    lockstep = engine.ds_engine is not None
    metrics: dict[str, float] = {}
    with torch.no_grad():
        # each rank scores its share of the one-process batches; gathered in order, the
        # metrics are the one-process ones
        if held_r:
            rows = [row for b, keep in _mine(batches(held_r, tp.global_batch_size), env, lockstep)
                    for row in scorer.attrs([r.conversation() for r in b]).tolist() if keep]
            preds = torch.tensor(gather_lists(rows, env), dtype=torch.float32, device=device)
            target = torch.tensor([r.attributes for r in held_r], dtype=torch.float32, device=device)
            metrics["heldout.mse"] = float(reward_mse_loss(preds, target))
        if held_p:
            won: list[bool] = []
            for pair_batch, keep in _mine(batches(held_p, tp.global_batch_size), env, lockstep):
                rc = scorer.reward([p.conversation(p.chosen) for p in pair_batch])
                rl = scorer.reward([p.conversation(p.rejected) for p in pair_batch])
                won.extend(bool(w) for w in (rc > rl).tolist() if keep)
            metrics["preference.accuracy"] = sum(gather_lists(won, env)) / len(held_p)

    full = engine.full_state_dict()  # ZeRO-3: gathered on every rank (a collective)
    if not env.is_main:  # the ranks hold the same weights; rank 0 writes them and the manifest
        return 0
    out = config.scratch() / "reward-model"
    shutil.rmtree(out, ignore_errors=True)
    save_model(model, tokenizer, out, state_dict=full)
    io.upload_model(out)
    counts = {"train_ratings": len(train_r), "heldout_ratings": len(held_r),
              "train_pairs": len(train_p), "preference.accuracy": len(held_p),
              "data_malformed": bad_ratings, "preference_malformed": bad_pairs, "steps": total}
    io.finish(metrics=metrics, counts=counts, model_uri=io.uri("model") + "/",
              attributes=list(ATTRIBUTES), weights=weights)
    return 0


def _mine(batches_: list[list[Any]], env: DistEnv, lockstep: bool) -> list[tuple[list[Any], bool]]:
    """This rank's contiguous share of ``batches_`` (maybe none), each with whether to keep its
    result; ``lockstep`` (ZeRO-3: forwards gather weights) pads every rank to the same count."""
    mine = [batches_[i] for i in shard_range(len(batches_), index=env.rank, shards=env.world_size)]
    if not batches_:
        return []
    return [(b, w > 0) for b, w in micro_batches(mine, total=len(batches_), world_size=env.world_size,
                                                 filler=batches_[0], deepspeed=lockstep)]


def _local_loss(scorer: _Scorer, batch: list[Rating], pairs: list[PreferencePair], *, env: DistEnv,
                bt_weight: float, lockstep: bool = False) -> torch.Tensor | None:
    """This rank's share of one global batch's loss (None when its share is empty).

    The MSE is over the batch's rated attributes and the Bradley-Terry term a mean over its
    pairs; each rank scores a contiguous slice and divides by the global batch's counts, so the
    shares sum to the one-process loss (and their gradients, summed, to its gradient).
    ``lockstep`` (DeepSpeed): every rank runs the same forwards and a backward, an empty share
    as a zero-weighted filler, since ZeRO's collectives need all of them.
    """
    mine = [batch[i] for i in shard_range(len(batch), index=env.rank, shards=env.world_size)]
    my_pairs = [pairs[i] for i in shard_range(len(pairs), index=env.rank, shards=env.world_size)]
    loss: torch.Tensor | None = None
    if mine or lockstep:
        weight = 1.0 if mine else 0.0
        mine = mine or batch[:1]
        target = torch.tensor([r.attributes for r in mine], dtype=torch.float32, device=scorer.device)
        rated = sum(1 for r in batch for a in r.attributes if not math.isnan(a))
        mine_rated = int((~torch.isnan(target)).sum())
        loss = reward_mse_loss(scorer.attrs([r.conversation() for r in mine]), target) * (
            weight * mine_rated / max(rated, 1))
    if my_pairs or (lockstep and pairs):
        weight = 1.0 if my_pairs else 0.0
        my_pairs = my_pairs or pairs[:1]
        rc = scorer.reward([p.conversation(p.chosen) for p in my_pairs])
        rl = scorer.reward([p.conversation(p.rejected) for p in my_pairs])
        bt = weight * bt_weight * bradley_terry_loss(rc, rl).sum() / len(pairs)
        loss = bt if loss is None else loss + bt
    return loss


def _pairs_from_ratings(ratings: list[Rating]) -> list[PreferencePair]:
    """Held-out pairs from ratings of the same prompt: the higher-rated response is chosen."""
    by_prompt: dict[str, list[Rating]] = defaultdict(list)
    for r in ratings:
        by_prompt[repr(r.prompt)].append(r)
    pairs: list[PreferencePair] = []
    for group in by_prompt.values():
        scored = sorted(group, key=_rated_sum, reverse=True)
        for lo in scored[1:]:
            if _rated_sum(scored[0]) > _rated_sum(lo):
                pairs.append(PreferencePair(prompt=scored[0].prompt, chosen=scored[0].response,
                                            rejected=lo.response))
    return pairs


def _rated_sum(r: Rating) -> float:
    return sum(a for a in r.attributes if not math.isnan(a))
