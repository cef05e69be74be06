"""Static checks of the Dockerfiles (no Docker here): pinned bases, non-root, right extras.

Each Dockerfile is parsed into instructions (continuation lines joined) so the checks read
the instructions Docker would run, not comments.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# image -> (extras installed, console script it runs)
EXPECTED = {
    "operator": (frozenset(), "synthloop"),
    "trainer": (frozenset({"train", "deepspeed"}), "synthloop-worker"),
    "synth": (frozenset({"train", "vllm"}), "synthloop-worker"),
}


@dataclass(frozen=True)
class Instruction:
    op: str
    args: str


def parse(path: Path) -> list[Instruction]:
    """Dockerfile instructions in order; comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            op, _, args = full.partition(" ")
            out.append(Instruction(op.upper(), args.strip()))
    assert not pending, f"{path}: dangling line continuation"
    return out


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.op == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1]:]


def stage_names(instructions: list[Instruction]) -> set[str]:
    names = set()
    for ins in instructions:
        parts = ins.args.split()
        if ins.op == "FROM" and len(parts) == 3 and parts[1].upper() == "AS":
            names.add(parts[2])
    return names


def commands(shell: str) -> list[list[str]]:
    """The simple commands of a RUN line: shell words split at &&, ||, ; and pipes."""
    lexer = shlex.shlex(shell, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    out: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|"):
            out.append([])
        else:
            out[-1].append(token)
    return [words for words in out if words]


def installed_extras(instructions: list[Instruction]) -> list[frozenset[str]]:
    """Extras of every `pip install` of the repository itself ('.' or a built synthloop wheel)."""
    found = []
    for ins in instructions:
        if ins.op != "RUN":
            continue
        for words in commands(ins.args):
            if "pip" not in " ".join(words[:4]) or "install" not in words:
                continue
            for word in words[words.index("install") + 1:]:
                match = re.fullmatch(r"(?:\.|/wheels/synthloop-\*\.whl)(?:\[([a-z0-9_,-]+)\])?", word)
                if match:
                    found.append(frozenset(filter(None, (match.group(1) or "").split(","))))
    return found


@pytest.mark.parametrize("image", sorted(EXPECTED))
def test_bases_are_pinned_by_tag(image: str) -> None:
    instructions = parse(IMAGES / image / "Dockerfile")
    local_stages = stage_names(instructions)
    for ins in instructions:
        if ins.op != "FROM":
            continue
        ref = next(w for w in ins.args.split() if not w.startswith("--"))
        if ref in local_stages:
            continue
        name, _, tag = ref.rpartition(":") if "@" not in ref else (ref, "", "digest")
        assert name and tag and "/" not in tag, f"{image}: FROM {ref} is not pinned by tag"
        assert tag != "latest" and "latest" not in ref, f"{image}: FROM {ref} floats"


@pytest.mark.parametrize("image", sorted(EXPECTED))
def test_final_stage_runs_as_a_numeric_non_root_user(image: str) -> None:
    stage = final_stage(parse(IMAGES / image / "Dockerfile"))
    users = [ins.args for ins in stage if ins.op == "USER"]
    assert users, f"{image}: the final stage sets no USER (runs as root)"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{image}: USER {users[-1]} must be a non-zero uid"
    # The user exists: the final stage creates it (or the base already has it).
    created = " ".join(ins.args for ins in stage if ins.op == "RUN")
    assert f"--uid {uid}" in created, f"{image}: no user with uid {uid} is created"


@pytest.mark.parametrize("image", sorted(EXPECTED))
def test_installs_the_repository_with_the_right_extras(image: str) -> None:
    extras, _ = EXPECTED[image]
    instructions = parse(IMAGES / image / "Dockerfile")
    installs = installed_extras(instructions)
    assert installs == [extras], f"{image}: expected one install of the repo with extras {set(extras)}"
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"]), "unknown extra"
    # What the install reads is copied in from the repository and exists there.
    copied = [shlex.split(ins.args) for ins in instructions if ins.op == "COPY"]
    sources = {src for words in copied if not any(w.startswith("--from") for w in words)
               for src in words[:-1]}
    assert {"pyproject.toml", "operator"} <= sources, sources
    for src in sources:
        assert (ROOT / src).exists(), f"{image}: COPY {src} names nothing in the repository"


@pytest.mark.parametrize("image", sorted(EXPECTED))
def test_entrypoint_is_a_console_script(image: str) -> None:
    _, script = EXPECTED[image]
    stage = final_stage(parse(IMAGES / image / "Dockerfile"))
    entrypoints = [ins.args for ins in stage if ins.op == "ENTRYPOINT"]
    assert entrypoints, f"{image}: no ENTRYPOINT (the base image's would run)"
    argv = json.loads(entrypoints[-1])
    assert isinstance(argv, list), "exec form, so signals reach the process"
    assert argv == [script]
    assert argv[0] in PYPROJECT["project"]["scripts"], f"{argv[0]} is not in [project.scripts]"


def test_operator_image_matches_the_deployment() -> None:
    """The Deployment runs `synthloop operator` as uid 10001: the image must allow exactly that."""
    stage = final_stage(parse(IMAGES / "operator" / "Dockerfile"))
    assert [ins.args for ins in stage if ins.op == "USER"][-1] == "10001:10001"
    assert json.loads([ins.args for ins in stage if ins.op == "CMD"][-1]) == ["operator"]
    assert "python:3.11" in stage[0].args, "the operator image tracks the project's Python 3.11"
    deployment = (ROOT / "manifests" / "base" / "deployment.yaml").read_text(encoding="utf-8")
    assert "runAsUser: 10001" in deployment


@pytest.mark.parametrize("image", sorted(EXPECTED))
def test_dockerignore_keeps_the_context_to_what_the_build_copies(image: str) -> None:
    ignore = IMAGES / image / "Dockerfile.dockerignore"
    assert ignore.is_file(), f"{image}: BuildKit reads Dockerfile.dockerignore beside the Dockerfile"
    patterns = [p.strip() for p in ignore.read_text().splitlines() if p.strip() and not p.startswith("#")]
    assert patterns[0] == "**", "allow-list: ignore everything, then re-include"
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {src for ins in parse(IMAGES / image / "Dockerfile") if ins.op == "COPY"
              and "--from" not in ins.args for src in shlex.split(ins.args)[:-1]}
    assert copied <= included, f"{image}: COPY {copied - included} would be ignored"
    assert not included & {".git", ".venv", "tests"}
