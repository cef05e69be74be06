"""Input checks and artifact I/O shared by ``shard`` and ``merge``.

Inputs are checked before any model loads so a typo in a URI fails in seconds with a message
that names the input, not after minutes with a stack trace from deep inside a download.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from synthloop.api.worker import SynthParams, WorkerConfig
from synthloop.artifacts.manifest import ArtifactRef
from synthloop.artifacts.store import ArtifactNotFound, ArtifactStore, sha256_file
from synthloop.artifacts.uris import URIError, join, parse_uri


class SynthInputError(ValueError):
    """A spec field or input that cannot work; the message names it and what was expected."""


def load_params(config: WorkerConfig) -> SynthParams:
    try:
        return SynthParams.model_validate(config.params)
    except ValidationError as exc:
        problems = "; ".join(
            f"params.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise SynthInputError(f"invalid SynthRound parameters: {problems}") from exc


def shard_count(config: WorkerConfig, params: SynthParams) -> int:
    n = config.num_shards if config.num_shards > 1 else params.shards
    if not 0 <= config.shard_index < n:
        raise SynthInputError(f"shard_index {config.shard_index} is out of range for {n} shard(s)")
    return n


def shard_prefix(output: str, index: int) -> str:
    return join(output, "shards", f"{index:05d}")


def check_input(store: ArtifactStore, role: str, uri: str) -> None:
    """Fail fast when an input URI is malformed, its bucket is missing, or nothing is there."""
    if "://" not in uri:
        if not Path(uri).exists():
            raise SynthInputError(f"input {role}: local path {uri!r} does not exist")
        return
    try:
        loc = parse_uri(uri)
    except URIError as exc:
        raise SynthInputError(f"input {role}: {exc}") from exc
    try:
        found = store.exists(uri) or bool(store.list(uri.rstrip("/") + "/"))
    except ArtifactNotFound as exc:
        raise SynthInputError(f"input {role}: bucket {loc.bucket!r} of {uri} does not exist") from exc
    except RuntimeError as exc:  # no S3 endpoint configured
        raise SynthInputError(f"input {role}: {exc}") from exc
    if not found:
        raise SynthInputError(f"input {role}: nothing exists at {uri}")


def read_documents(store: ArtifactStore, uri: str, *, workdir: Path) -> list[str]:
    """``{"text"}`` documents for closed QA (a local path or URI): JSONL, gzipped JSONL such
    as C4's ``*.json.gz`` shards (``text``, ``timestamp``, ``url``), or Parquet."""
    from synthloop.workers.runtime.records import as_jsonl_text

    path = Path(uri) if "://" not in uri else store.get_file(uri, workdir / "documents.data")
    try:
        text = as_jsonl_text(path.read_bytes(), name=uri)
    except ValueError as exc:
        raise SynthInputError(f"input documents: {exc}") from exc
    docs = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise SynthInputError(f"input documents: {uri} line {lineno} is not JSON") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise SynthInputError(f"input documents: {uri} line {lineno}: expected an object with a 'text' string")
        docs.append(row["text"])
    if not docs:
        raise SynthInputError(f"input documents: {uri} has no documents")
    return docs


def model_ref(uri: str, local_dir: Path | None, *, role: str) -> ArtifactRef:
    """The model as a manifest input, pinned by the sha256 of its weights when we have them."""
    weights = (local_dir / "model.safetensors") if local_dir is not None else None
    if weights is not None and weights.is_file():
        return ArtifactRef(uri=join(uri, "model.safetensors") if "://" in uri else uri,
                           sha256=sha256_file(weights), size=weights.stat().st_size, role=role)
    return ArtifactRef(uri=uri, role=role)


def fail(task: str, exc: BaseException) -> int:
    print(f"synthloop-worker {task}: error: {exc}", file=sys.stderr, flush=True)
    return 2


def dump_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")
