"""The pretrain worker: phased blends, batch ramp, LR schedules, checkpoints, resume.

Steps are planned up front (:mod:`synthloop.workers.training.schedule`); row ``i`` of the data is
a pure function of the seed (:mod:`synthloop.workers.training.blend`). A checkpoint holds the
weights, the optimizer state and the step, so a resumed run continues at the same step, with the
same data and the same loss as a run that was never interrupted.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from synthloop.api.v1alpha1.pretrain import Architecture
from synthloop.api.worker import PretrainParams, WorkerConfig
from synthloop.artifacts.checkpoints import CheckpointError, Checkpoints
from synthloop.artifacts.store import open_store
from synthloop.models.build import build_model, dims_from_config, tokenizer_matches
from synthloop.models.io import save_model
from synthloop.models.presets import ModelDims, get_preset
from synthloop.models.tokenizer import train_tokenizer
from synthloop.workers.errors import InvalidInput
from synthloop.workers.runtime.distributed import DistEnv, deepspeed_available, deepspeed_config
from synthloop.workers.runtime.run import (
    Engine,
    Run,
    log,
    peak_flops,
    pick_device,
    quiet_transformers,
    seed_everything,
)
from synthloop.workers.training.blend import BlendData, documents_from_text
from synthloop.workers.training.losses import causal_lm_loss
from synthloop.workers.training.schedule import PhaseSpec, PlannedStep, RampStage, plan


class SimulatedCrash(RuntimeError):
    """Raised by ``stop_after_step`` (tests): the process dies with no final outputs."""


def resolve_dims(arch: Architecture) -> ModelDims:
    base = get_preset(arch.preset) if arch.preset else None
    fields = {"num_layers": arch.layers, "hidden_size": arch.hidden,
              "num_attention_heads": arch.heads, "num_kv_heads": arch.kv_heads,
              "ffn_hidden_size": arch.ffn_hidden, "seq_length": arch.seq_length,
              "vocab_size": arch.vocab}
    given = {k: v for k, v in fields.items() if v is not None}
    if base is not None:
        return base.with_(**given)
    hidden = given["hidden_size"]
    given.setdefault("ffn_hidden_size", 4 * hidden)
    return ModelDims(**given)


def make_plan(params: PretrainParams, seq_length: int) -> list[PlannedStep]:
    phases = [PhaseSpec(name=p.name, tokens=p.tokens, steps=p.steps, lr=p.lr, min_lr=p.min_lr,
                        decay_style=p.decay, warmup_steps=p.warmup_steps) for p in params.phases]
    ramp = [RampStage(batch_size=r.global_batch_size, tokens=r.tokens) for r in params.batch_ramp]
    return plan(phases, ramp, seq_length=seq_length, default_batch=params.global_batch_size)


def run(config: WorkerConfig, *, stop_after_step: int | None = None) -> int:
    quiet_transformers()
    params = PretrainParams.model_validate(config.params)
    env = DistEnv.from_env()
    if params.parallelism.pipeline > 1:
        raise InvalidInput("parallelism.pipeline > 1 needs a pipeline-parallel (Megatron) trainer; "
                           "this worker runs ZeRO data parallelism (with AutoTP for tensor > 1)")
    store = open_store(config.output)
    run_io = Run(config, store, env=env)
    if run_io.already_finished():
        return 0
    scratch = config.scratch()
    dims = resolve_dims(params.model)
    seq = dims.seq_length
    seed_everything(params.seed)

    # ---- data sources (builtin corpus + inputs named after blend sources) -------------------
    blend_names = {b.source for p in params.phases for b in p.blend}
    file_sources = {name: documents_from_text(text)
                    for name, text in _file_sources(run_io, blend_names).items()}
    # before any weights or tokenizer work: an unknown source fails the pod in seconds
    _check_blends(BlendData(_NoTokenizer(), seq_length=1, seed=params.seed, file_sources=file_sources), params)

    # ---- resume point ------------------------------------------------------------------
    ckpts = Checkpoints(store, config.output, task=config.task)
    resume_uri = ckpts.resolve(config.resume_from, auto=params.checkpoint.resume)

    start_step, state = 0, {}
    if resume_uri:
        local, extra = ckpts.load(resume_uri, scratch / "resume")
        start_step, state = int(extra["step"]), dict(extra.get("state") or {})
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(local)
        model = AutoModelForCausalLM.from_pretrained(local, dtype=torch.float32)
        optimizer_file = local / "optimizer.pt"
        optimizer_state = torch.load(optimizer_file, weights_only=True) if optimizer_file.is_file() else None
        ds_resume_dir = local / "deepspeed" if (local / "deepspeed").is_dir() else None
        log("resumed", checkpoint=resume_uri, step=start_step)
    else:
        optimizer_state, ds_resume_dir = None, None
        if "tokenizer" in config.inputs or not params.tokenizer.train:
            from synthloop.models.io import load_tokenizer

            tokenizer = load_tokenizer(run_io.fetch_model("tokenizer"))
        else:
            texts_src = _TextSampler(file_sources, params)
            tokenizer = train_tokenizer(texts_src.texts(params.tokenizer.train_docs),
                                        vocab_size=params.tokenizer.vocab_size)
        tokenizer_matches(tokenizer)
        model = build_model(dims, vocab_size=len(tokenizer), seed=params.seed)

    data = BlendData(tokenizer, seq_length=seq, seed=params.seed, file_sources=file_sources)
    _check_blends(data, params)
    steps = make_plan(params, seq)
    if start_step > len(steps):
        raise CheckpointError(f"checkpoint step {start_step} is past the plan's {len(steps)} steps")

    device = pick_device(env)
    model.to(device)
    model.train()
    ds_cfg = None
    use_ds = params.deepspeed and device.type == "cuda" and deepspeed_available()
    if use_ds:
        ds_cfg = deepspeed_config(
            micro_batch_size=params.parallelism.micro_batch_size,
            global_batch_size=(steps[min(start_step, len(steps) - 1)].batch_size if steps
                               else params.global_batch_size),
            world_size=env.world_size, zero_stage=params.parallelism.zero_stage, bf16=True,
            grad_clip=params.grad_clip, tensor=params.parallelism.tensor,
        )
    if params.parallelism.activation_checkpointing:
        model.gradient_checkpointing_enable()  # what the operator's capacity check assumed
    engine = Engine(model, lr=params.phases[0].lr, weight_decay=params.weight_decay,
                    grad_clip=params.grad_clip, env=env, ds_config=ds_cfg)
    if engine.ds_engine is not None and ds_resume_dir is not None:
        engine.ds_engine.load_checkpoint(str(ds_resume_dir), tag="state",
                                         load_lr_scheduler_states=False)
    elif optimizer_state is not None:
        engine.load_state_dict(optimizer_state)

    flops_tok = dims_from_config(model.config).flops_per_token()
    peak = peak_flops(device)
    losses: list[float] = list(state.get("losses", []))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and not use_ds \
        else torch.autocast("cpu", enabled=False)
    window_tokens, window_start = 0, time.perf_counter()
    tokens_per_s = 0.0
    for st in steps[start_step:]:
        phase = params.phases[st.phase]
        blend = [(b.source, b.weight) for b in phase.blend]
        rows = list(range(st.samples_before + env.rank, st.samples_before + st.batch_size,
                          env.world_size))
        # microBatchSize sizes GPU memory; on a CPU one micro-batch of the whole local batch
        # is much faster and tiny models have no memory pressure
        micro = params.parallelism.micro_batch_size if device.type == "cuda" else len(rows)
        engine.begin(st.lr, global_batch_size=st.batch_size)
        step_loss = 0.0
        for i in range(0, len(rows), micro):
            chunk = rows[i: i + micro]
            ids = torch.tensor([data.row(r, blend) for r in chunk], dtype=torch.long, device=device)
            with autocast:
                logits = engine(input_ids=ids).logits
            loss = causal_lm_loss(logits, ids)
            scaled = loss * (len(chunk) / len(rows)) if engine.ds_engine is None else loss
            engine.backward(scaled)
            step_loss += float(loss.detach()) * len(chunk) / len(rows)
        grad_norm = engine.step(st.lr)
        if engine.distributed:  # the global batch's mean loss, identical on every rank
            import torch.distributed as dist

            t = torch.tensor([step_loss], dtype=torch.float64, device=device)
            dist.all_reduce(t)
            step_loss = float(t) / env.world_size
        losses.append(step_loss)
        done = st.step + 1
        window_tokens += st.batch_size * seq
        if env.is_main and (done % params.log_every == 0 or done == len(steps)):
            elapsed = max(time.perf_counter() - window_start, 1e-9)
            tokens_per_s = window_tokens / elapsed
            mfu = tokens_per_s * flops_tok / (peak * env.world_size) if peak else None
            log("step", step=done, phase=phase.name, loss=round(step_loss, 5), lr=st.lr,
                batch=st.batch_size, grad_norm=round(grad_norm, 4),
                tokens_per_s=round(tokens_per_s, 1), mfu=mfu)
            window_tokens, window_start = 0, time.perf_counter()
        if done % params.progress_every == 0:
            run_io.progress(done=done, total=len(steps), loss=step_loss, phase=phase.name)
        if done % params.checkpoint.every_steps == 0 and done < len(steps):
            _save_checkpoint(ckpts, scratch, engine, tokenizer, done, losses, st, seq, env=env)
        if stop_after_step is not None and done >= stop_after_step:
            raise SimulatedCrash(f"stopped after step {done}")

    full_state = engine.full_state_dict()  # collective under ZeRO-3: every rank calls it
    if env.is_main:
        out_dir = scratch / "final-model"
        shutil.rmtree(out_dir, ignore_errors=True)
        save_model(engine.module, tokenizer, out_dir, state_dict=full_state)
        run_io.upload_model(out_dir)
        run_io.store.put_json(run_io.uri("losses.json"), {"losses": losses})
        n = max(1, min(5, len(losses)))
        metrics = {
            "loss.first": float(sum(losses[:n]) / n) if losses else math.nan,
            "loss.final": float(sum(losses[-n:]) / n) if losses else math.nan,
            "tokens_per_s": round(tokens_per_s, 2),
            "params": float(sum(p.numel() for p in engine.module.parameters())),
        }
        counts = {"steps": len(steps), "tokens": sum(s.batch_size for s in steps) * seq,
                  "resumed_from_step": start_step, "ranks": env.world_size}
        run_io.finish(metrics=metrics, counts=counts, model_uri=run_io.uri("model") + "/",
                      phases=[p.name for p in params.phases])
    return 0


def _file_sources(run_io: Run, names: set[str]) -> dict[str, str]:
    """Text of blend sources that are not builtin: an input of that name, or a file
    ``<source>.jsonl`` / ``<source>.txt`` under the ``data`` input (a directory prefix)."""
    from synthloop.artifacts.uris import join
    from synthloop.corpus import source_names

    out: dict[str, str] = {}
    for name in sorted(names):
        if name in run_io.config.inputs:
            out[name] = run_io.fetch_text(name)
        elif name not in source_names() and "data" in run_io.config.inputs:
            data = run_io.config.inputs["data"]
            for ext in ("jsonl", "txt"):
                uri = join(data, f"{name}.{ext}")
                if run_io.store.exists(uri):
                    out[name] = run_io.fetch_text(name, uri=uri)
                    break
    return out


def _check_blends(data: BlendData, params: PretrainParams) -> None:
    """Every phase's sources exist; an unknown one is invalid input (no retry can fix it)."""
    for p in params.phases:
        try:
            data.check_blend([b.source for b in p.blend], phase=p.name)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc


