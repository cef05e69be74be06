"""Parse a CR dict into its model, with errors that name the field as kubectl would.

Used by the operator (a spec that got past admission but not pydantic ends in ``Failed`` with
this message) and by tests that check every invalid example is rejected for the right reason.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from synthloop.api.v1alpha1 import API_VERSION, RESOURCES


class SpecError(ValueError):
    """A CR that does not match its schema; ``str()`` lists each bad field and what was expected."""

    def __init__(self, kind: str, name: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{kind} {name!r} is invalid: " + "; ".join(problems))


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("spec", "stages", 0, "type")`` -> ``spec.stages[0].type``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{field_path(loc)}: {msg}")
    return problems


def parse_resource(doc: dict[str, Any]) -> BaseModel:
    """Validate a whole CR (apiVersion, kind, metadata, spec) and return its model."""
    kind = str(doc.get("kind", ""))
    name = str((doc.get("metadata") or {}).get("name", ""))
    if doc.get("apiVersion") != API_VERSION:
        raise SpecError(kind, name, [f"apiVersion: expected {API_VERSION}, got {doc.get('apiVersion')!r}"])
    model = RESOURCES.get(kind)
    if model is None:
        raise SpecError(kind, name, [f"kind: expected one of {', '.join(RESOURCES)}, got {kind!r}"])
    body = {k: v for k, v in doc.items() if k != "status"}
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise SpecError(kind, name, describe(exc)) from None


def parse_spec(kind: str, name: str, spec: dict[str, Any]) -> Any:
    """Validate just a spec (what a kopf handler receives)."""
    model = RESOURCES[kind]
    spec_model = model.model_fields["spec"].annotation
    assert isinstance(spec_model, type) and issubclass(spec_model, BaseModel)
    try:
        return spec_model.model_validate(spec)
    except ValidationError as exc:
        raise SpecError(kind, name, [f"spec.{p}" for p in describe(exc)]) from None
