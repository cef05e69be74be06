"""The AlignJob plugin: a base model and a SynthRound's data in, one Job per stage (sft, dpo, rpo), a model out."""

from __future__ import annotations

from synthloop import capacity
from synthloop.api.v1alpha1.align import AlignJobSpec
from synthloop.api.v1alpha1.common import Evaluation, Promotion, Source
from synthloop.api.v1alpha1.sharding import effective_zero_stage
from synthloop.builders import stages as S
from synthloop.builders.stages import StagePlan
from synthloop.controllers.plugin import Checks, KindPlugin, Lookup, evaluation_of
from synthloop.models.presets import ModelDims

PREFERENCE_STAGES = frozenset({"dpo", "rpo"})


class AlignPlugin(KindPlugin[AlignJobSpec]):
    kind = "AlignJob"
    spec_type = AlignJobSpec

    def input_sources(self, spec: AlignJobSpec) -> list[tuple[str, Source | None]]:
        return [("model", spec.base_model), ("data", spec.data), ("reward_model", spec.reward_model)]

    def parent_source(self, spec: AlignJobSpec, lookup: Lookup) -> Source | None:
        """``spec.parent``, else the generator of the data's SynthRound (the round's teacher)."""
        if spec.parent is not None:
            return spec.parent
        ref = spec.data.from_ref
        if ref is not None and ref.kind == "SynthRound":
            body = lookup.get(ref.kind, ref.name)
            model = (((body or {}).get("spec") or {}).get("generator") or {}).get("model")
            if isinstance(model, dict):
                return Source.model_validate(model)
        return None

    def evaluation(self, spec: AlignJobSpec) -> Evaluation | None:
        return evaluation_of(spec.evaluation)

    def promotion(self, spec: AlignJobSpec) -> Promotion | None:
        return spec.promotion

    def stages(self, spec: AlignJobSpec, *, prefix: str, inputs: dict[str, str]) -> list[StagePlan]:
        return S.align_stages(spec, prefix=prefix, inputs=inputs)

    def model_dims(self, spec: AlignJobSpec, checks: Checks, depth: int = 0) -> ModelDims | None:
        return checks.producer_dims(spec.base_model, depth)

    def first_pass_problems(self, spec: AlignJobSpec, checks: Checks) -> list[str]:
        """Memory per GPU of the most demanding stage (a preference stage: chosen and rejected in one
        forward), ZeRO-sharded over nodes x GPUs; and a base reference copy where one is loaded."""
        gpus, gib = spec.resources.gpus_per_node, checks.profile.gpu_memory_gib
        if not gpus or not gib:
            return []
        dims = checks.producer_dims(spec.base_model)
        if dims is None:
            return []
        pref = [i for i, s in enumerate(spec.stages) if s.type in PREFERENCE_STAGES]
        par = spec.parallelism
        run = capacity.FinetuneRun(
            dims=dims, seq_length=spec.max_length or dims.seq_length, batch=spec.micro_batch_size,
            batch_field="spec.microBatchSize", sequences_per_unit=2 if pref else 1,
            data=spec.resources.nodes * gpus, zero_stage=effective_zero_stage(par, spec), deepspeed=spec.deepspeed,
            activation_checkpointing=par.activation_checkpointing,
            what=f" in stage {spec.stages[pref[0]].type} (spec.stages[{pref[0]}]: chosen and rejected together)"
            if pref else " in sft")
        problems = [capacity.finetune_problem(run, gpu_memory_gib=gib)]
        # stage 0's reference: base is its own start (the policy scores it); later stages load a copy
        problems += [capacity.reference_problem(dims, gpu_memory_gib=gib, field=f"spec.stages[{i}].reference")
                     for i in pref if i > 0 and spec.stages[i].reference == "base"]
        return [str(p) for p in problems if p is not None]


PLUGIN = AlignPlugin()
