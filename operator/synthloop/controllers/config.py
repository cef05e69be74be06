"""Operator settings, read once from the environment (the Deployment's ConfigMap).

Credentials are never settings: workers get them through a secretKeyRef to the Secret named
here, and the operator's own keys come from its env (AWS_*), filled from that Secret too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from synthloop.builders.profiles import BUILTIN, ProfileError, ProfileSet, parse_profiles

#: The images `images/` builds: torch + DeepSpeed for training, vLLM for generation.
TRAINER_IMAGE = "ghcr.io/synthloop/trainer:0.1.0"
SYNTH_IMAGE = "ghcr.io/synthloop/synth:0.1.0"
DEFAULT_KIND_IMAGES = {
    "PretrainJob": TRAINER_IMAGE,
    "RewardTrain": TRAINER_IMAGE,
    "AlignJob": TRAINER_IMAGE,
    "SynthRound": SYNTH_IMAGE,
}
KIND_IMAGE_ENV = {
    "PretrainJob": "SYNTHLOOP_TRAINER_IMAGE",
    "RewardTrain": "SYNTHLOOP_TRAINER_IMAGE",
    "AlignJob": "SYNTHLOOP_TRAINER_IMAGE",
    "SynthRound": "SYNTHLOOP_SYNTH_IMAGE",
}


class ConfigError(ValueError):
    """An operator setting that cannot be used; the message names the env var."""


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    bucket: str = "synthloop"
    s3_endpoint: str = ""
    s3_secure: bool = False
    s3_secret: str = "synthloop-minio"
    profiles: ProfileSet = field(default_factory=lambda: BUILTIN)
    worker_image: str = ""  # SYNTHLOOP_WORKER_IMAGE: one image for every kind, if set
    kind_images: dict[str, str] = field(default_factory=dict)
    image_pull_policy: str = "IfNotPresent"
    operator_namespace: str = "synthloop-system"
    # Seconds between safety-net passes, and the delay of a retry while waiting on inputs.
    resync_seconds: float = 30.0
    wait_seconds: float = 5.0
    # How long a fromRef to a missing object is waited for (objects applied together by Argo CD
    # arrive in any order) before it is a RefNotFound failure.
    ref_grace_seconds: float = 60.0

    def image_for(self, kind: str) -> str:
        return self.kind_images.get(kind) or self.worker_image or DEFAULT_KIND_IMAGES[kind]


def _float(env: Mapping[str, str], name: str, default: float, *, allow_zero: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number of seconds") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}={raw!r}: expected a positive number of seconds")
    return value


def load_config(env: Mapping[str, str] | None = None) -> OperatorConfig:
    """Settings from ``env`` (default ``os.environ``); errors name the variable at fault."""
    environ = os.environ if env is None else env
    namespaces = tuple(n.strip() for n in environ.get("SYNTHLOOP_NAMESPACES", "").split(",") if n.strip())
    profiles = BUILTIN
    path = environ.get("SYNTHLOOP_PROFILES", "").strip()
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"SYNTHLOOP_PROFILES={path}: no such file")
        try:
            profiles = parse_profiles(p.read_text(), source=f"SYNTHLOOP_PROFILES={path}")
        except ProfileError as exc:
            raise ConfigError(str(exc)) from None
    endpoint = environ.get("SYNTHLOOP_S3_ENDPOINT", "").strip()
    endpoint = endpoint.removeprefix("http://").removeprefix("https://")
    kind_images = {kind: environ[var] for kind, var in KIND_IMAGE_ENV.items() if environ.get(var)}
    pull = environ.get("SYNTHLOOP_IMAGE_PULL_POLICY", "IfNotPresent")
    if pull not in {"Always", "IfNotPresent", "Never"}:
        raise ConfigError(f"SYNTHLOOP_IMAGE_PULL_POLICY={pull!r}: expected Always, IfNotPresent or Never")
    return OperatorConfig(
        namespaces=namespaces,
        bucket=environ.get("SYNTHLOOP_BUCKET", "").strip() or "synthloop",
        s3_endpoint=endpoint,
        s3_secure=environ.get("SYNTHLOOP_S3_SECURE", "0") in {"1", "true", "True"},
        s3_secret=environ.get("SYNTHLOOP_S3_SECRET", "").strip() or "synthloop-minio",
        profiles=profiles,
        worker_image=environ.get("SYNTHLOOP_WORKER_IMAGE", "").strip(),
        kind_images=kind_images,
        image_pull_policy=pull,
        operator_namespace=environ.get("SYNTHLOOP_OPERATOR_NAMESPACE", "").strip() or "synthloop-system",
        resync_seconds=_float(environ, "SYNTHLOOP_RESYNC_SECONDS", 30.0),
        wait_seconds=_float(environ, "SYNTHLOOP_WAIT_SECONDS", 5.0),
        ref_grace_seconds=_float(environ, "SYNTHLOOP_REF_GRACE_SECONDS", 60.0, allow_zero=True),
    )
