"""lm-evaluation-harness agreement: the multipleChoice split, and the lmEval suite on local tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from synthloop.api.worker import WorkerConfig
from synthloop.corpus import COLORS
from synthloop.workers.eval.suites import lmeval
from synthloop.workers.eval.suites import multiple_choice as mc

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def facts_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model pretrained (by the pretrain worker) on the colour facts, one per line."""
    from synthloop.workers.pretrain.worker import run

    tmp = tmp_path_factory.mktemp("facts")
    (tmp / "facts.txt").write_text("\n\n".join(f"The {k} is\n{v}." for k, v in sorted(COLORS.items())))
    run(WorkerConfig(task="pretrain", output=f"file://{tmp}/out/", workdir=str(tmp / "w"),
                     inputs={"facts": f"file://{tmp}/facts.txt"}, params={
        "model": {"preset": "tiny-test", "seqLength": 24},
        "tokenizer": {"vocabSize": 200, "trainDocs": 200},
        "phases": [{"name": "facts", "steps": 80, "lr": 3e-3, "minLr": 1e-3, "decay": "constant",
                    "blend": [{"source": "facts", "weight": 1}]}],
        "globalBatchSize": 16, "weightDecay": 0.0, "parallelism": {"microBatchSize": 16},
        "checkpoint": {"everySteps": 1000}, "logEvery": 1000}))
    return tmp / "out" / "model"


@pytest.fixture(scope="module")
def loaded(facts_model: Path) -> Any:
    from synthloop.models.io import load_model

    return load_model(facts_model)


def test_trailing_whitespace_moves_into_the_continuation_as_lm_eval_does(loaded: Any) -> None:
    model, tok = loaded
    lm = lmeval.SynthloopLM(model, tok)
    context, continuation = "The grass is\n", "green."
    ours = mc.encode_pair(tok, context, continuation)
    assert ours == lm._encode_pair(context, continuation)  # lm-eval's own TemplateLM split
    ctx_ids, cont_ids = ours
    assert ctx_ids == tok("The grass is", add_special_tokens=False)["input_ids"]
    assert cont_ids == tok(context + continuation, add_special_tokens=False)["input_ids"][len(ctx_ids):]
    # the score is the sum over exactly those continuation tokens ...
    full = ctx_ids + cont_ids
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([full])).logits[0].log_softmax(-1)
    moved = sum(float(logp[i - 1, full[i]]) for i in range(len(ctx_ids), len(full)))
    got = mc.continuation_logprob(model, tok, context, continuation)
    assert got == pytest.approx(moved, abs=1e-4)
    # ... and lm-eval's loglikelihood of the same request agrees
    from lm_eval.api.instance import Instance

    [(ll, _)] = lm.loglikelihood([Instance("loglikelihood", {}, (context, continuation), 0)])
    assert got == pytest.approx(ll, abs=1e-4)


def test_acc_norm_divides_by_the_choice_length_without_the_delimiter(monkeypatch: pytest.MonkeyPatch) -> None:
    # log-probs -2 for "a" and -5 for "bbb": per character -2 vs -1.67 picks "bbb"; counting the
    # delimiter " " in the length (-1 vs -1.25) would pick "a"
    scores = {" a": -2.0, " bbb": -5.0}
    monkeypatch.setattr(mc, "continuation_logprob", lambda m, t, ctx, cont: scores[cont])
    item = mc.MCItem(query="Q:", choices=("a", "bbb"), gold=1)
    res = mc.evaluate_task(None, None, [item], k_shot=0, seed=0)
    assert res["acc"] == 0.0 and res["acc_norm"] == 1.0


def test_few_shot_context_uses_the_target_delimiter() -> None:
    items = [mc.MCItem("The sky is", ("blue.", "red."), 0), mc.MCItem("The snow is", ("white.", "black."), 0)]
    assert mc.few_shot_context(items, 1, 1, seed=0) == "The sky is blue.\n\nThe snow is"
    row = mc.parse_item({"query": "x", "choices": ["a"], "gold": 0, "target_delimiter": ""}, where="t")
    assert row.target_delimiter == ""


