"""Reward model and alignment workers on tiny models: they learn what the data makes knowable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synthloop.api.worker import WorkerConfig
from synthloop.corpus import preference_rows, rating_rows, sft_rows

pytestmark = pytest.mark.unit


def write_jsonl(path: Path, rows: list[Any], *, extra_lines: tuple[str, ...] = ()) -> str:
    path.write_text("\n".join([*(json.dumps(r) for r in rows), *extra_lines]) + "\n")
    return f"file://{path}"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthloop.models.build import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("base") / "model")


def test_reward_model_ranks_held_out_pairs_above_chance(tmp_path: Path, base: Path) -> None:
    from synthloop.artifacts.manifest import verify_manifest
    from synthloop.artifacts.store import open_store
    from synthloop.models.reward import load_reward_model
    from synthloop.workers.reward.worker import run

    data = write_jsonl(tmp_path / "ratings.jsonl", rating_rows(n=64, seed=0),
                       extra_lines=("{not json",))  # one malformed line of 65: within 2%
    held = preference_rows(n=24, seed=7)  # prompts never seen in training
    out = f"file://{tmp_path}/out/"
    run(WorkerConfig(task="reward-train", output=out, workdir=str(tmp_path / "w"),
                     inputs={"model": str(base), "data": data},
                     params={"training": {"epochs": 2, "lr": 1e-3, "globalBatchSize": 16,
                                          "heldOutFraction": 0.0},
                             "maxMalformedFraction": 0.02}))
    manifest = verify_manifest(open_store(env={}), out)
    assert manifest.counts["data_malformed"] == 1
    scorer = load_reward_model(out, cache_dir=tmp_path / "cache")
    rc = scorer.reward([[*r["prompt"], {"role": "assistant", "content": r["chosen"]}] for r in held])
    rl = scorer.reward([[*r["prompt"], {"role": "assistant", "content": r["rejected"]}] for r in held])
    accuracy = sum(a > b for a, b in zip(rc, rl, strict=True)) / len(held)
    assert accuracy >= 0.9
    attrs = scorer.score([[*held[0]["prompt"], {"role": "assistant", "content": held[0]["chosen"]}]])
    assert set(attrs[0]) == {"helpfulness", "correctness", "coherence", "complexity", "verbosity"}


def test_malformed_data_over_the_cap_is_rejected_with_line_numbers(tmp_path: Path, base: Path) -> None:
    from synthloop.workers.reward.worker import run
    from synthloop.workers.training.data import DataError

    data = write_jsonl(tmp_path / "r.jsonl", rating_rows(n=8),
                       extra_lines=('{"prompt": "q"}', "[1, 2]", '{"prompt":"q","response":"r","helpfulness":9}'))
    with pytest.raises(DataError, match=r"3 of 11 lines are malformed.*line 9: KeyError.*line 10"):
        run(WorkerConfig(task="reward-train", output=f"file://{tmp_path}/out/",
                         workdir=str(tmp_path / "w"), inputs={"model": str(base), "data": data}))
    assert not (tmp_path / "out").exists()  # nothing written, nothing presented as finished


def test_sft_dpo_rpo_stages_raise_the_preference_margin(tmp_path: Path, base: Path) -> None:
    from synthloop.artifacts.manifest import verify_manifest
    from synthloop.artifacts.store import open_store
    from synthloop.workers.align.worker import run

    sft = write_jsonl(tmp_path / "sft.jsonl", sft_rows(n=24))
    # NeMo spelling for half the pairs, TRL for the rest
    pairs = preference_rows(n=16, seed=1)
    for r in pairs[:8]:
        r["chosen_response"], r["rejected_response"] = r.pop("chosen"), r.pop("rejected")
    pref = write_jsonl(tmp_path / "pref.jsonl", pairs)
    out = f"file://{tmp_path}/out/"
    run(WorkerConfig(task="align", output=out, workdir=str(tmp_path / "w"),
                     inputs={"model": str(base), "sft": sft, "preference": pref},
                     params={"microBatchSize": 8, "stages": [
                         {"type": "sft", "lr": 3e-3, "globalBatchSize": 8},
                         {"type": "dpo", "lr": 1e-3, "beta": 0.1, "globalBatchSize": 8, "sftWeight": 1e-3},
                         {"type": "rpo", "lr": 1e-3, "beta": 0.1, "eta": 1.0, "iterations": 2,
                          "globalBatchSize": 8, "reference": "previous"}]}))
    m = verify_manifest(open_store(env={}), out)
    assert m.metrics["stage.0-sft.loss.final"] < m.metrics["stage.0-sft.loss.first"]
    for name in ("1-dpo", "2-rpo-1", "2-rpo-2"):
        assert m.metrics[f"stage.{name}.margin_after"] > m.metrics[f"stage.{name}.margin_before"] + 1.0
    # each RPO iteration starts from the previous one's result
    assert m.metrics["stage.2-rpo-2.margin_before"] == pytest.approx(m.metrics["stage.2-rpo-1.margin_after"], rel=1e-4)
    for name in ("0-sft", "1-dpo", "2-rpo-1", "2-rpo-2"):
        verify_manifest(open_store(env={}), f"{out}stages/{name}/")


def test_one_stage_per_job_with_a_synthround_data_prefix(tmp_path: Path, base: Path) -> None:
    """The operator's shape: one stage per Job, ``model`` = previous stage, ``base_model`` the
    job's base, and ``data`` a SynthRound prefix holding sft.jsonl and preference.jsonl."""
    from synthloop.artifacts.manifest import verify_manifest
    from synthloop.artifacts.store import open_store
    from synthloop.workers.align.worker import run

    data = tmp_path / "round"
    data.mkdir()
    write_jsonl(data / "sft.jsonl", sft_rows(n=8))
    write_jsonl(data / "preference.jsonl", preference_rows(n=8, seed=2))
    sft_out = f"file://{tmp_path}/sft-0/"
    common = {"data": f"file://{data}/", "base_model": str(base)}
    run(WorkerConfig(task="align", output=sft_out, workdir=str(tmp_path / "w0"),
                     inputs={"model": str(base), **common},
                     params={"stages": [{"type": "sft", "lr": 3e-3, "globalBatchSize": 8}]}))
    out = f"file://{tmp_path}/dpo-1/"
    run(WorkerConfig(task="align", output=out, workdir=str(tmp_path / "w1"),
                     inputs={"model": f"{sft_out}model/", **common},
                     params={"microBatchSize": 8, "stages": [
                         {"type": "dpo", "lr": 1e-3, "beta": 0.1, "globalBatchSize": 8,
                          "reference": "base"}]}))
    m = verify_manifest(open_store(env={}), out)
    assert {r.role for r in m.inputs} >= {"model", "base_model", "preference"}
    # the reference is the base, not the SFT'd start: the margin before is measured against it
    assert m.metrics["stage.0-dpo.margin_after"] > m.metrics["stage.0-dpo.margin_before"]