class _TextSampler:
    """Tokenizer training text drawn from every phase's blend (seeded)."""

    def __init__(self, file_sources: dict[str, list[str]], params: PretrainParams) -> None:
        self.data = BlendData(_NoTokenizer(), seq_length=1, seed=params.seed, file_sources=file_sources)
        self.blend = [(b.source, b.weight) for p in params.phases for b in p.blend]
        _check_blends(self.data, params)

    def texts(self, n: int) -> list[str]:
        return self.data.texts(n, self.blend)


class _NoTokenizer:
    eos_token_id = 0


def _save_checkpoint(
    ckpts: Checkpoints, scratch: Path, engine: Engine, tokenizer: Any, step: int,
    losses: list[float], st: PlannedStep, seq: int, *, env: DistEnv,
) -> None:
    """Weights (HF dir), optimizer state, trainer state; the manifest last, by rank 0.

    Plain torch: rank 0 holds everything (DDP replicas are identical). DeepSpeed: every rank
    writes and uploads its own ZeRO partition (``deepspeed/``), then rank 0 lists the
    checkpoint and writes the manifest once all ranks are past a barrier.
    """
    from synthloop.artifacts.uris import join

    uri = ckpts.uri(step)
    local = scratch / f"checkpoint-rank{env.rank}"
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(parents=True)
    full_state = engine.full_state_dict()
    if engine.ds_engine is not None:
        engine.ds_engine.save_checkpoint(str(local / "deepspeed"), tag="state")
        for path in sorted((local / "deepspeed").rglob("*")):
            if path.is_file() and (env.is_main or "zero_pp_rank" in path.name or "optim" in path.name):
                ckpts.store.put_file(join(uri, path.relative_to(local).as_posix()), path)
    state = {"losses": losses, "samples": st.samples_before + st.batch_size,
             "tokens": st.tokens_before + st.batch_size * seq}
    if env.is_main:
        model_dir = local / "model-files"
        save_model(engine.module, tokenizer, model_dir, state_dict=full_state)
        if engine.ds_engine is None:
            torch.save(engine.state_dict(), model_dir / "optimizer.pt")
        (model_dir / "trainer_state.json").write_text(json.dumps({"step": step, **state}))
        infos = ckpts.store.upload_dir(model_dir, uri)
    engine.barrier()
    if env.is_main:
        ckpts.finalize(step, state=state, known=infos)
        log("checkpoint", step=step, uri=uri)
    engine.barrier()
