"""``synthloop-worker synth`` / ``synth-merge`` over a ``file://`` store with a tiny torch model.

Covers what the cluster test cannot cheaply: skip-on-verified-manifest, a shard killed
half-way and re-run (no duplicate records), and bad inputs failing fast with a message that
names the field.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from synthloop.api.worker import WorkerConfig
from synthloop.artifacts.manifest import verify_manifest
from synthloop.artifacts.store import open_store
from synthloop.workers.synth import formats, merge, shard

pytestmark = pytest.mark.unit

#: A SynthRound's settings as the operator hands them to the worker (``SynthParams.of(spec)``);
#: the generator model itself arrives resolved in ``inputs.model``.
PARAMS: dict[str, Any] = {
    "prompts": {"math": 3, "python": 2, "openQA": 2, "instructionFollowing": 2, "refusals": 1},
    "generator": {"backend": "transformers", "model": {"uri": "file:///resolved/into/inputs"}, "maxTokens": 12,
                  "batchSize": 32},
    "dialogues": {"count": 1, "turns": 2},
    "preference": {"includeReference": True, "responsesPerPrompt": 2},
    "shards": 2,
}


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from synthloop.models.build import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("gen"), seed=1)


def config(tmp: Path, model: Path | str, *, task: str = "synth", index: int = 0, **params: Any) -> WorkerConfig:
    return WorkerConfig(task=task, namespace="ns", kind="SynthRound", name="round-1", uid="u1",
                        output=f"file://{tmp}/out/", inputs={"model": str(model)},
                        params={**PARAMS, **params}, shard_index=index, num_shards=2,
                        workdir=str(tmp / f"work-{task}-{index}"))


def rows(path: Path) -> list[dict[str, Any]]:
    return list(formats.read_jsonl(path))


def test_two_shards_and_merge(tmp_path: Path, generator_dir: Path) -> None:
    store = open_store()
    for i in range(2):
        assert shard.run(config(tmp_path, generator_dir, index=i)) == 0
    out = tmp_path / "out"
    shard_rows = [rows(out / "shards" / f"{i:05d}" / "sft.jsonl") for i in range(2)]
    assert all(shard_rows)
    assert {r["id"] for r in shard_rows[0]}.isdisjoint({r["id"] for r in shard_rows[1]})
    progress = json.loads((out / "progress" / "synth-1.json").read_text())
    assert progress["stage"] == "done" and progress["index"] == 1

    assert merge.run(config(tmp_path, generator_dir, task="synth-merge")) == 0
    manifest = verify_manifest(store, f"file://{out}/")
    assert {o.role for o in manifest.outputs} == {"sft", "preference", "sft_nemo", "preference_nemo", "stats"}
    sft, pref = rows(out / "sft.jsonl"), rows(out / "preference.jsonl")
    assert manifest.counts["sft_rows"] == len(sft) and manifest.counts["preference_rows"] == len(pref)
    assert len(sft) == sum(map(len, shard_rows)) - manifest.counts["duplicates"] + sum(
        json.loads((out / "shards" / f"{i:05d}" / "stats.json").read_text())["totals"].get("duplicates", 0) for i in range(2))
    assert len({r["id"] for r in sft}) == len(sft)
    for r in rows(out / "sft.nemo.jsonl"):
        formats.validate_nemo_sft(r)
    for r in rows(out / "preference.nemo.jsonl"):
        formats.validate_nemo_preference(r)
    assert manifest.counts["math.prompts"] == 3 and manifest.counts["prompts"] == 3 + 2 + 2 + 2 + 1 + 1
    assert 0.0 <= manifest.metrics["acceptance_rate"] <= 1.0 and "acceptance_rate.math" in manifest.metrics
    assert manifest.extra["generator"]["backend"] == "transformers"
    assert [i.role for i in manifest.inputs] == ["shard-00000", "shard-00001"]
    shard_manifest = verify_manifest(store, f"file://{out}/shards/00000")
    model_input = next(i for i in shard_manifest.inputs if i.role == "model")
    assert len(model_input.sha256) == 64
    stats = json.loads((out / "stats.json").read_text())
    assert stats["merge"]["shards"] == 2

    # Done shards and a done merge are skipped, not redone.
    before = (out / "shards" / "00000" / "sft.jsonl").stat().st_mtime_ns
    result = shard.run_shard(config(tmp_path, generator_dir, index=0))
    assert result.skipped and (out / "shards" / "00000" / "sft.jsonl").stat().st_mtime_ns == before
    assert merge.run_merge(config(tmp_path, generator_dir, task="synth-merge")).skipped


def test_shard_killed_half_way_is_redone_without_duplicates(tmp_path: Path, generator_dir: Path) -> None:
    cfg = config(tmp_path, generator_dir, index=1, prompts={"math": 40, "openQA": 20})
    out = tmp_path / "out" / "shards" / "00001"
    env = {**os.environ, "SYNTHLOOP_WORKER_CONFIG": cfg.model_dump_json()}
    env.pop("JOB_COMPLETION_INDEX", None)
    proc = subprocess.Popen([sys.executable, "-m", "synthloop.workers.cli", "synth"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    progress = tmp_path / "out" / "progress" / "synth-1.json"
    deadline = time.monotonic() + 120
    while not progress.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the shard finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    # As if it had died during the upload: a partial file from the dead attempt is there.
    out.mkdir(parents=True, exist_ok=True)
    (out / "sft.jsonl").write_text('{"id": "math-20", "messages": []}\n' * 3)

    assert shard.run(cfg) == 0
    sft = rows(out / "sft.jsonl")
    ids = [r["id"] for r in sft]
    assert len(ids) == len(set(ids)) and all(r["messages"] for r in sft)
    verify_manifest(open_store(), f"file://{out}")


def test_bad_inputs_fail_fast_and_name_the_problem(tmp_path: Path, generator_dir: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert shard.run(config(tmp_path, tmp_path / "no-such-model")) == 2
    assert "input model" in capsys.readouterr().err

    assert shard.run(config(tmp_path, generator_dir, prompts={"poetry": 2})) == 2
    err = capsys.readouterr().err
    assert "params.prompts.poetry" in err and "Extra inputs are not permitted" in err

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "nemotron", "hidden_size": "lots"}')
    assert shard.run(config(tmp_path, broken)) == 2
    assert "generator model" in capsys.readouterr().err

    no_rm = config(tmp_path, generator_dir)
    no_rm = no_rm.model_copy(update={"inputs": {**no_rm.inputs, "reward_model": f"file://{tmp_path}/no-rm/"}})
    assert shard.run(no_rm) == 2
    assert "input reward_model: nothing exists at" in capsys.readouterr().err

    assert merge.run(config(tmp_path, generator_dir, task="synth-merge")) == 2
    assert "2 of 2 shard(s) not finished" in capsys.readouterr().err


def test_closed_qa_uses_the_documents_input(tmp_path: Path, generator_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": f"The zeppelin number {i} landed in Oslo."}) + "\n" for i in range(3)))
    cfg = config(tmp_path, generator_dir, index=0, prompts={"closedQA": 3}, dialogues={"count": 0}, shards=1)
    cfg = cfg.model_copy(update={"inputs": {**cfg.inputs, "documents": f"file://{docs}"}, "num_shards": 1})
    assert shard.run(cfg) == 0
    sft = rows(tmp_path / "out" / "shards" / "00000" / "sft.jsonl")
    assert len(sft) == 3 and all("zeppelin" in r["messages"][0]["content"] for r in sft)
    manifest = verify_manifest(open_store(), f"file://{tmp_path}/out/shards/00000")
    assert "documents" in {i.role for i in manifest.inputs}

    docs.write_text('{"text": "fine"}\n{"txt": "wrong key"}\n')
    bad = cfg.model_copy(update={"output": f"file://{tmp_path}/out2/"})
    assert shard.run(bad) == 2
    assert "line 2: expected an object with a 'text' string" in capsys.readouterr().err
