"""The operator's first-pass checks: what the schema cannot judge, before any input is waited on.

The CRD (OpenAPI + CEL) and the pydantic models refuse what one object can show wrong on its
own. This pass adds what needs the operator's knowledge: the hardware profile (GPU memory,
GPUs per node), the shape of a producer's model, Secrets named in the spec. Checks that hold
only on real GPUs (DeepSpeed's batch arithmetic, memory) run when the profile gives
``gpuMemoryGib``: a profile for CPU or simulated nodes leaves it out. Every problem names
its field and what was expected; the run is Failed before it waits on inputs or creates a Job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from synthloop import capacity
from synthloop.api.v1alpha1.pretrain import Architecture, PretrainJobSpec
from synthloop.api.v1alpha1.synth import SynthRoundSpec
from synthloop.builders.profiles import HardwareProfile
from synthloop.models.presets import ModelDims, get_preset


class Lookup(Protocol):
    def get(self, kind: str, name: str) -> dict[str, Any] | None: ...


def dims_of(arch: Architecture) -> ModelDims:
    """The decoder shape an ``Architecture`` names (a preset with overrides, or all fields)."""
    base = get_preset(arch.preset) if arch.preset else None
    given = {k: v for k, v in {
        "num_layers": arch.layers, "hidden_size": arch.hidden, "num_attention_heads": arch.heads,
        "num_kv_heads": arch.kv_heads, "ffn_hidden_size": arch.ffn_hidden,
        "seq_length": arch.seq_length, "vocab_size": arch.vocab}.items() if v is not None}
    if base is not None:
        return base.with_(**given)
    given.setdefault("ffn_hidden_size", 4 * int(given["hidden_size"]))
    return ModelDims(**given)


def _pretrain(spec: PretrainJobSpec, profile: HardwareProfile) -> list[str]:
    problems: list[str] = []
    try:
        dims = dims_of(spec.model)
    except ValueError as exc:
        return [f"spec.model: {exc}"]
    par, res = spec.parallelism, spec.resources
    gpus = res.gpus_per_node
    world = res.nodes * max(gpus, 1)
    split = par.tensor * par.pipeline
    if gpus and par.tensor > gpus:
        problems.append(f"spec.parallelism.tensor: {par.tensor} exceeds resources.gpusPerNode {gpus} "
                        "(tensor parallelism stays within a node)")
    if world % split:
        problems.append(f"spec.parallelism: tensor {par.tensor} x pipeline {par.pipeline} does not divide "
                        f"the {world} GPUs (nodes {res.nodes} x gpusPerNode {gpus})")
        return problems
    data = world // split
    if par.data is not None and par.data != data:
        problems.append(f"spec.parallelism.data: {par.data}, but {world} GPUs / tensor {par.tensor} "
                        f"/ pipeline {par.pipeline} = {data}")
    if gpus and profile.gpu_memory_gib:  # real GPUs: DeepSpeed's batch arithmetic and memory apply
        sizes = [r.global_batch_size for r in spec.batch_ramp] or [spec.global_batch_size]
        for i, size in enumerate(sizes):
            if size % (par.micro_batch_size * data):
                where = f"spec.batchRamp[{i}].globalBatchSize" if spec.batch_ramp else "spec.globalBatchSize"
                problems.append(f"{where}: {size} is not a multiple of microBatchSize {par.micro_batch_size} "
                                f"x data parallel {data}")
    if gpus and profile.gpu_memory_gib:
        problem = capacity.training_problem(
            dims, tensor=par.tensor, data=data, zero_stage=par.zero_stage, micro_batch=par.micro_batch_size,
            activation_checkpointing=par.activation_checkpointing, gpu_memory_gib=profile.gpu_memory_gib)
        if problem:
            problems.append(f"spec.parallelism: {problem}")
    return problems


def _producer_params(lookup: Lookup | None, kind: str, name: str) -> float | None:
    """Parameter count (billions) of a PretrainJob's model, from its spec; None when unknown."""
    if lookup is None or kind != "PretrainJob":
        return None
    body = lookup.get(kind, name)
    arch = ((body or {}).get("spec") or {}).get("model")
    if not isinstance(arch, dict):
        return None
    try:
        return dims_of(Architecture.model_validate(arch)).total_params() / 1e9
    except (ValidationError, ValueError):
        return None


def _synth(spec: SynthRoundSpec, profile: HardwareProfile, lookup: Lookup | None,
           secret_exists: Callable[[str], bool] | None) -> list[str]:
    problems: list[str] = []
    gen, gpus = spec.generator, spec.resources.gpus_per_node
    if gen.backend == "vllm" and gen.tensor_parallel > gpus:
        problems.append(f"spec.generator.tensorParallel: {gen.tensor_parallel} exceeds resources.gpusPerNode "
                        f"{gpus} (vLLM needs one GPU per tensor-parallel rank)")
    if gen.backend == "openai" and gen.api_key_secret is not None and secret_exists is not None \
            and not secret_exists(gen.api_key_secret.name):
        problems.append(f"spec.generator.apiKeySecret.name: Secret {gen.api_key_secret.name} does not exist "
                        "in this namespace")
    size = gen.parameters_billions
    if size is None and gen.model is not None and gen.model.from_ref is not None:
        size = _producer_params(lookup, gen.model.from_ref.kind, gen.model.from_ref.name)
    if gen.backend == "vllm" and size and profile.gpu_memory_gib and gpus:
        problem = capacity.generator_problem(size, tensor_parallel=gen.tensor_parallel,
                                             quantization=gen.quantization,
                                             gpu_memory_gib=profile.gpu_memory_gib, gpus_per_node=gpus)
        if problem:
            problems.append(f"spec.generator: {problem}")
    return problems


def first_pass_problems(kind: str, spec: BaseModel, profile: HardwareProfile, *,
                        lookup: Lookup | None = None,
                        secret_exists: Callable[[str], bool] | None = None) -> list[str]:
    """Everything wrong with a parsed spec that the schema could not see; empty when it may run."""
    if isinstance(spec, PretrainJobSpec):
        return _pretrain(spec, profile)
    if isinstance(spec, SynthRoundSpec):
        return _synth(spec, profile, lookup, secret_exists)
    return []
