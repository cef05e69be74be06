"""The kind-plugin interface: what one kind contributes to a pass, typed over its spec.

Like Kubeflow Trainer's runtime plugins, each kind is one module (``pretrain.py``,
``synthround.py``, ``reward.py``, ``align.py``) holding one plugin: the inputs its workers read,
its stages, its outputs (a model, or data), its evaluation, how its progress reads and the
checks only the operator can make before any pod. The pass (``reconcile.py`` and the steps it
calls) never asks which kind it runs; it asks the plugin (``kinds.plugin_for``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from synthloop.api.v1alpha1.common import CommonSpec, Evaluation, Output, Promotion, Source
from synthloop.api.v1alpha1.pod import EnvVar, PodSettings, PodTemplate
from synthloop.api.v1alpha1.reward import AttributeWeights
from synthloop.api.validate import parse_spec
from synthloop.artifacts.manifest import Manifest
from synthloop.artifacts.store import WEIGHTS_NAME
from synthloop.builders.podtemplate import pod_template_of
from synthloop.builders.profiles import HardwareProfile
from synthloop.builders.stages import TRAINING_TASKS, StagePlan
from synthloop.controllers.status import progress_from_reports
from synthloop.models.presets import ModelDims

SpecT = TypeVar("SpecT", bound=CommonSpec)
#: How far a producer chain (an AlignJob on an AlignJob on a PretrainJob) is followed for a model's shape.
MAX_PRODUCER_DEPTH = 8


class Lookup(Protocol):
    """Read access to the synthloop objects of the run's namespace."""

    def get(self, kind: str, name: str) -> dict[str, Any] | None: ...

    def list(self, kind: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, kw_only=True)
class Checks:
    """What a kind's first-pass checks may consult besides the spec. ``plugins`` is the kind
    registry (``kinds.PLUGINS``), handed in so that this module never imports it (one way)."""

    profile: HardwareProfile
    plugins: Mapping[str, KindPlugin[Any]]
    lookup: Lookup | None = None
    secret_exists: Callable[[str], bool] | None = None

    def producer_dims(self, source: Source | None, depth: int = 0) -> ModelDims | None:
        """The decoder shape of the model a source names, from its producer's spec: the object of
        a ``fromRef``, or the one here whose ``spec.promotion`` is a ``promoted`` name (followed
        through AlignJobs and RewardTrains to the PretrainJob); None when the operator cannot tell
        (a ``uri``, another namespace's promotion, a producer not applied yet)."""
        if source is None or self.lookup is None or depth > MAX_PRODUCER_DEPTH:
            return None
        kind: str
        body: dict[str, Any] | None
        if source.from_ref is not None:
            kind, body = source.from_ref.kind, self.lookup.get(source.from_ref.kind, source.from_ref.name)
        elif source.promoted is not None and "/" not in source.promoted:
            kind, body = self._promoter(source.promoted)
        else:
            return None
        plugin = self.plugins.get(kind)
        raw = (body or {}).get("spec")
        if plugin is None or not isinstance(raw, dict):
            return None
        try:
            spec = plugin.parse(str(((body or {}).get("metadata") or {}).get("name", "")), raw)
        except ValueError:
            return None
        return plugin.model_dims(spec, self, depth + 1)

    def _promoter(self, name: str) -> tuple[str, dict[str, Any] | None]:
        """The kind and body of the one object here that promotes ``name`` (none, or several: unknown)."""
        assert self.lookup is not None
        found = [(kind, body) for kind in self.plugins for body in self.lookup.list(kind)
                 if (((body.get("spec") or {}).get("promotion") or {}).get("name")) == name]
        return found[0] if len(found) == 1 else ("", None)


@dataclass(frozen=True)
class RunOutputs:
    """What a run's last stage produced, for ``status.outputs``, ``status.counts`` and ``status.metrics``."""

    outputs: list[Output]
    counts: dict[str, int]
    metrics: dict[str, float] | None = None  # None: the metrics come from the evaluation (or stay as they are)


def evaluation_of(ev: Evaluation) -> Evaluation | None:
    """A spec's evaluation when it has anything to run or judge."""
    return ev if ev.suites or ev.gates else None


