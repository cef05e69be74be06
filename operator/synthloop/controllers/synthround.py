"""kopf handlers for SynthRound (the pass itself is kind-agnostic: see reconcile.py and plan.py)."""

from synthloop.controllers.handlers import register_kind

register_kind("SynthRound")
