"""Data-parallel eval: the eval worker under the torchrun launcher with 2 CPU (gloo) ranks, against
the local cluster's MinIO, as an eval pod runs it.

Each rank takes a contiguous, disjoint slice of every suite's items and the per-item results are
gathered in rank order, so ``metrics.json`` must equal a one-process run's exactly; rank 0 alone
writes it and the manifest.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from synthloop.artifacts.manifest import verify_manifest
from synthloop.artifacts.store import open_store
from synthloop.corpus import preference_rows
from tests.integration.ranks import run_worker, worker_events

#: Odd limits, so the two ranks' slices are unequal (3 + 2 items).
SUITES: list[dict[str, Any]] = [
    {"type": "multipleChoice", "tasks": ["colors"], "kShot": 1, "limit": 7},
    {"type": "ifeval", "tasks": ["synthetic"], "limit": 5},
    {"type": "generative", "tasks": ["arithmetic", "arithmetic_format"], "kShot": 1, "limit": 5},
    {"type": "rewardWinRate", "tasks": ["arithmetic"], "limit": 5},
    {"type": "preferenceAccuracy", "limit": 9},
]


def _models(root: Path) -> dict[str, Path]:
    """Candidate, baseline (another seed) and a reward model (a seeded head on the candidate)."""
    import torch

    from synthloop.models.build import make_tiny_model
    from synthloop.models.io import load_tokenizer, save_model
    from synthloop.models.reward import build_reward_model

    cand = make_tiny_model(root / "cand", preset="tiny-test", seed=0)
    base = make_tiny_model(root / "base", preset="tiny-test", seed=1)
    torch.manual_seed(5)
    reward = save_model(build_reward_model(cand), load_tokenizer(cand), root / "reward")
    return {"model": cand, "baseline_model": base, "reward_model": reward}


def test_two_gloo_ranks_give_the_one_process_metrics(local_cluster: Any, s3_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    store = open_store()
    root = f"s3://{local_cluster.bucket}/dp-eval/{uuid.uuid4().hex[:8]}"
    inputs = {}
    for role, path in _models(tmp_path).items():
        store.upload_dir(path, f"{root}/{role}/")
        inputs[role] = f"{root}/{role}/"
    pairs = f"{root}/pairs.jsonl"
    store.put_bytes(pairs, "".join(json.dumps(r) + "\n" for r in preference_rows(n=9, seed=2)).encode())
    suites = [{**s, "tasks": [pairs]} if s["type"] == "preferenceAccuracy" else s for s in SUITES]
    params = {"maxNewTokens": 12, "batchSize": 2, "backend": "transformers", "suites": suites}

    out: dict[int, str] = {}
    logs: dict[int, str] = {}
    for ranks in (1, 2):
        out[ranks] = f"{root}/eval-x{ranks}/"
        cfg = {"task": "eval", "namespace": "dp-eval", "kind": "AlignJob", "name": "dp", "uid": "u",
               "output": out[ranks], "workdir": str(tmp_path / f"w{ranks}"), "inputs": inputs,
               "params": params, "spec_hash": "abc"}
        logs[ranks] = run_worker("eval", cfg, ranks=ranks)

    one, two = (store.get_json(out[r] + "metrics.json") for r in (1, 2))
    assert one == two, f"1 process: {one}\n2 ranks:   {two}"
    assert set(one["metrics"]) >= {"mc.colors.acc", "ifeval.prompt_strict", "gen.arithmetic.acc",
                                   "reward.win_rate", "preference.accuracy"}
    assert one["counts"]["mc.colors.acc"] == 7 and one["counts"]["preference.accuracy"] == 9

    events = worker_events(logs[2])
    # every suite's items split into two disjoint contiguous slices that cover them all
    shares: dict[str, dict[int, list[int]]] = {}
    for e in events:
        if e["event"] == "rank-share":
            shares.setdefault(e["what"], {})[e["rank"]] = e["items"] + [e["of"]]
    assert set(shares) >= {"mc.colors", "ifeval", "gen.arithmetic", "gen.arithmetic_format", "preference"}
    for what, by_rank in shares.items():
        (a0, b0, n), (a1, b1, _) = by_rank[0], by_rank[1]
        assert (a0, b0, a1, b1) == (0, a1, b0, n) and 0 < b0 < n, (what, by_rank)
    # metrics.json and the manifest once, by rank 0
    assert sum(e["event"] == "finished" for e in events) == 1, logs[2][-3000:]
    assert not [e for e in worker_events(logs[1]) if e["event"] == "rank-share"]
    manifest = verify_manifest(store, out[2])
    assert manifest.extra["ranks"] == 2 and manifest.extra["generation_backend"] == "transformers"
    assert manifest.metrics == two["metrics"]
    assert [o.uri.rsplit("/", 1)[1] for o in manifest.outputs] == ["metrics.json"]
    roles = [i.role for i in manifest.inputs]  # each model fetched and recorded once
    assert all(roles.count(r) == 1 for r in ("model", "baseline_model", "reward_model")), roles
