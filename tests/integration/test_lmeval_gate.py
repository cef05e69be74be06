"""An lmEval suite (lm-evaluation-harness as a library) gates a promotion on the real cluster.

The task is defined in YAML over a JSONL file, both uploaded to MinIO as a ``taskDir``; the
eval pod fetches them, runs lm-eval offline against the aligned model and writes
``lmeval.<task>.<metric>``; the operator gates on it and promotes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthloop.artifacts.manifest import verify_manifest
from synthloop.artifacts.promotion import read_promotion
from synthloop.artifacts.store import open_store
from tests.conftest import LocalCluster
from tests.integration.test_operator import (  # noqa: F401 - fixtures
    Operator,
    _worker_image,
    apply,
    base,
    condition,
    cr,
    operator,
    wait_phase,
)

pytestmark = pytest.mark.integration

TASK = """task: yesno_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: ${TASK_DIR}/yesno.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
"""


def test_an_lmeval_suite_over_a_task_in_minio_gates_the_promotion(
    local_cluster: LocalCluster, namespace: str, operator: Operator, base: dict[str, str], tmp_path: Path,  # noqa: F811
) -> None:
    lc = local_cluster
    store = open_store()
    task_dir = f"s3://{lc.bucket}/{namespace}/lmeval-tasks/"
    # one choice per question: acc is exactly 1.0 when lm-eval scored every row against its gold
    rows = [{"question": f"Is {n} even?", "choices": ["yes" if n % 2 == 0 else "no"], "gold": 0} for n in range(6)]
    store.put_bytes(task_dir + "yesno.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    store.put_bytes(task_dir + "yesno_local.yaml", TASK.encode())
    promo = f"lmeval-{namespace[-6:]}"
    apply(lc, namespace, cr("AlignJob", "align-lmeval", {
        "baseModel": {"uri": base["model"]}, "data": {"uri": base["data"]},
        "stages": [{"type": "sft", "globalBatchSize": 4}],
        "evaluation": {"suites": [{"type": "lmEval", "tasks": ["yesno_local"], "numFewshot": 1, "taskDir": task_dir}],
                       "gates": [{"metric": "lmeval.yesno_local.acc", "min": 1.0}]},
        "promotion": {"name": promo}, "backoffLimit": 0}))
    operator.start()
    align = wait_phase(lc, operator, namespace, "AlignJob", "align-lmeval", {"Promoted", "Rejected"}, timeout=480)
    assert align["status"]["phase"] == "Promoted", condition(align, "Promoted")
    assert align["status"]["metrics"]["lmeval.yesno_local.acc"] == 1.0
    # the eval's own manifest counts every row lm-eval scored
    [ref] = [o for o in align["status"]["outputs"] if o["name"].startswith("manifest:") and "/eval/" in o["uri"]]
    manifest = verify_manifest(store, ref["uri"].rsplit("/", 1)[0])
    assert manifest.counts["lmeval.yesno_local.acc"] == len(rows)
    assert "lmeval.yesno_local.acc_norm" in align["status"]["metrics"]
    pointer = read_promotion(store, bucket=lc.bucket, namespace=namespace, name=promo)
    assert pointer is not None and pointer.metrics["lmeval.yesno_local.acc"] == 1.0
