"""The SynthRound plugin: a generator in, shard Jobs then a merge, data (SFT and preference JSONL) out."""

from __future__ import annotations

import hashlib
from typing import Any

from synthloop import capacity
from synthloop.api.v1alpha1.common import Output, Source
from synthloop.api.v1alpha1.pod import EnvVar, KeyRef
from synthloop.api.v1alpha1.synth import SynthRoundSpec
from synthloop.artifacts.manifest import Manifest
from synthloop.builders import stages as S
from synthloop.builders.stages import StagePlan
from synthloop.controllers.plugin import Checks, KindPlugin, RunOutputs
from synthloop.controllers.status import progress_from_reports

DATA_ROLES = ("sft", "preference")
OPENAI_KEY_ENV = "OPENAI_API_KEY"  # what workers/synth/backends/openai_backend reads by default


def content_sha256(files: dict[str, tuple[str, str, int]]) -> str:
    """A data set's hash from its files' content hashes alone (role -> (uri, sha256, size)):
    the same bytes hash the same in every run, whatever their URIs."""
    return hashlib.sha256("".join(f"{role}:{sha}\n" for role, (_, sha, _) in sorted(files.items())).encode()).hexdigest()


def data_outputs(manifest: Manifest) -> dict[str, tuple[str, str, int]]:
    """Role -> (uri, sha256, size) of a merged SynthRound's files (by role, else by file name)."""
    out: dict[str, tuple[str, str, int]] = {}
    for ref in manifest.outputs:
        base = ref.uri.rsplit("/", 1)[-1]
        for role in DATA_ROLES:
            if ref.role == role or base == f"{role}.jsonl":
                out.setdefault(role, (ref.uri, ref.sha256, ref.size))
    return out


class SynthRoundPlugin(KindPlugin[SynthRoundSpec]):
    kind = "SynthRound"
    spec_type = SynthRoundSpec

    def pod_env(self, spec: SynthRoundSpec) -> list[EnvVar]:
        """An OpenAI-compatible endpoint's bearer token, from the Secret the generator names."""
        ref = spec.generator.api_key_secret
        if ref is None:
            return []
        return [EnvVar(name=OPENAI_KEY_ENV, secret_key_ref=KeyRef(name=ref.name, key=ref.key))]

    def input_sources(self, spec: SynthRoundSpec) -> list[tuple[str, Source | None]]:
        return [("model", spec.generator.model), ("reward_model", spec.reward_model),
                ("documents", spec.prompts.documents)]

    def stages(self, spec: SynthRoundSpec, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
        return S.synth_stages(spec, prefix=prefix, inputs=inputs)

    def outputs(self, last: StagePlan, final: list[Manifest]) -> RunOutputs:
        """The merged data set (content-hashed) and each of its files; the merge's counts and metrics."""
        merged = final[0]
        files = data_outputs(merged)
        outputs = [Output(name="data", uri=last.output, sha256=content_sha256(files),
                          size=sum(o.size for o in merged.outputs))]
        outputs += [Output(name=role, uri=uri, sha256=sha, size=size) for role, (uri, sha, size) in sorted(files.items())]
        return RunOutputs(outputs=outputs, counts=dict(merged.counts),
                          metrics={k: float(v) for k, v in merged.metrics.items()})

    def initial_progress(self, plan: StagePlan) -> str:
        return f"0/{plan.pods} shards" if plan.task == "synth" else super().initial_progress(plan)

    def progress(self, plan: StagePlan, reports: list[dict[str, Any]], manifests_present: int) -> str:
        if plan.task != "synth":
            return super().progress(plan, reports, manifests_present)
        items = progress_from_reports(reports, unit="items")
        text = f"{manifests_present}/{plan.pods} shards"
        return text + (f", {items.text()}" if items else "")

    def first_pass_problems(self, spec: SynthRoundSpec, checks: Checks) -> list[str]:
        """vLLM's tensor-parallel group on one node, the endpoint's key Secret, the generator's memory."""
        problems: list[str] = []
        gen, gpus, profile = spec.generator, spec.resources.gpus_per_node, checks.profile
        if gen.backend == "vllm" and gen.tensor_parallel > gpus:
            problems.append(f"spec.generator.tensorParallel: {gen.tensor_parallel} exceeds resources.gpusPerNode "
                            f"{gpus} (vLLM needs one GPU per tensor-parallel rank)")
        if gen.backend == "openai" and gen.api_key_secret is not None and checks.secret_exists is not None \
                and not checks.secret_exists(gen.api_key_secret.name):
            problems.append(f"spec.generator.apiKeySecret.name: Secret {gen.api_key_secret.name} does not exist "
                            "in this namespace")
        if gen.backend != "vllm" or not profile.gpu_memory_gib or not gpus:
            return problems
        size = gen.parameters_billions
        if size is None:  # from the producer's spec: a fromRef, or the object that promotes the name
            dims = checks.producer_dims(gen.model)
            size = dims.total_params() / 1e9 if dims is not None else None
        if size:
            problem = capacity.generator_problem(size, tensor_parallel=gen.tensor_parallel,
                                                 quantization=gen.quantization,
                                                 gpu_memory_gib=profile.gpu_memory_gib, gpus_per_node=gpus)
            if problem:
                problems.append(f"spec.generator: {problem}")
        return problems


PLUGIN = SynthRoundPlugin()