COLOR_TASK = """task: colors_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: ${TASK_DIR}/colors.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{query}}"
doc_to_choice: choices
doc_to_target: gold
target_delimiter: ""
metric_list:
  - metric: acc
  - metric: acc_norm
"""
GEN_TASK = """task: colors_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: ${TASK_DIR}/colors.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{query}}"
doc_to_target: "{{choices[gold]}}"
target_delimiter: ""
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_punctuation: true
"""


def write_tasks(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"query": f"The {k} is\n", "choices": [v + "."] + [c + "." for c in sorted(set(COLORS.values()) - {v})][:3],
             "gold": 0} for k, v in sorted(COLORS.items())]
    (root / "colors.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "colors_local.yaml").write_text(COLOR_TASK)
    (root / "colors_gen.yaml").write_text(GEN_TASK)
    return root


def test_lmeval_suite_runs_local_tasks_with_named_metrics(tmp_path: Path, loaded: Any) -> None:
    model, tok = loaded
    task_dir = lmeval.localize_task_dir(write_tasks(tmp_path / "tasks"))
    metrics, counts = lmeval.run_suite(model, tok, tasks=["colors_local", "colors_gen"], num_fewshot=0,
                                       limit=None, task_dir=task_dir, seed=0)
    n = len(COLORS)
    assert metrics["lmeval.colors_local.acc"] == 1.0 and counts["lmeval.colors_local.acc"] == n
    assert "lmeval.colors_local.acc_norm" in metrics and "lmeval.colors_local.acc_stderr" in metrics
    assert 0.0 <= metrics["lmeval.colors_gen.exact_match"] <= 1.0
    assert counts["lmeval.colors_gen.exact_match"] == n
    with pytest.raises(ValueError, match=r"lmEval tasks \['nope'\] are not known"):
        lmeval.run_suite(model, tok, tasks=["nope"], num_fewshot=0, limit=None, task_dir=task_dir, seed=0)


def test_metric_names_drop_the_default_filter() -> None:
    got = lmeval.metric_names({"gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.5,
                                         "exact_match_stderr,strict-match": 0.1, "exact_match,none": 0.25,
                                         "acc_stderr,none": "N/A"}})
    assert got == {"lmeval.gsm8k.exact_match_strict-match": 0.5,
                   "lmeval.gsm8k.exact_match_strict-match_stderr": 0.1, "lmeval.gsm8k.exact_match": 0.25}


def test_eval_worker_runs_generative_and_lmeval_suites(tmp_path: Path, facts_model: Path) -> None:
    """Through the worker: a generative JSONL task (scored by the math verifier) and lm-eval tasks
    from a file:// taskDir; both land in metrics.json with their counts."""
    from synthloop.workers.eval.worker import run

    task_dir = write_tasks(tmp_path / "tasks")
    gen_task = tmp_path / "colors_qa.jsonl"
    gen_task.write_text("".join(json.dumps({"prompt": f"The {k} is", "answer": "7"}) + "\n"
                                for k in sorted(COLORS)[:4]))
    out = tmp_path / "out"
    run(WorkerConfig(task="eval", output=f"file://{out}/", workdir=str(tmp_path / "w"),
                     inputs={"model": str(facts_model)}, params={"maxNewTokens": 4, "suites": [
                         {"type": "generative", "tasks": [f"file://{gen_task}", "arithmetic"], "kShot": 1, "limit": 4},
                         {"type": "lmEval", "tasks": ["colors_local"], "numFewshot": 0,
                          "taskDir": f"file://{task_dir}/"}]}))
    body = json.loads((out / "metrics.json").read_text())
    m, c = body["metrics"], body["counts"]
    # the colour model never says 7, and cannot do arithmetic: a verifier, not a stub, decides
    assert m["gen.colors_qa.acc"] == 0.0 and c["gen.colors_qa.acc"] == 4
    assert c["gen.arithmetic.acc"] == 4 and 0.0 <= m["gen.arithmetic.acc"] <= 1.0
    assert "gen.arithmetic.acc_stderr" in m
    assert m["lmeval.colors_local.acc"] == 1.0 and c["lmeval.colors_local.acc"] == len(COLORS)
