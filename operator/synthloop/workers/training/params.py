"""The base of every training/eval worker's params model (pydantic only: no torch on import).

The operator copies fields from the CR spec, so names are accepted in camelCase and snake_case.
Unknown fields are errors (a typo must not silently do nothing); the CR-level fields a worker
does not use (resources, evaluation, promotion, the input references the operator already
resolved into ``config.inputs``) are dropped first, so the operator may pass a whole spec.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel

#: CR spec fields that are not worker parameters.
SPEC_ONLY_FIELDS = frozenset({
    "resources", "backoffLimit", "backoff_limit", "keepArtifacts", "keep_artifacts", "promotion",
    "baseModel", "base_model", "data", "rewardModel", "reward_model", "parent", "preferenceData",
    "preference_data",
})


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class WorkerParams(CamelModel):
    """Top-level params: drops the CR-only fields listed in ``SPEC_ONLY_FIELDS``."""

    dropped_fields: ClassVar[frozenset[str]] = SPEC_ONLY_FIELDS

    @model_validator(mode="before")
    @classmethod
    def _drop_spec_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in cls.dropped_fields}
        return data
