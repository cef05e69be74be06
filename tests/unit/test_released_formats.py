"""Data as the field releases it loads with no conversion: small files in the released layout.

tests/data/released/ holds HelpSteer2's ``train.jsonl.gz``/``validation.jsonl.gz`` (its exact
keys), a C4 shard ``en/c4-train.00000-of-01024.json.gz`` (``text``, ``timestamp``, ``url``) and
an HF Parquet export ``data/train-00000-of-00001.parquet``; tests/data/ifeval/ the IFEval
release's ``input_data.jsonl`` layout.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from synthloop.api.worker import WorkerConfig
from synthloop.artifacts.store import open_store
from synthloop.workers.runtime.distributed import DistEnv
from synthloop.workers.runtime.records import as_jsonl_text
from synthloop.workers.runtime.run import Run
from synthloop.workers.training.data import parse_preference, parse_rating, read_jsonl

pytestmark = pytest.mark.unit

DATA = Path(__file__).parents[1] / "data"
RELEASED = DATA / "released"


def fetch(tmp_path: Path, path: Path) -> str:
    """What a worker reads for an input URI (``Run.fetch_text``), sha256 recorded."""
    config = WorkerConfig(task="reward-train", output=f"file://{tmp_path}/out/", workdir=str(tmp_path / "w"),
                          inputs={"data": f"file://{path}"}, params={})
    run = Run(config, open_store(config.output), env=DistEnv.from_env())
    text = run.fetch_text("data")
    assert run.inputs[-1].uri == f"file://{path}" and len(run.inputs[-1].sha256) == 64
    return text


def test_helpsteer2_gzipped_splits_load_as_ratings(tmp_path: Path) -> None:
    train, bad = read_jsonl(fetch(tmp_path, RELEASED / "helpsteer2" / "train.jsonl.gz"), parse=parse_rating,
                            what="train", max_malformed_fraction=0.0)
    val, _ = read_jsonl(fetch(tmp_path, RELEASED / "helpsteer2" / "validation.jsonl.gz"), parse=parse_rating,
                        what="validation", max_malformed_fraction=0.0)
    assert bad == 0 and len(train) == 3 and len(val) == 1
    assert train[0].prompt == [{"role": "user", "content": "What is 12 + 30?"}]
    assert train[0].attributes == (4, 4, 4, 1, 1) and train[1].attributes[1] == 0


def test_c4_shard_loads_as_closed_qa_documents(tmp_path: Path) -> None:
    from synthloop.workers.synth.io import read_documents

    shard = RELEASED / "c4" / "en" / "c4-train.00000-of-01024.json.gz"
    docs = read_documents(open_store(f"file://{tmp_path}/"), f"file://{shard}", workdir=tmp_path)
    assert len(docs) == 3 and docs[0].startswith("The river Seine")


def test_parquet_export_loads_as_preference_pairs(tmp_path: Path) -> None:
    pairs, _ = read_jsonl(fetch(tmp_path, RELEASED / "hf-parquet" / "data" / "train-00000-of-00001.parquet"),
                          parse=parse_preference, what="pairs", max_malformed_fraction=0.0)
    assert pairs[0].prompt == [{"role": "user", "content": "What is 7 * 6?"}]
    assert pairs[0].chosen.endswith("Answer: 42") and pairs[1].rejected_reward == 1.0


def test_ifeval_release_gzipped_or_as_parquet_scores_the_same(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from synthloop.workers.eval.suites import ifeval

    raw = (DATA / "ifeval" / "input_data.jsonl").read_bytes()
    plain = ifeval.parse_items(as_jsonl_text(raw, name="input_data.jsonl"), name="plain")
    gz = ifeval.parse_items(as_jsonl_text(gzip.compress(raw), name="input_data.jsonl.gz"), name="gz")
    # the HF export of google/IFEval fills every kwargs key with null: Parquet keeps that shape
    keys = sorted({k for line in raw.decode().splitlines() for kw in json.loads(line)["kwargs"] for k in kw})
    rows = [json.loads(line) for line in raw.decode().splitlines()]
    for r in rows:
        r["kwargs"] = [{k: kw.get(k) for k in keys} for kw in r["kwargs"]]
    table = pa.Table.from_pylist(rows)
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(table, path)
    hf = ifeval.parse_items(as_jsonl_text(path.read_bytes(), name=str(path)), name="parquet")
    assert [[i.to_dict() for i in it.instructions] for it in plain] == \
        [[i.to_dict() for i in it.instructions] for it in gz] == [[i.to_dict() for i in it.instructions] for it in hf]


def test_a_broken_file_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"bad\.jsonl\.gz: gzip data that does not decompress"):
        as_jsonl_text(b"\x1f\x8b\x08garbage", name="bad.jsonl.gz")
    with pytest.raises(ValueError, match=r"x\.bin: expected JSONL, gzipped JSONL or Parquet"):
        as_jsonl_text(b"\xff\xfe\x00", name="x.bin")
    assert as_jsonl_text(b'[{"a": 1}, {"a": 2}]', name="arr.json") == '{"a": 1}\n{"a": 2}\n'
