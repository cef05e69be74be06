"""The PretrainJob plugin: a tokenizer and a blend in, one (multi-node) pretraining Job, a model out."""

from __future__ import annotations

from synthloop import capacity
from synthloop.api.v1alpha1.common import Evaluation, Promotion, Source
from synthloop.api.v1alpha1.pretrain import PretrainJobSpec
from synthloop.api.v1alpha1.sharding import effective_zero_stage
from synthloop.builders import stages as S
from synthloop.builders.stages import StagePlan
from synthloop.controllers.plugin import Checks, KindPlugin, evaluation_of
from synthloop.models.presets import ModelDims


class PretrainPlugin(KindPlugin[PretrainJobSpec]):
    kind = "PretrainJob"
    spec_type = PretrainJobSpec

    def input_sources(self, spec: PretrainJobSpec) -> list[tuple[str, Source | None]]:
        return [("tokenizer", spec.tokenizer.source), ("data", spec.data)]

    def evaluation(self, spec: PretrainJobSpec) -> Evaluation | None:
        return evaluation_of(spec.evaluation)

    def promotion(self, spec: PretrainJobSpec) -> Promotion | None:
        return spec.promotion

    def stages(self, spec: PretrainJobSpec, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
        return S.pretrain_stages(spec, prefix=prefix, inputs=inputs)

    def model_dims(self, spec: PretrainJobSpec, checks: Checks, depth: int = 0) -> ModelDims | None:
        try:
            return capacity.dims_of(spec.model)
        except ValueError:
            return None

    def first_pass_problems(self, spec: PretrainJobSpec, checks: Checks) -> list[str]:
        """Parallelism that divides the GPUs, DeepSpeed's batch arithmetic, memory per GPU."""
        problems: list[str] = []
        try:
            dims = capacity.dims_of(spec.model)
        except ValueError as exc:
            return [f"spec.model: {exc}"]
        par, res, profile = spec.parallelism, spec.resources, checks.profile
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
            problem = capacity.training_problem(
                dims, tensor=par.tensor, data=data, zero_stage=effective_zero_stage(par, spec), micro_batch=par.micro_batch_size,
                activation_checkpointing=par.activation_checkpointing, gpu_memory_gib=profile.gpu_memory_gib)
            if problem:
                problems.append(f"spec.parallelism: {problem}")
        return problems


PLUGIN = PretrainPlugin()
