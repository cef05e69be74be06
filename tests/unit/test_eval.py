"""The eval harness: multiple-choice scoring on known answers, IFEval scoring, the eval worker."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from synthloop.api.worker import WorkerConfig
from synthloop.corpus import COLORS
from synthloop.workers.eval.suites import multiple_choice as mc

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def facts_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model pretrained (by the pretrain worker) on the colour facts only."""
    from synthloop.workers.pretrain.worker import run

    tmp = tmp_path_factory.mktemp("facts")
    (tmp / "facts.txt").write_text("\n\n".join(f"The {k} is {v}." for k, v in sorted(COLORS.items())))
    run(WorkerConfig(task="pretrain", output=f"file://{tmp}/out/", workdir=str(tmp / "w"),
                     inputs={"facts": f"file://{tmp}/facts.txt"}, params={
        "model": {"preset": "tiny-test", "seqLength": 24},
        "tokenizer": {"vocabSize": 200, "trainDocs": 200},
        "phases": [{"name": "facts", "steps": 80, "lr": 3e-3, "minLr": 1e-3, "decay": "constant",
                    "blend": [{"source": "facts", "weight": 1}]}],
        "globalBatchSize": 16, "weightDecay": 0.0, "parallelism": {"microBatchSize": 16},
        "checkpoint": {"everySteps": 1000}, "logEvery": 1000}))
    return tmp / "out" / "model"


def test_multiple_choice_scores_known_answers(facts_model: Path) -> None:
    from synthloop.models.io import load_model

    model, tok = load_model(facts_model)
    items = mc.builtin_task("colors")
    assert mc.evaluate_task(model, tok, items, k_shot=0, seed=0)["acc"] == 1.0
    assert mc.evaluate_task(model, tok, items, k_shot=3, seed=0)["acc"] == 1.0
    # the same questions with the gold label moved to a wrong choice: the scorer must disagree
    wrong = [mc.MCItem(i.query, i.choices, (i.gold + 1) % len(i.choices)) for i in items]
    assert mc.evaluate_task(model, tok, wrong, k_shot=0, seed=0)["acc"] == 0.0