def model_output(manifest: Manifest, model_uri: str) -> tuple[str, int]:
    """sha256 of the weights file and total size of a model directory listed in a manifest."""
    files = [o for o in manifest.outputs if o.uri.startswith(model_uri)]
    size = sum(o.size for o in files)
    weights = next((o for o in files if o.uri.endswith("/" + WEIGHTS_NAME)), None)
    return (weights.sha256 if weights else ""), size


class KindPlugin(ABC, Generic[SpecT]):
    """One kind's half of a pass. Subclasses set ``kind`` and ``spec_type``."""

    kind: ClassVar[str]
    spec_type: type[SpecT]

    def parse(self, name: str, raw: Mapping[str, Any]) -> SpecT:
        """The typed spec (raises ``SpecError``, a ValueError, naming each bad field)."""
        spec = parse_spec(self.kind, name, dict(raw))
        assert isinstance(spec, self.spec_type)
        return spec

    # -- inputs --------------------------------------------------------------------------
    @abstractmethod
    def input_sources(self, spec: SpecT) -> list[tuple[str, Source | None]]:
        """(role, source) of every input the kind's workers read; None: not given."""

    def inputs(self, spec: SpecT) -> list[tuple[str, Source]]:
        """The given inputs, in order (the parent is resolved apart: ``parent_source``)."""
        return [(role, src) for role, src in self.input_sources(spec) if src is not None]

    def parent_source(self, spec: SpecT, lookup: Lookup) -> Source | None:
        """The model a must-beat-parent gate and a win rate compare with; None: the kind has none."""
        return None

    # -- stages and outputs --------------------------------------------------------------
    @abstractmethod
    def stages(self, spec: SpecT, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
        """The run's Jobs in order, from its resolved inputs (role -> URI)."""

    def outputs(self, last: StagePlan, final: list[Manifest]) -> RunOutputs:
        """A model under the last stage's ``model/`` (the training kinds); counts of every manifest."""
        sha, size = model_output(final[0], last.model_uri)
        counts: dict[str, int] = {}
        for m in final:
            counts.update(m.counts)
        return RunOutputs(outputs=[Output(name="model", uri=last.model_uri, sha256=sha, size=size)], counts=counts)

    # -- pods ----------------------------------------------------------------------------
    def pod_env(self, spec: SpecT) -> list[EnvVar]:
        """Env the kind's own pods need besides ``spec.podTemplate`` (none by default)."""
        return []

    def pod_template(self, spec: SpecT) -> PodTemplate | None:
        """What the builders merge into every Job of the run: ``spec.podTemplate`` plus ``pod_env``."""
        assert isinstance(spec, PodSettings)  # every kind's spec has podTemplate
        return pod_template_of(spec.pod_template, env=self.pod_env(spec))

    # -- evaluation and promotion --------------------------------------------------------
    def evaluation(self, spec: SpecT) -> Evaluation | None:
        """The evaluation to run after the stages, or None (nothing to evaluate)."""
        return None

    def promotion(self, spec: SpecT) -> Promotion | None:
        """Under which name the run's model is promoted when its gates pass; None: not promoted."""
        return None

    def reward_weights(self, spec: SpecT) -> AttributeWeights | None:
        """Attribute weights the evaluation scores rewards with (a RewardTrain's own); None: the judge's."""
        return None

    # -- progress ------------------------------------------------------------------------
    def initial_progress(self, plan: StagePlan) -> str:
        return "starting"

    def progress(self, plan: StagePlan, reports: list[dict[str, Any]], manifests_present: int) -> str:
        """``status.progress`` of a running stage from its workers' progress reports."""
        if plan.task in TRAINING_TASKS:
            first = sorted(reports, key=lambda r: int(r.get("index", 0)))[:1]  # rank 0 speaks for the gang
            prog = progress_from_reports(first, unit="steps")
            return prog.text() if prog else "starting"
        prog = progress_from_reports(reports, unit="items")
        return prog.text() if prog else plan.stage

    # -- first pass ----------------------------------------------------------------------
    def model_dims(self, spec: SpecT, checks: Checks, depth: int = 0) -> ModelDims | None:
        """The decoder shape of the model this kind outputs; None when the operator cannot tell."""
        return None

    def first_pass_problems(self, spec: SpecT, checks: Checks) -> list[str]:
        """What only the operator can judge (profile, producers, Secrets); each names its field."""
        return []
