"""Merge a run's ``spec.podTemplate`` into its Jobs (pure: dict in, dict out).

The operator's own settings win every conflict: its labels and annotations, its env (the worker
config, the store credentials), its volumes (``dshm``, ``scratch``). What the template adds is
what a real cluster needs and the operator cannot know: a model-cache PVC, an NGC pull secret,
a service account, Kueue topology annotations, extra node labels, env from Secrets.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from synthloop.api.v1alpha1.pod import EnvVar, PodTemplate


def pod_template_of(template: PodTemplate | None, *, env: Sequence[EnvVar] = ()) -> PodTemplate | None:
    """A spec's ``podTemplate`` plus ``env``, what its kind needs on every pod (its plugin's
    ``pod_env``, e.g. an OpenAI-compatible endpoint's key); the template's own entry of a name wins."""
    extra = [e for e in env if template is None or all(t.name != e.name for t in template.env)]
    if not extra:
        return template
    template = template or PodTemplate()
    return template.model_copy(update={"env": [*template.env, *extra]})


def _env(var: EnvVar) -> dict[str, Any]:
    if var.secret_key_ref is not None:
        ref = var.secret_key_ref
        return {"name": var.name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
    return {"name": var.name, "value": var.value or ""}


def _volume(vol: Any) -> dict[str, Any]:
    if vol.persistent_volume_claim is not None:
        pvc = vol.persistent_volume_claim
        return {"name": vol.name, "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": pvc.read_only}}
    if vol.secret_name is not None:
        return {"name": vol.name, "secret": {"secretName": vol.secret_name}}
    return {"name": vol.name, "configMap": {"name": vol.config_map_name}}


def apply_pod_template(job: dict[str, Any], template: PodTemplate | None) -> dict[str, Any]:
    """``job`` with ``template`` merged into its pod template (``job`` itself is not changed)."""
    if template is None:
        return job
    job = copy.deepcopy(job)
    pod = job["spec"]["template"]
    meta, spec = pod.setdefault("metadata", {}), pod["spec"]
    if template.labels:
        meta["labels"] = {**template.labels, **(meta.get("labels") or {})}
    if template.annotations:
        meta["annotations"] = {**template.annotations, **(meta.get("annotations") or {})}
    if template.node_selector:
        spec["nodeSelector"] = {**template.node_selector, **(spec.get("nodeSelector") or {})}
    if template.service_account_name:
        spec["serviceAccountName"] = template.service_account_name
    if template.image_pull_secrets:
        have = [s["name"] for s in spec.get("imagePullSecrets") or []]
        spec["imagePullSecrets"] = [{"name": n} for n in dict.fromkeys([*have, *template.image_pull_secrets])]
    taken = {v["name"] for v in spec.get("volumes") or []}
    for vol in template.volumes:
        if vol.name in taken:
            continue
        spec.setdefault("volumes", []).append(_volume(vol))
        for container in spec["containers"]:
            mount: dict[str, Any] = {"name": vol.name, "mountPath": vol.mount_path}
            if vol.sub_path:
                mount["subPath"] = vol.sub_path
            if vol.persistent_volume_claim is not None and vol.persistent_volume_claim.read_only:
                mount["readOnly"] = True
            container.setdefault("volumeMounts", []).append(mount)
    for container in spec["containers"]:
        names = {e["name"] for e in container.get("env") or []}
        container.setdefault("env", []).extend(_env(v) for v in template.env if v.name not in names)
    return job
