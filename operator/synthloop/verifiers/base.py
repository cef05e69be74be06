"""The `Instruction` interface: a constraint a prompt asks for and a program can check.

Instructions are frozen dataclasses so they serialise to plain JSON (``to_dict``) and travel
with a prompt through the synth output and the eval task files unchanged.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, ClassVar, Self


class Instruction:
    """Base of every verifiable instruction.

    Subclasses are ``@dataclass(frozen=True)`` with their parameters as fields, set the class
    variables ``id`` (``group:name`` as in IFEval) and ``conflicts`` (ids that cannot be asked
    together with this one), and implement ``sample_kwargs``, ``description`` and ``check``.
    """

    id: ClassVar[str] = ""
    conflicts: ClassVar[frozenset[str]] = frozenset()
    #: Parameters that cannot be sampled and must be given to ``build`` (e.g. the prompt).
    requires: ClassVar[tuple[str, ...]] = ()
    #: Whether ``sample_instructions`` may draw this type for a synthetic prompt.
    sampled: ClassVar[bool] = True

    @classmethod
    def sample_kwargs(cls, rng: random.Random) -> dict[str, Any]:
        """Random parameters for this instruction (used when ``build`` is not given them)."""
        return {}

    @classmethod
    def build(cls, *, rng: random.Random | None = None, **kwargs: Any) -> Self:
        """An instance with ``kwargs``; any parameter not given is sampled from ``rng``."""
        missing = [name for name in cls.requires if name not in kwargs]
        if missing:
            raise ValueError(f"instruction {cls.id!r} needs {', '.join(missing)}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ValueError(
                f"instruction {cls.id!r} got unknown parameter(s) {unknown}; expected {sorted(names)}"
            )
        params = cls.sample_kwargs(rng or random.Random()) if set(names) - set(kwargs) else {}
        params.update(kwargs)
        params = {k: v for k, v in params.items() if k in names}
        for key, value in list(params.items()):
            if isinstance(value, list):
                params[key] = tuple(value)
        return cls(**params)

    def description(self) -> str:
        """The sentence appended to a prompt that asks for this constraint."""
        raise NotImplementedError

    def check(self, response: str) -> bool:
        """Whether ``response`` satisfies the constraint (strict: the raw text).

        IFEval's instructions are judged by the reference checker; the project's own override this.
        """
        from synthloop.verifiers import reference

        return reference.check(self.id, self.kwargs(), response)

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_dict(self) -> dict[str, Any]:
        """``{"id", "kwargs"}``: the JSON form stored next to a prompt."""
        return {"id": self.id, "kwargs": self.kwargs()}
