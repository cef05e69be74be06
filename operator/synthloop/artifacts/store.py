"""One small interface over MinIO/S3 (and a local directory, for unit tests).

Workers and the operator only ever see URIs, so the same code reads a model from
``s3://synthloop/...`` in a pod and from ``file:///tmp/...`` in a unit test.

Every object is written with its sha256 in its metadata (``x-amz-meta-sha256``), so a reader
can check what it points at with a HEAD request (:meth:`ArtifactStore.head`), without the
bytes; a reader that downloads the bytes anyway checks them against what it was told to
expect (:func:`expect_checksums`). Every call is retried with backoff on transient errors
(:class:`RetryPolicy`); a missing object is an answer, not an error, and is never retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from synthloop.artifacts.uris import ArtifactURI, join, parse_uri

CHUNK = 1 << 20
SHA256_META = "sha256"  # user metadata key; S3 serves it as x-amz-meta-sha256
WEIGHTS_NAME = "model.safetensors"  # the file of a model directory whose sha256 pins the model
log = logging.getLogger("synthloop.artifacts")
T = TypeVar("T")


@dataclass(frozen=True)
class ObjectInfo:
    """An object that was written: where, its sha256 and its size in bytes."""

    uri: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Head:
    """What a HEAD request tells about an object: size, the sha256 recorded at upload, an ETag."""

    size: int
    sha256: str = ""  # "" when the object was written without one
    etag: str = ""


class ArtifactNotFound(FileNotFoundError):
    """The object (or bucket) a URI names does not exist."""


class ArtifactCorrupt(ValueError):
    """Downloaded bytes whose sha256 is not the one their producer recorded."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter for transient store errors.

    ``attempts`` bounds the tries; ``deadline_seconds``, when set, also keeps retrying (past
    ``attempts``) until that long after the first try, so an outage of a known length is
    absorbed whatever the backoff's jitter did.
    """

    attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 8.0
    deadline_seconds: float | None = None

    def delay(self, attempt: int) -> float:
        return float(min(self.max_seconds, self.base_seconds * (2 ** min(attempt, 30)))
                     * (0.5 + random.random() / 2))

    def again(self, attempt: int, elapsed: float) -> bool:
        """Whether a transient failure of try ``attempt`` (0-based), ``elapsed`` seconds after
        the first try, gets another try."""
        if attempt + 1 < self.attempts:
            return True
        return self.deadline_seconds is not None and elapsed < self.deadline_seconds


NO_RETRY = RetryPolicy(attempts=1)
#: What worker processes use: the store down for a restart (tens of seconds) is waited out, with
#: at most 4 s between tries; two minutes of failures is an outage, and the pod fails.
WORKER_RETRY = RetryPolicy(attempts=5, base_seconds=0.5, max_seconds=4.0, deadline_seconds=120.0)
_default_retry = RetryPolicy()


def set_default_retry(policy: RetryPolicy) -> None:
    """The policy of every store this process opens without its own (a worker sets
    :data:`WORKER_RETRY` at start; the operator keeps the short default: a reconcile pass must
    not block for minutes, its next pass retries anyway)."""
    global _default_retry
    _default_retry = policy
_TRANSIENT_S3 = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "XMinioServerNotInitialized",
                 "XMinioStorageFull", "OperationTimedOut"}


def transient(exc: BaseException) -> bool:
    """Worth another try: connection trouble, timeouts, 5xx and throttling; never a missing
    object, a denied request or a checksum mismatch."""
    if isinstance(exc, (ArtifactNotFound, ArtifactCorrupt, PermissionError)):
        return False
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code in _TRANSIENT_S3
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        return status >= 500 or status == 429
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        from urllib3.exceptions import HTTPError as Urllib3Error
    except ImportError:  # pragma: no cover - urllib3 comes with minio
        return False
    return isinstance(exc, Urllib3Error)


# The expected sha256 of the inputs this process reads, by object URI or model-directory URI
# (a directory's is its weights file's). Set once by the worker entry point from its config.
_EXPECTED: dict[str, str] = {}


def expect_checksums(expected: Mapping[str, str]) -> None:
    """Make every later download of these URIs (in this process) verify its sha256."""
    _EXPECTED.update({k: v for k, v in expected.items() if v})


def _expected_for(uri: str) -> str:
    if uri in _EXPECTED:
        return _EXPECTED[uri]
    if uri.endswith("/" + WEIGHTS_NAME):
        return _EXPECTED.get(uri[: -len(WEIGHTS_NAME)], "")
    return ""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Backend(Protocol):
    def put(self, loc: ArtifactURI, path: Path, *, sha256: str) -> None: ...
    def get(self, loc: ArtifactURI, path: Path) -> None: ...
    def exists(self, loc: ArtifactURI) -> bool: ...
    def keys(self, loc: ArtifactURI) -> Iterator[str]: ...
    def delete(self, loc: ArtifactURI) -> None: ...
    def head(self, loc: ArtifactURI) -> Head: ...


META_SUFFIX = ".synthloop-sha256"  # the file backend keeps an object's recorded sha256 beside it


class _FileBackend:
    """Objects are files under an absolute path; used by unit tests and for local scratch."""

    def put(self, loc: ArtifactURI, path: Path, *, sha256: str) -> None:
        dest = Path(loc.key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        shutil.copyfile(path, tmp)
        dest.with_name(dest.name + META_SUFFIX).write_text(sha256)
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
            if p.is_file() and str(p).startswith(loc.key) and not p.name.endswith((".partial", META_SUFFIX)):
                yield f"file://{p}"

    def delete(self, loc: ArtifactURI) -> None:
        Path(loc.key).unlink(missing_ok=True)
        Path(loc.key + META_SUFFIX).unlink(missing_ok=True)

    def head(self, loc: ArtifactURI) -> Head:
        p = Path(loc.key)
        if not p.is_file():
            raise ArtifactNotFound(f"{loc}: no such object")
        meta = Path(loc.key + META_SUFFIX)
        st = p.stat()
        return Head(size=st.st_size, sha256=meta.read_text().strip() if meta.is_file() else "",
                    etag=f"{st.st_mtime_ns:x}-{st.st_size:x}")


class _S3Backend:
    """MinIO/S3 through the ``minio`` client (imported lazily: unit tests never need it)."""

    def __init__(self, *, endpoint: str, access_key: str, secret_key: str, secure: bool) -> None:
        from minio import Minio

        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure)

    def _missing(self, exc: Exception) -> bool:
        code = getattr(exc, "code", "")
        return code in {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound"}

    def put(self, loc: ArtifactURI, path: Path, *, sha256: str) -> None:
        from minio.error import S3Error

        try:
            self.client.fput_object(loc.bucket, loc.key, str(path), metadata={SHA256_META: sha256})
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
            self.head(loc)
        except ArtifactNotFound:
            return False
        return True

    def head(self, loc: ArtifactURI) -> Head:
        from minio.error import S3Error

        try:
            obj = self.client.stat_object(loc.bucket, loc.key)
        except S3Error as exc:
            if self._missing(exc):
                raise ArtifactNotFound(f"{loc}: no such object ({exc.code})") from exc
            raise
        meta = obj.metadata or {}
        sha = meta.get("x-amz-meta-" + SHA256_META) or meta.get("X-Amz-Meta-Sha256") or ""
        return Head(size=int(obj.size or 0), sha256=str(sha), etag=str(obj.etag or ""))

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
    """Reads and writes artifacts by URI, computing sha256 and size of everything it writes.

    ``on_error(operation, exc)`` sees every failed backend call (each retry too): the
    operator counts them as a metric. ``downloaded`` counts the bytes this store fetched.
    """

    def __init__(self, *, s3: _S3Backend | None = None, retry: RetryPolicy | None = None,
                 on_error: Callable[[str, BaseException], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._s3 = s3
        self._file = _FileBackend()
        self.retry = retry or _default_retry
        self.on_error = on_error
        self._sleep, self._clock = sleep, clock
        self.downloaded = 0

    def _backend(self, loc: ArtifactURI) -> _Backend:
        if loc.scheme == "file":
            return self._file
        if self._s3 is None:
            raise RuntimeError(
                f"{loc}: no S3 endpoint configured; set SYNTHLOOP_S3_ENDPOINT and the AWS_* keys"
            )
        return self._s3

    def _call(self, operation: str, loc: ArtifactURI, fn: Callable[[], T]) -> T:
        """``fn()`` with bounded retries of transient errors; the last error propagates."""
        started = self._clock()
        attempt = 0
        while True:
            try:
                return fn()
            except ArtifactNotFound:
                raise
            except Exception as exc:
                if self.on_error is not None:
                    self.on_error(operation, exc)
                if not transient(exc) or not self.retry.again(attempt, self._clock() - started):
                    raise
                delay = self.retry.delay(attempt)
                log.warning("%s %s failed (%s: %s); retry %d in %.1fs (%.0fs since the first try)",
                            operation, loc, type(exc).__name__, exc, attempt + 1, delay,
                            self._clock() - started)
                self._sleep(delay)
                attempt += 1

    # -- writing ---------------------------------------------------------------------------
    def put_file(self, uri: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Upload with the sha256 in the object's metadata, so readers can check it by HEAD."""
        loc, src = parse_uri(uri), Path(path)
        digest, size = sha256_file(src), src.stat().st_size
        backend = self._backend(loc)
        self._call("put", loc, lambda: backend.put(loc, src, sha256=digest))
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
        """Download; when this process was told the object's sha256, the bytes must match it."""
        loc, dest = parse_uri(uri), Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        backend = self._backend(loc)
        self._call("get", loc, lambda: backend.get(loc, dest))
        self.downloaded += dest.stat().st_size
        want = _expected_for(str(loc))
        if want:
            got = sha256_file(dest)
            if got != want:
                dest.unlink(missing_ok=True)
                raise ArtifactCorrupt(
                    f"input {loc}: sha256 {got[:16]}... does not match {want[:16]}..., the sha256 its "
                    "producer recorded; the object was modified or corrupted after it was written"
                )
        return dest

    def get_bytes(self, uri: str) -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return self.get_file(uri, Path(tmp) / "obj").read_bytes()

    def get_json(self, uri: str) -> Any:
        return json.loads(self.get_bytes(uri))

    def head(self, uri: str) -> Head:
        """Size, recorded sha256 and ETag of an object, without its bytes."""
        loc = parse_uri(uri)
        backend = self._backend(loc)
        return self._call("head", loc, lambda: backend.head(loc))

    def exists(self, uri: str) -> bool:
        try:
            self.head(uri)
        except ArtifactNotFound:
            return False
        return True

    def size(self, uri: str) -> int:
        return self.head(uri).size

    def sha256(self, uri: str) -> str:
        """sha256 of the object's bytes (a download: for checks, not for the operator's passes)."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return sha256_file(self.get_file(uri, Path(tmp) / "obj"))

    def list(self, prefix_uri: str) -> list[str]:
        loc = parse_uri(prefix_uri)
        backend = self._backend(loc)
        return self._call("list", loc, lambda: sorted(backend.keys(loc)))

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
        backend = self._backend(loc)
        self._call("delete", loc, lambda: backend.delete(loc))

    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if missing (used by `synthloop local up` and tests)."""
        if self._s3 is None:
            return
        if not self._s3.client.bucket_exists(bucket):
            self._s3.client.make_bucket(bucket)


