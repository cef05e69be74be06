"""The operator's first-pass checks: what the schema cannot judge, before any input is waited on.

The CRD (OpenAPI + CEL) and the pydantic models refuse what one object can show wrong on its
own. This pass adds what needs the operator's knowledge: the hardware profile (GPU memory,
GPUs per node), the shape of a producer's model, Secrets named in the spec. Each kind's checks
live in its plugin (``KindPlugin.first_pass_problems``). Checks that hold only on real GPUs
(DeepSpeed's batch arithmetic, memory) run when the profile gives ``gpuMemoryGib``: a profile
for CPU or simulated nodes leaves it out. Every problem names its field and what was expected;
the run is Failed before it waits on inputs or creates a Job.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from synthloop.api.v1alpha1.common import Evaluation
from synthloop.builders.profiles import HardwareProfile
from synthloop.controllers.kinds import PLUGINS, plugin_for
from synthloop.controllers.plugin import Checks, Lookup


def first_pass_problems(kind: str, spec: BaseModel, profile: HardwareProfile, *,
                        lookup: Lookup | None = None,
                        secret_exists: Callable[[str], bool] | None = None) -> list[str]:
    """Everything wrong with a parsed spec that the schema could not see; empty when it may run."""
    plugin = plugin_for(kind)
    if not isinstance(spec, plugin.spec_type):
        raise TypeError(f"{kind}: expected a {plugin.spec_type.__name__}, got {type(spec).__name__}")
    checks = Checks(profile=profile, plugins=PLUGINS, lookup=lookup, secret_exists=secret_exists)
    return [*plugin.first_pass_problems(spec, checks), *_evaluation_problems(plugin.evaluation(spec), spec)]


def _evaluation_problems(evaluation: Evaluation | None, spec: BaseModel) -> list[str]:
    """What every kind's evaluation needs of its pods: vLLM generates only on GPUs."""
    resources = getattr(spec, "resources", None)
    if evaluation is None or evaluation.backend != "vllm" or resources is None or resources.gpus_per_node > 0:
        return []
    return [("spec.evaluation.backend: vllm generates only on GPUs, but spec.resources.gpusPerNode is 0; "
            "expected transformers or auto for CPU pods, or gpusPerNode >= 1")]
