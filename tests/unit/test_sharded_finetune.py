"""The fine-tuning workers' DeepSpeed path without a GPU: when it is taken, its config from the
spec's own fields, equal micro-batch counts per rank, and a fresh optimizer per unit in place."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from synthloop.api.v1alpha1.align import AlignJobSpec
from synthloop.api.v1alpha1.reward import RewardTrainSpec
from synthloop.api.worker import AlignParams, RewardParams
from synthloop.workers.runtime import sharded
from synthloop.workers.runtime.distributed import DistEnv
from synthloop.workers.runtime.run import Engine

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
CUDA, CPU = torch.device("cuda", 0), torch.device("cpu")


def _spec(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "examples" / name).read_text())["spec"])


def test_the_flagship_examples_reach_the_worker_as_zero3_deepspeed_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sharded, "deepspeed_available", lambda: True)
    align = AlignJobSpec.model_validate(_spec("alignjob.yaml"))
    params = AlignParams.of(align, align.stages[1])  # what the dpo Job's pod receives
    env = DistEnv(world_size=512, rank=3)
    cfg = sharded.finetune_deepspeed(params, params.parallelism, device=CUDA, env=env,
                                     micro_batch_size=params.micro_batch_size)
    assert cfg is not None and cfg["zero_optimization"]["stage"] == 3
    assert cfg["train_micro_batch_size_per_gpu"] == 1 and cfg["train_batch_size"] == 512
    assert params.parallelism.activation_checkpointing
    reward = RewardTrainSpec.model_validate(_spec("rewardtrain.yaml"))
    rp = RewardParams.of(reward)
    cfg = sharded.finetune_deepspeed(rp, rp.parallelism, device=CUDA, env=DistEnv(world_size=128),
                                     micro_batch_size=sharded.steps_per_rank(rp.training.global_batch_size, 128))
    assert cfg is not None and cfg["zero_optimization"]["stage"] == 3
    assert cfg["train_micro_batch_size_per_gpu"] == 1  # 128 ratings over 128 GPUs


def test_the_plain_path_on_a_cpu_without_deepspeed_or_when_it_is_off(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    params = AlignParams.model_validate({"stages": [{"type": "sft"}], "parallelism": {"zeroStage": 3}})
    monkeypatch.setattr(sharded, "deepspeed_available", lambda: True)
    assert sharded.finetune_deepspeed(params, params.parallelism, device=CPU, env=DistEnv(),
                                      micro_batch_size=1) is None
    off = params.model_copy(update={"deepspeed": False})
    assert sharded.finetune_deepspeed(off, off.parallelism, device=CUDA, env=DistEnv(), micro_batch_size=1) is None
    monkeypatch.setattr(sharded, "deepspeed_available", lambda: False)
    assert sharded.finetune_deepspeed(params, params.parallelism, device=CUDA, env=DistEnv(),
                                      micro_batch_size=1) is None
    assert '"event": "deepspeed-unavailable", "zero_stage": 3' in capsys.readouterr().out
    assert sharded.zero3_loading(None) is None


def test_every_rank_runs_as_many_micro_batches_under_deepspeed() -> None:
    micros = [[0, 1], [2, 3], [4, 5], [6]]  # 7 rows, micro 2: 4 micro-batches over 3 ranks
    world = 3
    shares = [[micros[0], micros[1]], [micros[2]], [micros[3]]]  # shard_range's split
    runs = [sharded.micro_batches(m, total=len(micros), world_size=world, filler=[0, 1], deepspeed=True)
            for m in shares]
    assert [len(r) for r in runs] == [2, 2, 2]
    assert [w for r in runs for _, w in r] == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert [b for r in runs for b, w in r if w] == micros  # the real ones are the one-process micro-batches
    # the plain path runs a rank's own share only (an empty one runs nothing)
    assert sharded.micro_batches([], total=len(micros), world_size=8, filler=[0], deepspeed=False) == []
    assert sharded.micro_batches([], total=len(micros), world_size=8, filler=[0], deepspeed=True) == [([0], 0.0)]


def _train(model: torch.nn.Module, engine: Engine, xs: torch.Tensor) -> None:
    for x in xs:
        engine.backward(model(x).pow(2).sum())
        engine.step(0.1)


def test_reset_optimizer_is_a_fresh_adamw() -> None:
    """A Job's units share one engine (DeepSpeed cannot be initialised twice on one model); its
    reset must equal the fresh optimizer every unit used to get."""
    torch.manual_seed(0)
    xs = torch.randn(6, 4)
    a = torch.nn.Linear(4, 3)
    b = copy.deepcopy(a)
    shared = Engine(a, lr=0.1, weight_decay=0.0, grad_clip=1.0, env=DistEnv(), ddp=False)
    _train(a, shared, xs[:3])
    shared.reset_optimizer()
    _train(a, shared, xs[3:])
    first = Engine(b, lr=0.1, weight_decay=0.0, grad_clip=1.0, env=DistEnv(), ddp=False)
    _train(b, first, xs[:3])
    _train(b, Engine(b, lr=0.1, weight_decay=0.0, grad_clip=1.0, env=DistEnv(), ddp=False), xs[3:])
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    # without the reset the moments carry over and the weights differ
    c = copy.deepcopy(b)
    carried = Engine(c, lr=0.1, weight_decay=0.0, grad_clip=1.0, env=DistEnv(), ddp=False)
    _train(c, carried, xs[:3])
    _train(c, carried, xs[3:])
    assert any(not torch.equal(p, q) for p, q in zip(b.parameters(), c.parameters(), strict=True))


class _FakeDeepSpeed:
    """What Engine.backward asks of a DeepSpeed engine, recording the losses it is handed."""

    def __init__(self, gas: int) -> None:
        self.gas, self.losses = gas, []

    def gradient_accumulation_steps(self) -> int:
        return self.gas

    def backward(self, loss: torch.Tensor) -> None:
        self.losses.append(float(loss))

    def step(self) -> None:
        pass


def test_shares_are_scaled_back_from_deepspeeds_averaging() -> None:
    """DeepSpeed divides a micro-batch's loss by its accumulation steps and averages gradients
    over the ranks; a pre-scaled share is multiplied back so the step's gradient is their sum."""
    model = torch.nn.Linear(2, 1)
    engine = Engine(model, lr=0.1, weight_decay=0.0, grad_clip=1.0, env=DistEnv(world_size=1), ddp=False)
    fake = _FakeDeepSpeed(gas=3)
    engine.ds_engine = fake
    engine.env = DistEnv(world_size=4)  # DeepSpeed's own env in a real run
    engine.backward(torch.tensor(0.25))
    assert fake.losses == [0.25 * 3 * 4]
    engine.share_losses = False  # pretrain: DDP-style means, handed over as they are
    engine.backward(torch.tensor(0.25))
    assert fake.losses[-1] == 0.25


def test_nothing_to_share_runs_no_filler() -> None:
    assert sharded.steps_per_rank(0, 4) == 0 and sharded.steps_per_rank(129, 128) == 2
    assert sharded.micro_batches([], total=0, world_size=4, filler=[], deepspeed=True) == []
