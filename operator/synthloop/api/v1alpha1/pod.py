"""``spec.podTemplate``: what a real cluster needs on the run's pods, typed and small.

Volumes (a shared model cache on a PVC), image pull secrets (NGC), a service account,
annotations and labels (Kueue topology, cost centres), node selector additions and env from
Secrets. ``builders/podtemplate.py`` merges it into every Job of the run; the operator's own
settings (GPUs, security context, the worker config) are not overridable here.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from synthloop.api.v1alpha1.common import Model, cel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: Names the builders use for their own volumes and env; a template may not replace them.
RESERVED_VOLUMES = ("dshm", "scratch")


class KeyRef(Model):
    """One key of a Secret in the run's namespace."""

    name: str = Field(max_length=253, description="Name of the Secret.")
    key: str = Field(max_length=253, description="Key in the Secret.")


class EnvVar(Model):
    """An environment variable of the worker container: a value, or a key of a Secret."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("has(self.value) != has(self.secretKeyRef)", "set exactly one of value or secretKeyRef"),
    ]})

    name: str = Field(max_length=256, pattern=ENV_NAME, description="Variable name.")
    value: str | None = Field(default=None, max_length=4096, description="A literal value.")
    secret_key_ref: KeyRef | None = Field(default=None, description="Read the value from this Secret key.")


class PvcSource(Model):
    """A PersistentVolumeClaim, e.g. a ReadOnlyMany model cache shared by every pod."""

    claim_name: str = Field(max_length=253, description="Name of the PersistentVolumeClaim.")
    read_only: bool = Field(default=False, description="Mount it read-only.")


class Volume(Model):
    """A volume and where the worker container mounts it. Exactly one source."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("(has(self.persistentVolumeClaim) ? 1 : 0) + (has(self.secretName) ? 1 : 0) + "
            "(has(self.configMapName) ? 1 : 0) == 1",
            "set exactly one of persistentVolumeClaim, secretName or configMapName"),
        cel(f"!(self.name in ['{RESERVED_VOLUMES[0]}', '{RESERVED_VOLUMES[1]}'])",
            f"volume names {', '.join(RESERVED_VOLUMES)} are the operator's own", field_path=".name"),
    ]})

    name: str = Field(max_length=63, pattern=DNS_LABEL, description="Volume name (unique in the pod).")
    mount_path: str = Field(max_length=1024, pattern=r"^/.*", description="Absolute path in the container.")
    sub_path: str | None = Field(default=None, max_length=1024, description="Mount only this path of the volume.")
    persistent_volume_claim: PvcSource | None = Field(default=None, description="A PersistentVolumeClaim.")
    secret_name: str | None = Field(default=None, max_length=253, description="A Secret, as files.")
    config_map_name: str | None = Field(default=None, max_length=253, description="A ConfigMap, as files.")


class PodTemplate(Model):
    """Additions to every pod of the run (merged by the operator; its own settings win)."""

    volumes: list[Volume] = Field(default_factory=list, max_length=16, description="Volumes and their mounts.")
    image_pull_secrets: list[str] = Field(
        default_factory=list, max_length=8, description="Secrets for pulling the worker image, e.g. an NGC key."
    )
    service_account_name: str | None = Field(
        default=None, max_length=253, description="ServiceAccount of the pods (default: the namespace's default)."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Annotations of the pods (e.g. Kueue topology)."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Labels of the pods (the operator's own labels win)."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, max_length=16, description="Node labels the pods need besides the profile's."
    )
    env: list[EnvVar] = Field(default_factory=list, max_length=64, description="Environment of the worker container.")


class PodSettings(Model):
    """``spec.podTemplate`` of every kind."""

    pod_template: PodTemplate | None = Field(
        default=None,
        description="Additions to the run's pods: volumes, image pull secrets, service account, "
        "annotations, labels, node selector, env from Secrets.",
    )
