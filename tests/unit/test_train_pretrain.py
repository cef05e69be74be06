"""Pretraining: loss falls, crash + resume equals an uninterrupted run, plans, DeepSpeed config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloop.api.worker import PretrainParams, WorkerConfig
from synthloop.workers.runtime.distributed import DistEnv, deepspeed_config
from synthloop.workers.training.schedule import PhaseSpec, RampStage, batch_size_at, lr_at, plan

pytestmark = pytest.mark.unit


def params(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"preset": "tiny-test", "seqLength": 32},
        "tokenizer": {"vocabSize": 256, "trainDocs": 200},
        "phases": [
            {"name": "pretrain", "steps": 12, "lr": 3e-3, "minLr": 3e-4, "warmupSteps": 2,
             "blend": [{"source": "english", "weight": 0.7}, {"source": "arithmetic", "weight": 0.3}]},
            {"name": "continued", "steps": 4, "lr": 1e-3, "minLr": 0.0, "decay": "steep",
             "blend": [{"source": "qa", "weight": 0.5}, {"source": "arithmetic", "weight": 0.5}]},
        ],
        "batchRamp": [{"globalBatchSize": 4, "tokens": 4 * 32 * 5}, {"globalBatchSize": 8}],
        "parallelism": {"microBatchSize": 4},
        "checkpoint": {"everySteps": 6},
        "logEvery": 100,
    }
    base.update(over)
    return base


def cfg(tmp: Path, out: str, work: str, p: dict[str, Any], **kw: Any) -> WorkerConfig:
    return WorkerConfig(task="pretrain", output=f"file://{tmp}/{out}/", workdir=str(tmp / work),
                        params=p, **kw)


def losses(tmp: Path, out: str) -> list[float]:
    return list(json.loads((tmp / out / "losses.json").read_text())["losses"])


def test_loss_falls_and_crash_resume_matches_uninterrupted(tmp_path: Path) -> None:
    from synthloop.artifacts.manifest import verify_manifest
    from synthloop.artifacts.store import open_store
    from synthloop.workers.pretrain.worker import SimulatedCrash, run

    run(cfg(tmp_path, "a", "wa", params()))
    la = losses(tmp_path, "a")
    assert len(la) == 16
    # learning, not noise: within the first phase (one distribution; the continued phase is other text)
    assert sum(la[8:12]) / 4 < sum(la[:4]) / 4 - 0.5, la
    store = open_store(env={})
    manifest = verify_manifest(store, f"file://{tmp_path}/a/")
    assert manifest.output("model").uri.startswith(f"file://{tmp_path}/a/model/")
    assert manifest.counts["steps"] == 16

    with pytest.raises(SimulatedCrash):
        run(cfg(tmp_path, "b", "wb", params()), stop_after_step=9)
    # the crash left a checkpoint at step 6 and no finished run
    assert (tmp_path / "b" / "checkpoints" / "step-6" / "manifest.json").is_file()
    assert not (tmp_path / "b" / "manifest.json").exists()
    # a half-uploaded checkpoint (no manifest) is ignored by resume
    (tmp_path / "b" / "checkpoints" / "step-9").mkdir(parents=True)
    (tmp_path / "b" / "checkpoints" / "step-9" / "model.safetensors").write_bytes(b"partial")
    # the operator names the checkpoints directory in resume_from: its latest complete one wins
    run(cfg(tmp_path, "b", "wb2", params(), resume_from=f"file://{tmp_path}/b/checkpoints/"))
    lb = losses(tmp_path, "b")
    assert lb == la  # same steps, same data, same loss: bit-identical on CPU
    assert verify_manifest(store, f"file://{tmp_path}/b/").counts["resumed_from_step"] == 6
    # a retried pod after the run finished changes nothing
    before = (tmp_path / "b" / "manifest.json").read_bytes()
    assert run(cfg(tmp_path, "b", "wb3", params())) == 0
    assert (tmp_path / "b" / "manifest.json").read_bytes() == before
    assert not (tmp_path / "wb3" / "final-model").exists()
    # a checkpoints directory with nothing complete in it is a fresh start
    short = [{**params()["phases"][0], "steps": 2}]
    run(cfg(tmp_path, "c", "wc", params(phases=short),
            resume_from=f"file://{tmp_path}/c/checkpoints/"))
    assert verify_manifest(store, f"file://{tmp_path}/c/").counts["resumed_from_step"] == 0


def test_missing_checkpoint_and_bad_params_fail_clearly(tmp_path: Path) -> None:
    from synthloop.artifacts.checkpoints import CheckpointError
    from synthloop.workers.pretrain.worker import run

    with pytest.raises(CheckpointError, match="step-5.*missing or incomplete"):
        run(cfg(tmp_path, "x", "wx", params(),
                resume_from=f"file://{tmp_path}/x/checkpoints/step-5/"))
    assert not (tmp_path / "x" / "manifest.json").exists()
    with pytest.raises(ValueError, match="preset"):
        run(cfg(tmp_path, "d", "wd", params(model={"preset": "gpt-9"})))
    bad_blend = params()
    bad_blend["phases"][0]["blend"] = [{"source": "klingon", "weight": 1}]
    with pytest.raises(ValueError, match="unknown blend sources \\['klingon'\\]"):
        run(cfg(tmp_path, "e", "we", bad_blend))
    with pytest.raises(ValueError, match="exactly one of tokens or steps"):
        PretrainParams.model_validate({"phases": [{"name": "x", "blend": [{"source": "qa", "weight": 1}]}]})


def test_plan_ramp_and_schedules() -> None:
    ramp = [RampStage(batch_size=768, tokens=200), RampStage(batch_size=1536, tokens=200),
            RampStage(batch_size=2304, tokens=None)]
    assert [batch_size_at(t, ramp, default=1) for t in (0, 199, 200, 399, 400, 10**9)] == [
        768, 768, 1536, 1536, 2304, 2304]
    phases = [PhaseSpec("p", tokens=None, steps=10, lr=1.0, min_lr=0.1, decay_style="cosine",
                        warmup_steps=2),
              PhaseSpec("ct", tokens=64, steps=None, lr=0.5, min_lr=0.0, decay_style="steep",
                        warmup_steps=0)]
    steps = plan(phases, [RampStage(2, 40), RampStage(4, None)], seq_length=4, default_batch=1)
    assert [s.batch_size for s in steps[:7]] == [2, 2, 2, 2, 2, 4, 4]
    assert steps[1].lr == pytest.approx(1.0) and steps[0].lr == pytest.approx(0.5)
    assert steps[9].lr == pytest.approx(0.1)
    ct = [s for s in steps if s.phase == 1]
    assert sum(s.batch_size * 4 for s in ct) >= 64 and len(ct) == 4
    assert ct[0].samples_before == sum(s.batch_size for s in steps[:10])
    # steep decays faster than linear at the same point
    spec = phases[1]
    linear = PhaseSpec("l", None, 10, 0.5, 0.0, "linear", 0)
    assert lr_at(spec, 3, 10) < lr_at(linear, 3, 10)


def test_deepspeed_config_and_dist_env() -> None:
    ds = deepspeed_config(micro_batch_size=2, global_batch_size=64, world_size=16, zero_stage=3,
                          bf16=True, tensor=2, pipeline=1)
    assert ds["train_batch_size"] == 64
    assert ds["gradient_accumulation_steps"] == 64 // (2 * 8)
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"] == {"enabled": True}
    assert ds["tensor_parallel"] == {"autotp_size": 2}
    with pytest.raises(ValueError, match="not a multiple of micro batch 3"):
        deepspeed_config(micro_batch_size=3, global_batch_size=64, world_size=8)
    with pytest.raises(ValueError, match="not divisible by tensor 3"):
        deepspeed_config(micro_batch_size=1, global_batch_size=64, world_size=8, tensor=3)
    env = DistEnv.from_env({"NNODES": "2", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "8",
                            "LOCAL_RANK": "3", "MASTER_ADDR": "job-0.svc", "MASTER_PORT": "29400"})
    assert (env.world_size, env.rank, env.master_addr, env.master_port) == (16, 11, "job-0.svc", 29400)
    assert DistEnv.from_env({}).world_size == 1
    with pytest.raises(ValueError, match="NNODES='two'"):
        DistEnv.from_env({"NNODES": "two"})
