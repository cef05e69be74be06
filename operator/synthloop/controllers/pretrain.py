"""kopf handlers for PretrainJob (the pass itself is kind-agnostic: see reconcile.py and plan.py)."""

from synthloop.controllers.handlers import register_kind

register_kind("PretrainJob")