def test_stage_lists_the_worker_cannot_run(tmp_path: Path, base: Path) -> None:
    from pydantic import ValidationError

    from synthloop.api.worker import AlignParams
    from synthloop.workers.align.worker import StagePlanError, run

    with pytest.raises(ValidationError, match="dpo and rpo stages need beta"):
        AlignParams.model_validate({"stages": [{"type": "dpo"}]})
    with pytest.raises(ValidationError, match="stages"):
        AlignParams.model_validate({"stages": []})
    with pytest.raises(ValidationError, match="ppo"):
        AlignParams.model_validate({"stages": [{"type": "ppo"}]})
    pref = write_jsonl(tmp_path / "p.jsonl", preference_rows(n=4, rewards=False))
    cases = [({"stages": [{"type": "sft"}]}, {}, "needs an 'sft' input"),
             ({"stages": [{"type": "rpo", "beta": 0.1, "reference": "previous"}]}, {"preference": pref},
                  "rpo stages need rewards")]
    for params, inputs, msg in cases:
        with pytest.raises(StagePlanError, match=msg):
            run(WorkerConfig(task="align", output=f"file://{tmp_path}/o/", workdir=str(tmp_path / "w"),
                             inputs={"model": str(base), **inputs}, params=params))
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_sft_labels_cover_assistant_turns_only(base: Path) -> None:
    from transformers import AutoTokenizer

    from synthloop.models.chat import encode_conversation
    from synthloop.workers.training.data import parse_sft

    tok = AutoTokenizer.from_pretrained(base)
    msgs = parse_sft({"system": "Be brief.", "conversations": [
        {"from": "User", "value": "Tom has 2 pens. How many?"}, {"from": "Assistant", "value": "Two."},
        {"from": "User", "value": "And Ana?"}, {"from": "Assistant", "value": "Three."}]})
    _ids, labels = encode_conversation(tok, msgs, max_length=512)
    trained = tok.decode([t for t in labels if t != -100])
    assert trained == "Two.\n<extra_id_1>Three.\n</s>"
    with pytest.raises(ValueError, match="no assistant turn"):
        parse_sft({"messages": [{"role": "user", "content": "hi"}]})
