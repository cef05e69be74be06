"""The base install is enough for the operator side: parsing specs, CEL rules, the CRD check.

The last release imported cel-python without declaring it; it passed CI on the machine that had
it installed by hand and failed on every fresh one. This test builds a fresh virtualenv with
`pip install .` (no extras), as the operator image does, and uses it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*cmd: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=900)


def test_a_base_install_parses_specs_and_checks_the_crds(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "operator", src / "operator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    installed = _run(py, "-m", "pip", "install", "-q", str(src))
    assert installed.returncode == 0, installed.stderr[-4000:]

    assert _run(py, "-c", "import torch").returncode != 0, "torch is not a base dependency"
    check = _run(venv / "bin" / "synthloop", "crds", "--out", ROOT / "crds", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    valid = _run(venv / "bin" / "synthloop", "validate", ROOT / "examples" / "rewardtrain.yaml",
                 ROOT / "examples" / "loop" / "00-iteration-0.yaml")
    assert valid.returncode == 0 and "RewardTrain/reward: valid" in valid.stdout, valid.stdout + valid.stderr
    invalid = _run(venv / "bin" / "synthloop", "validate", ROOT / "examples" / "invalid" / "pretrain-bad-gqa.yaml")
    assert invalid.returncode == 1 and "heads must be a multiple of kvHeads" in invalid.stderr, invalid.stderr