def test_continuation_logprob_is_the_sum_over_the_continuation_tokens(facts_model: Path) -> None:
    from synthloop.models.io import load_model

    model, tok = load_model(facts_model)
    ctx, cont = "The sky is", " blue."
    full = tok(ctx + cont, add_special_tokens=False)["input_ids"]
    n_ctx = len(tok(ctx, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([full])).logits[0].log_softmax(-1)
    expected = sum(float(logp[i - 1, full[i]]) for i in range(n_ctx, len(full)))
    assert mc.continuation_logprob(model, tok, ctx, cont) == pytest.approx(expected, abs=1e-4)
    assert math.exp(mc.continuation_logprob(model, tok, ctx, cont)) > 0.5


def test_few_shot_context_never_includes_the_item_itself() -> None:
    items = mc.builtin_task("arithmetic")
    ctx = mc.few_shot_context(items, 3, 5, seed=1)
    assert ctx.endswith(items[3].query) and ctx.count(items[3].query) == 1
    assert ctx.count("\n\n") == 5
    with pytest.raises(ValueError, match="line 2: gold 7"):
        mc.parse_task('{"query":"q","choices":["a","b"],"gold":0}\n{"query":"q","choices":["a"],"gold":7}', name="t")
    with pytest.raises(ValueError, match="unknown builtin task 'mmlu'"):
        mc.builtin_task("mmlu")


def test_ifeval_scoring_strict_and_loose() -> None:
    from synthloop.verifiers.registry import REGISTRY
    from synthloop.workers.eval.suites.ifeval import IFItem, parse_items, score_responses

    lower = REGISTRY["change_case:english_lowercase"].build()
    item = IFItem(prompt="Say hi in lowercase.", instructions=(lower,))
    m, c = score_responses([item, item], ["hi there", "**Sure:**\nhi there"])
    assert m["ifeval.prompt_strict"] == 0.5 and m["ifeval.prompt_loose"] == 1.0
    assert c["ifeval.prompt_strict"] == 2 and c["ifeval.instruction_strict"] == 2
    rows = parse_items(json.dumps({"prompt": "p", "instruction_id_list": ["change_case:english_lowercase"],
                                   "kwargs": [{}]}), name="x")
    assert rows[0].instructions[0].check("all lower") and not rows[0].instructions[0].check("Upper")


def test_eval_worker_writes_metrics_with_counts(tmp_path: Path, facts_model: Path) -> None:
    from synthloop.artifacts.manifest import verify_manifest
    from synthloop.artifacts.store import open_store
    from synthloop.workers.eval.worker import run

    task = tmp_path / "mytask.jsonl"
    task.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "The snow is", "choices": [" black.", " white."], "answer": 1},
        {"question": "The grass is", "choices": [" green.", " red."], "answer": " green."}]))
    out = f"file://{tmp_path}/out/"
    run(WorkerConfig(task="eval", output=out, workdir=str(tmp_path / "w"),
                     inputs={"model": str(facts_model)}, params={"maxNewTokens": 8, "suites": [
                         {"type": "multipleChoice", "tasks": ["colors", f"file://{task}"], "kShot": 1},
                         {"type": "ifeval", "tasks": ["synthetic"], "limit": 4}]}))
    manifest = verify_manifest(open_store(env={}), out)
    body = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert body["metrics"]["mc.colors.acc"] == 1.0 and body["counts"]["mc.colors.acc"] == 8
    assert body["metrics"]["mc.mytask.acc"] == 1.0 and body["counts"]["mc.mytask.acc"] == 2
    assert body["counts"]["ifeval.prompt_strict"] == 4
    assert 0.0 <= body["metrics"]["ifeval.instruction_loose"] <= 1.0
    assert manifest.metrics == body["metrics"]
    with pytest.raises(ValueError, match=r"rewardWinRate suite needs inputs \['reward_model', 'baseline_model'\]"):
        run(WorkerConfig(task="eval", output=f"file://{tmp_path}/o2/", workdir=str(tmp_path / "w2"),
                         inputs={"model": str(facts_model)}, params={"suites": [{"type": "rewardWinRate"}]}))


def test_generation_goes_through_the_backend_the_spec_names(tmp_path: Path, facts_model: Path) -> None:
    """One generation loop: the generating suites use the synth worker's backends, picked by
    ``evaluation.backend``; the manifest says which ran, and an unavailable one fails by name."""
    from importlib.util import find_spec

    from synthloop.artifacts.manifest import verify_manifest
    from synthloop.artifacts.store import open_store
    from synthloop.workers.eval.worker import run
    from synthloop.workers.synth.backends.base import ModelLoadError

    suites = [{"type": "ifeval", "tasks": ["synthetic"], "limit": 2}]
    out = f"file://{tmp_path}/auto/"
    run(WorkerConfig(task="eval", output=out, workdir=str(tmp_path / "w"), inputs={"model": str(facts_model)},
                     params={"maxNewTokens": 4, "suites": suites}))
    manifest = verify_manifest(open_store(env={}), out)
    assert manifest.extra["generation_backend"] == "transformers"  # auto on a CPU
    assert manifest.extra["ranks"] == 1
    if find_spec("vllm") is None:
        with pytest.raises(ModelLoadError, match="backend is 'vllm' but vllm is not installed"):
            run(WorkerConfig(task="eval", output=f"file://{tmp_path}/vllm/", workdir=str(tmp_path / "w2"),
                             inputs={"model": str(facts_model)},
                             params={"maxNewTokens": 4, "backend": "vllm", "suites": suites}))


def test_the_old_second_generate_loop_is_gone() -> None:
    from synthloop.workers.eval import suites

    assert not (Path(suites.__file__).parent / "generation.py").exists()
