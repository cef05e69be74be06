"""One small interface over MinIO/S3 (and a local directory, for unit tests).

Workers and the operator only ever see URIs, so the same code reads a model from
``s3://synthloop/...`` in a pod and from ``file:///tmp/...`` in a unit test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from synthloop.artifacts.uris import ArtifactURI, join, parse_uri

CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    """An object that was written: where, its sha256 and its size in bytes."""

    uri: str
    sha256: str
    size: int


class ArtifactNotFound(FileNotFoundError):
    """The object (or bucket) a URI names does not exist."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Backend(Protocol):
    def put(self, loc: ArtifactURI, path: Path) -> None: ...
    def get(self, loc: ArtifactURI, path: Path) -> None: ...
    def exists(self, loc: ArtifactURI) -> bool: ...
    def keys(self, loc: ArtifactURI) -> Iterator[str]: ...
    def delete(self, loc: ArtifactURI) -> None: ...
    def stat(self, loc: ArtifactURI) -> int: ...


class _FileBackend:
    """Objects are files under an absolute path; used by unit tests and for local scratch."""

    def put(self, loc: ArtifactURI, path: Path) -> None:
        dest = Path(loc.key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        shutil.copyfile(path, tmp)
        os.replace(tmp, dest)  # atomic, like an S3 PUT

    def get(self, loc: ArtifactURI, path: Path) -> None:
        src = Path(loc.key)
        if not src.is_file():
            raise ArtifactNotFound(f"{loc}: no such object")
        shutil.copyfile(src, path)

    def exists(self, loc: ArtifactURI) -> bool:
        return Path(loc.key).is_file()

    def keys(self, loc: ArtifactURI) -> Iterator[str]:
        root = Path(loc.key)
        base = root if root.is_dir() else root.parent
        for p in sorted(base.rglob("*")):
            if p.is_file() and str(p).startswith(loc.key) and not p.name.endswith(".partial"):
                yield f"file://{p}"

    def delete(self, loc: ArtifactURI) -> None:
        Path(loc.key).unlink(missing_ok=True)

    def stat(self, loc: ArtifactURI) -> int:
        p = Path(loc.key)
        if not p.is_file():
            raise ArtifactNotFound(f"{loc}: no such object")
        return p.stat().st_size


class _S3Backend:
    """MinIO/S3 through the ``minio`` client (imported lazily: unit tests never need it)."""

    def __init__(self, *, endpoint: str, access_key: str, secret_key: str, secure: bool) -> None:
        from minio import Minio

        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)

    def _missing(self, exc: Exception) -> bool:
        code = getattr(exc, "code", "")
        return code in {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"}

    def put(self, loc: ArtifactURI, path: Path) -> None:
        from minio.error import S3Error

        try:
            self.client.fput_object(loc.bucket, loc.key, str(path))
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                raise ArtifactNotFound(f"{loc}: bucket {loc.bucket!r} does not exist") from exc
            raise

    def get(self, loc: ArtifactURI, path: Path) -> None:
        from minio.error import S3Error

        try:
            self.client.fget_object(loc.bucket, loc.key, str(path))
        except S3Error as exc:
            if self._missing(exc):
                raise ArtifactNotFound(f"{loc}: no such object ({exc.code})") from exc
            raise

    def exists(self, loc: ArtifactURI) -> bool:
        try:
            self.stat(loc)
        except ArtifactNotFound:
            return False
        return True

    def stat(self, loc: ArtifactURI) -> int:
        from minio.error import S3Error

        try:
            return int(self.client.stat_object(loc.bucket, loc.key).size or 0)
        except S3Error as exc:
            if self._missing(exc):
                raise ArtifactNotFound(f"{loc}: no such object ({exc.code})") from exc
            raise

    def keys(self, loc: ArtifactURI) -> Iterator[str]:
        from minio.error import S3Error

        try:
            for obj in self.client.list_objects(loc.bucket, prefix=loc.key, recursive=True):
                if obj.object_name is not None:
                    yield f"s3://{loc.bucket}/{obj.object_name}"
        except S3Error as exc:
            if self._missing(exc):
                raise ArtifactNotFound(f"{loc}: bucket {loc.bucket!r} does not exist") from exc
            raise

    def delete(self, loc: ArtifactURI) -> None:
        self.client.remove_object(loc.bucket, loc.key)


class ArtifactStore:
    """Reads and writes artifacts by URI, computing sha256 and size of everything it writes."""

    def __init__(self, *, s3: _S3Backend | None = None) -> None:
        self._s3 = s3
        self._file = _FileBackend()

    def _backend(self, loc: ArtifactURI) -> _Backend:
        if loc.scheme == "file":
            return self._file
        if self._s3 is None:
            raise RuntimeError(
                f"{loc}: no S3 endpoint configured; set SYNTHLOOP_S3_ENDPOINT and the AWS_* keys"
            )
        return self._s3

    # -- writing ---------------------------------------------------------------------------
    def put_file(self, uri: str, path: str | os.PathLike[str]) -> ObjectInfo:
        loc, src = parse_uri(uri), Path(path)
        digest, size = sha256_file(src), src.stat().st_size
        self._backend(loc).put(loc, src)
        return ObjectInfo(uri=str(loc), sha256=digest, size=size)

    def put_bytes(self, uri: str, data: bytes) -> ObjectInfo:
        import tempfile

        with tempfile.NamedTemporaryFile(delete=False) as fh:
            fh.write(data)
            tmp = Path(fh.name)
        try:
            return self.put_file(uri, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def put_json(self, uri: str, obj: Any) -> ObjectInfo:
        return self.put_bytes(uri, json.dumps(obj, indent=2, sort_keys=True).encode())

    def upload_dir(self, local_dir: str | os.PathLike[str], prefix_uri: str) -> list[ObjectInfo]:
        """Upload every file under ``local_dir``; returns them in sorted order."""
        root = Path(local_dir)
        return [
            self.put_file(join(prefix_uri, p.relative_to(root).as_posix()), p)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        ]

    # -- reading ---------------------------------------------------------------------------
    def get_file(self, uri: str, path: str | os.PathLike[str]) -> Path:
        loc, dest = parse_uri(uri), Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._backend(loc).get(loc, dest)
        return dest

    def get_bytes(self, uri: str) -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return self.get_file(uri, Path(tmp) / "obj").read_bytes()

    def get_json(self, uri: str) -> Any:
        return json.loads(self.get_bytes(uri))

    def exists(self, uri: str) -> bool:
        loc = parse_uri(uri)
        return self._backend(loc).exists(loc)

    def size(self, uri: str) -> int:
        loc = parse_uri(uri)
        return self._backend(loc).stat(loc)

    def sha256(self, uri: str) -> str:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return sha256_file(self.get_file(uri, Path(tmp) / "obj"))

    def list(self, prefix_uri: str) -> list[str]:
        loc = parse_uri(prefix_uri)
        return sorted(self._backend(loc).keys(loc))

    def download_dir(self, prefix_uri: str, local_dir: str | os.PathLike[str]) -> Path:
        """Download every object under a prefix, keeping relative paths."""
        dest = Path(local_dir)
        prefix = str(parse_uri(prefix_uri)).rstrip("/") + "/"
        found = False
        for uri in self.list(prefix):
            found = True
            self.get_file(uri, dest / uri[len(prefix):])
        if not found:
            raise ArtifactNotFound(f"{prefix_uri}: no objects under this prefix")
        return dest

    def delete(self, uri: str) -> None:
        loc = parse_uri(uri)
        self._backend(loc).delete(loc)

    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if missing (used by `synthloop local up` and tests)."""
        if self._s3 is None:
            return
        if not self._s3.client.bucket_exists(bucket):
            self._s3.client.make_bucket(bucket)


def open_store(uri_hint: str | None = None, *, env: dict[str, str] | None = None) -> ArtifactStore:
    """Build a store from the environment (``SYNTHLOOP_S3_ENDPOINT``, ``AWS_*`` keys).

    ``uri_hint`` lets a caller with only ``file://`` URIs work without any S3 settings.
    """
    environ = os.environ if env is None else env
    endpoint = environ.get("SYNTHLOOP_S3_ENDPOINT", "")
    if not endpoint:
        return ArtifactStore()
    endpoint = endpoint.removeprefix("http://").removeprefix("https://")
    access = environ.get("AWS_ACCESS_KEY_ID", "")
    secret = environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access or not secret:
        raise RuntimeError(
            "SYNTHLOOP_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not"
        )
    secure = environ.get("SYNTHLOOP_S3_SECURE", "0") in {"1", "true", "True"}
    return ArtifactStore(
        s3=_S3Backend(endpoint=endpoint, access_key=access, secret_key=secret, secure=secure)
    )


__all__ = ["ArtifactNotFound", "ArtifactStore", "ObjectInfo", "open_store", "sha256_file"]