def open_store(uri_hint: str | None = None, *, env: dict[str, str] | None = None,
               on_error: Callable[[str, BaseException], None] | None = None,
               retry: RetryPolicy | None = None) -> ArtifactStore:
    """Build a store from the environment (``SYNTHLOOP_S3_ENDPOINT``, ``AWS_*`` keys).

    ``uri_hint`` lets a caller with only ``file://`` URIs work without any S3 settings.
    """
    environ = os.environ if env is None else env
    endpoint = environ.get("SYNTHLOOP_S3_ENDPOINT", "")
    if not endpoint:
        return ArtifactStore(on_error=on_error, retry=retry)
    endpoint = endpoint.removeprefix("http://").removeprefix("https://")
    access = environ.get("AWS_ACCESS_KEY_ID", "")
    secret = environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access or not secret:
        raise RuntimeError(
            "SYNTHLOOP_S3_ENDPOINT is set but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not"
        )
    secure = environ.get("SYNTHLOOP_S3_SECURE", "0") in {"1", "true", "True"}
    return ArtifactStore(
        s3=_S3Backend(endpoint=endpoint, access_key=access, secret_key=secret, secure=secure),
        on_error=on_error, retry=retry,
    )


__all__ = ["WORKER_RETRY", "ArtifactCorrupt", "ArtifactNotFound", "ArtifactStore", "Head", "ObjectInfo", "RetryPolicy",
           "expect_checksums", "open_store", "set_default_retry", "sha256_file"]
