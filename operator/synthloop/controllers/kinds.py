"""The kind registry: one typed plugin per kind, keyed by kind (the only place that knows the four)."""

from __future__ import annotations

from typing import Any

from synthloop.controllers.align import PLUGIN as ALIGN
from synthloop.controllers.plugin import KindPlugin
from synthloop.controllers.pretrain import PLUGIN as PRETRAIN
from synthloop.controllers.reward import PLUGIN as REWARD
from synthloop.controllers.synthround import PLUGIN as SYNTH

PLUGINS: dict[str, KindPlugin[Any]] = {p.kind: p for p in (PRETRAIN, SYNTH, REWARD, ALIGN)}


def plugin_for(kind: str) -> KindPlugin[Any]:
    try:
        return PLUGINS[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(PLUGINS)}") from None
