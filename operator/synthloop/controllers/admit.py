"""Step 1 of a pass, admit: the typed spec, its hardware profile and the first-pass checks.

Everything here judges the spec alone (and what the operator knows: profiles, producers'
specs, Secrets), so a spec that can never run is Failed before it waits on any input and
before any Job exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synthloop.api.v1alpha1.common import CommonSpec
from synthloop.api.validate import SpecError
from synthloop.builders.profiles import HardwareProfile
from synthloop.controllers import reasons as R
from synthloop.controllers.kinds import PLUGINS, plugin_for
from synthloop.controllers.plugin import Checks, KindPlugin
from synthloop.controllers.resolve import find_cycle
from synthloop.controllers.runstate import Lookup, RunState


@dataclass(frozen=True)
class Admitted:
    """A spec that may run: its kind's plugin, the typed spec, the profile, the pass's object cache."""

    plugin: KindPlugin[Any]
    spec: CommonSpec  # of the plugin's spec_type (its own methods take it as that)
    profile: HardwareProfile
    lookup: Lookup


def require_secret(run: RunState) -> None:
    """The MinIO Secret the worker pods read. Checked on a spec's first pass and before each
    Job, not on every pass: a waiting object's passes then cost no API request."""
    if not run.cluster.secret_exists(run.namespace, run.config.s3_secret):
        raise run.fail(
            R.SECRET_MISSING,
            f"Secret {run.config.s3_secret} (keys accessKey, secretKey) does not exist in namespace "
            f"{run.namespace}; worker pods read the MinIO credentials from it",
        )


def admit(run: RunState) -> Admitted:
    plugin = plugin_for(run.kind)
    try:
        spec = plugin.parse(run.name, run.body.get("spec") or {})
    except SpecError as exc:
        raise run.fail(R.INVALID_SPEC, str(exc)) from None
    try:
        profile = run.config.profiles.get(spec.resources.profile)
    except KeyError as exc:
        raise run.fail(R.PROFILE_MISSING, f"spec.resources.profile: {exc.args[0]}") from None
    lookup = Lookup(run.cluster, run.namespace)
    problems = plugin.first_pass_problems(spec, Checks(
        profile=profile, plugins=PLUGINS, lookup=lookup,
        secret_exists=lambda n: run.cluster.secret_exists(run.namespace, n)))
    if problems:
        raise run.fail(R.INVALID_SPEC, f"{run.kind} {run.name!r} cannot run: " + "; ".join(problems))
    cycle = find_cycle(run.kind, run.name, run.body.get("spec") or {}, lookup)
    if cycle:
        raise run.fail(R.REF_CYCLE, "reference cycle: " + " -> ".join(cycle))
    if run.old.observed_generation != run.generation:
        require_secret(run)  # on the first pass of a spec, before it waits for anything
    return Admitted(plugin=plugin, spec=spec, profile=profile, lookup=lookup)
