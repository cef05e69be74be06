"""A Failed run is retried by the synthloop.io/retry annotation, keeping its uid and artifacts."""

from __future__ import annotations

from typing import Any

import pytest

from synthloop.artifacts.uris import join
from synthloop.controllers import reasons as R
from synthloop.controllers.reconcile import RETRY_ANNOTATION
from tests.unit.test_reconcile_pass import NS, SYNTH, env, worker_config, write_run  # noqa: F401 - env is a fixture

pytestmark = pytest.mark.unit


def test_retry_annotation_starts_a_new_attempt_of_the_failed_stage_only(env: Any) -> None:  # noqa: F811
    api, store, rec = env
    store.put_bytes("s3://synthloop/models/gen/config.json", b"{}")
    api.add("SynthRound", "r1", SYNTH)
    rec.reconcile("SynthRound", NS, "r1")
    cfg = worker_config(api, "r1-synth")
    for i in range(2):
        write_run(store, join(cfg["output"], "shards", f"{i:05d}"), {"sft.jsonl": b"a\n"}, task="synth")
    api.finish("r1-synth")
    rec.reconcile("SynthRound", NS, "r1")
    api.finish("r1-merge", ok=False)
    assert rec.reconcile("SynthRound", NS, "r1").state == "failed"
    started = api.status("SynthRound", "r1")["startedAt"]

    # nothing happens without the annotation, nor twice for the same value
    assert rec.reconcile("SynthRound", NS, "r1").state == "failed"
    api.crs[("SynthRound", "r1")]["metadata"]["annotations"] = {RETRY_ANNOTATION: "1"}
    assert rec.reconcile("SynthRound", NS, "r1").state == "running"
    st = api.status("SynthRound", "r1")
    assert st["phase"] == "Running" and st["retry"] == "1" and st["startedAt"] == started
    assert api.condition("SynthRound", "r1", "Failed")["status"] == "False"
    assert ("r1", R.RETRY_REQUESTED) in [(n, r) for n, r, _ in api.events]
    new = [j for j in api.jobs if j not in ("r1-synth", "r1-merge")]
    assert len(new) == 1 and "merge" in new[0]  # the verified shards are not run again
    assert worker_config(api, new[0])["output"] == cfg["output"]  # same run prefix: artifacts kept

    api.finish(new[0], ok=False)
    assert rec.reconcile("SynthRound", NS, "r1").state == "failed"
    assert rec.reconcile("SynthRound", NS, "r1").state == "failed"  # the same token does not retry again
    assert len(api.jobs) == 3
    api.crs[("SynthRound", "r1")]["metadata"]["annotations"] = {RETRY_ANNOTATION: "2"}
    assert rec.reconcile("SynthRound", NS, "r1").state == "running"
    (third,) = [j for j in api.jobs if j not in ("r1-synth", "r1-merge", new[0])]
    write_run(store, cfg["output"], {"sft.jsonl": b"s\n", "preference.jsonl": b"p\n"}, task="synth-merge")
    api.finish(third)
    assert rec.reconcile("SynthRound", NS, "r1").state == "done"
    assert api.status("SynthRound", "r1")["phase"] == "Succeeded"
