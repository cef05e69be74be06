"""One typed plugin per kind: the registry covers the API's kinds, and the pass never branches on a kind."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from synthloop.api.v1alpha1 import KINDS, RESOURCES
from synthloop.api.v1alpha1.common import Source
from synthloop.artifacts.manifest import ArtifactRef, Manifest
from synthloop.builders.stages import StagePlan
from synthloop.controllers import kinds
from synthloop.controllers.kinds import PLUGINS, plugin_for

pytestmark = pytest.mark.unit
CONTROLLERS = Path(kinds.__file__).parent
#: The plugin modules, the registry, and the operator config (a default image per kind).
MAY_NAME_KINDS = {"pretrain.py", "synthround.py", "reward.py", "align.py", "kinds.py", "config.py"}


def test_every_kind_has_a_plugin_typed_over_its_spec_in_a_module_named_for_it() -> None:
    assert set(PLUGINS) == set(KINDS)
    modules = {"PretrainJob": "pretrain", "SynthRound": "synthround", "RewardTrain": "reward", "AlignJob": "align"}
    for kind, plugin in PLUGINS.items():
        assert plugin.kind == kind
        assert plugin.spec_type is RESOURCES[kind].model_fields["spec"].annotation
        assert type(plugin).__module__ == f"synthloop.controllers.{modules[kind]}"
    with pytest.raises(ValueError, match="unknown kind 'Deployment': expected one of PretrainJob"):
        plugin_for("Deployment")


def test_no_module_of_the_pass_names_a_kind() -> None:
    """What differs between kinds is asked of the plugin: no ``kind == "AlignJob"`` outside the plugins."""
    offenders = []
    for path in sorted(CONTROLLERS.glob("*.py")):
        if path.name in MAY_NAME_KINDS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in KINDS:
                offenders.append(f"{path.name}:{node.lineno}: {node.value!r}")
    assert offenders == []


def _align(**spec: Any) -> Any:
    return plugin_for("AlignJob").parse("a1", {
        "baseModel": {"uri": "s3://b/base/"}, "data": {"fromRef": {"kind": "SynthRound", "name": "r1"}},
        "stages": [{"type": "sft"}], **spec})


class _Lookup:
    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        if (kind, name) == ("SynthRound", "r1"):
            return {"spec": {"generator": {"model": {"promoted": "interm-1"}}}}
        return None


def test_an_alignjobs_parent_is_its_own_else_the_generator_of_its_data() -> None:
    plugin = plugin_for("AlignJob")
    assert plugin.parent_source(_align(), _Lookup()) == Source(promoted="interm-1")
    assert plugin.parent_source(_align(parent={"uri": "s3://b/p/"}), _Lookup()) == Source(uri="s3://b/p/")
    assert plugin_for("SynthRound").parent_source(None, _Lookup()) is None
    assert [r for r, _ in plugin.inputs(_align())] == ["model", "data"]  # no rewardModel given


def test_a_synthround_outputs_data_and_a_training_kind_a_model() -> None:
    last = StagePlan(stage="merge", task="synth-merge", output="s3://b/r/synth/", manifests=("s3://b/r/synth/",))
    merged = Manifest(task="synth-merge", counts={"sft": 2}, metrics={"acceptance": 0.5}, outputs=[
        ArtifactRef(uri="s3://b/r/synth/sft.jsonl", sha256="a" * 64, size=3, role="sft"),
        ArtifactRef(uri="s3://b/r/synth/preference.jsonl", sha256="b" * 64, size=4, role="preference")])
    data = plugin_for("SynthRound").outputs(last, [merged])
    assert [o.name for o in data.outputs] == ["data", "preference", "sft"]
    assert data.outputs[0].size == 7 and data.counts == {"sft": 2} and data.metrics == {"acceptance": 0.5}
    trained = StagePlan(stage="sft-0", task="align", output="s3://b/a/sft-0/", manifests=("s3://b/a/sft-0/",))
    weights = ArtifactRef(uri="s3://b/a/sft-0/model/model.safetensors", sha256="c" * 64, size=5)
    model = plugin_for("AlignJob").outputs(trained, [Manifest(task="align", outputs=[weights], counts={"rows": 1})])
    assert [(o.name, o.uri, o.sha256, o.size) for o in model.outputs] == [
        ("model", "s3://b/a/sft-0/model/", "c" * 64, 5)]
    assert model.metrics is None  # a model's metrics are its evaluation's


def test_progress_reads_as_each_stage_counts() -> None:
    shards = StagePlan(stage="synth", task="synth", output="o/", manifests=(), pods=4)
    synth = plugin_for("SynthRound")
    assert synth.initial_progress(shards) == "0/4 shards"
    assert synth.progress(shards, [{"done": 3, "total": 8}, {"done": 1, "total": 8}], 1) == "1/4 shards, 4/16 items"
    train = StagePlan(stage="pretrain", task="pretrain", output="o/", manifests=(), pods=2)
    reports = [{"index": 1, "done": 9, "total": 10}, {"index": 0, "done": 5, "total": 10}]
    assert plugin_for("PretrainJob").progress(train, reports, 0) == "5/10 steps"  # rank 0 speaks for the gang
    assert plugin_for("PretrainJob").initial_progress(train) == "starting"
