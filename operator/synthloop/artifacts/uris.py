"""Parsing and joining artifact URIs (``s3://bucket/key`` and ``file:///dir/key``)."""

from __future__ import annotations

from dataclasses import dataclass

SCHEMES = ("s3", "file")


class URIError(ValueError):
    """An artifact URI that is not ``s3://bucket/key`` or ``file:///path``."""


@dataclass(frozen=True)
class ArtifactURI:
    scheme: str
    bucket: str  # for file:// the root "bucket" is the empty string
    key: str

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.key}"
        return f"s3://{self.bucket}/{self.key}"


def parse_uri(uri: str) -> ArtifactURI:
    """Split a URI; raise :class:`URIError` naming what was expected."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in SCHEMES:
        raise URIError(f"artifact URI {uri!r}: expected s3://<bucket>/<key> or file:///<path>")
    if scheme == "file":
        if not rest.startswith("/"):
            raise URIError(f"artifact URI {uri!r}: a file:// URI needs an absolute path")
        return ArtifactURI("file", "", rest)
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise URIError(f"artifact URI {uri!r}: missing bucket name after s3://")
    return ArtifactURI("s3", bucket, key)


def join(prefix: str, *parts: str) -> str:
    """Join a prefix URI and relative parts with exactly one slash between them."""
    out = prefix.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def run_prefix(*, bucket: str, namespace: str, kind: str, name: str, uid: str) -> str:
    """The prefix every run writes under: ``s3://<bucket>/<namespace>/<kind>/<name>/<uid>/``."""
    return f"s3://{bucket}/{namespace}/{kind.lower()}/{name}/{uid}/"


def promotion_uri(*, bucket: str, namespace: str, name: str) -> str:
    """Where namespace ``namespace`` keeps the promotion pointer of model ``name``.

    Under the namespace's own prefix: a name promoted in one namespace is invisible to every
    other unless its producer shares it (``PromotionPointer.shared_with``).
    """
    if not namespace:
        raise URIError(f"promotion {name!r}: a promotion pointer needs a namespace")
    return f"s3://{bucket}/{namespace}/promoted/{name}.json"
