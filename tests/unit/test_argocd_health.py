"""Argo CD health checks for the four kinds, run in a real Lua 5.1 (Argo CD's gopher-lua dialect).

Every branch of the status contract is exercised for every kind, in a sandbox without the
libraries Argo CD withholds and with undefined globals turned into errors, so a typo in a
field name fails here instead of silently reading nil in Argo CD.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

lua51 = pytest.importorskip("lupa.lua51")

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "manifests" / "argocd"
KINDS = ("PretrainJob", "SynthRound", "RewardTrain", "AlignJob")

# Runs a script the way Argo CD does (global `obj`, returns hs) in its own environment: the
# base, string, table and math libraries only (no os/io/require), and any read of a global
# that does not exist is an error instead of a silent nil.
SANDBOX = """
return function(source, obj)
  local allowed = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    pcall = pcall, select = select, tonumber = tonumber, tostring = tostring, type = type,
    unpack = unpack, string = string, table = table, math = math, obj = obj,
  }
  local env = setmetatable({}, {
    __index = function(_, name)
      local value = allowed[name]
      if value == nil then error("read of undefined global " .. tostring(name), 2) end
      return value
    end,
    __newindex = function(_, name) error("write of global " .. tostring(name), 2) end,
  })
  local chunk, err = loadstring(source, "health.lua")
  if chunk == nil then error(err) end
  setfenv(chunk, env)
  return chunk()
end
"""


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_health_cm", ARGOCD / "render_health_cm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lua_source(kind: str) -> str:
    """The script Argo CD runs for ``kind``: one file for every kind (it reads obj.kind)."""
    return (ARGOCD / "health" / "synthloop.lua").read_text(encoding="utf-8")


def health(kind: str, status: dict[str, Any] | None, *, generation: int = 1,
           source: str | None = None) -> tuple[str, str]:
    """Run a kind's health script on an object the way Argo CD does: global `obj`, returns hs."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    obj: dict[str, Any] = {
        "apiVersion": "synthloop.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "synthloop", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = status
    run = lua.execute(SANDBOX)
    hs = run(source if source is not None else _lua_source(kind), lua.table_from(obj, recursive=True))
    assert hs is not None, f"synthloop.lua returned nothing for {kind}"
    result = dict(hs)
    assert set(result) == {"status", "message"}, result
    assert result["status"] in {"Healthy", "Progressing", "Degraded", "Suspended", "Missing"}
    return str(result["status"]), str(result["message"])


def cond(ctype: str, status: str, *, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-27T14:00:00Z"}


CASES: list[tuple[str, dict[str, Any] | None, tuple[str, str]]] = [
    ("no status", None, ("Progressing", "Waiting for the operator")),
    ("only kopf bookkeeping", {"kopf": {"progress": {}}}, ("Progressing", "Waiting for the operator")),
    ("empty conditions", {"conditions": []}, ("Progressing", "Waiting for the operator")),
    ("pending", {"phase": "Pending", "conditions": []}, ("Progressing", "Pending")),
    (
        "waiting for inputs",
        {"phase": "WaitingForInputs", "conditions": [
            cond("InputsReady", "False", reason="WaitingForProducer",
                 message="waiting for AlignJob align-1 to succeed"),
            cond("Running", "False", reason="NotStarted", message="not started")]},
        ("Progressing", "waiting for AlignJob align-1 to succeed"),
    ),
    (
        "running with progress",
        {"phase": "Running", "progress": "3/8 shards", "conditions": [
            cond("InputsReady", "True", reason="Resolved"),
            cond("Running", "True", reason="JobRunning", message="stage sft running")]},
        ("Progressing", "stage sft running (3/8 shards)"),
    ),
    (
        "evaluating without a running message",
        {"phase": "Evaluating", "conditions": [cond("InputsReady", "True")]},
        ("Progressing", "Evaluating"),
    ),
    (
        "failed condition",
        {"phase": "Running", "conditions": [
            cond("Running", "False", message="stage dpo"),
            cond("Failed", "True", reason="BackoffLimitExceeded",
                 message="job align-1-dpo failed 3 times: exit code 137")]},
        ("Degraded", "job align-1-dpo failed 3 times: exit code 137"),
    ),
    ("failed phase without condition", {"phase": "Failed", "conditions": []}, ("Degraded", "{kind} failed")),
    (
        "failed false is not failure",
        {"phase": "Running", "conditions": [cond("Failed", "False"),
                                            cond("Running", "True", message="step 10/40")]},
        ("Progressing", "step 10/40"),
    ),
    (
        "rejected by gate",
        {"phase": "Rejected", "conditions": [
            cond("Evaluated", "True"),
            cond("Promoted", "False", reason="GateFailed",
                 message="gate ifeval.prompt_strict >= 0.7 failed: 0.41")]},
        ("Degraded", "gate ifeval.prompt_strict >= 0.7 failed: 0.41"),
    ),
    (
        "gate failed before the phase caught up",
        {"phase": "Evaluating", "conditions": [
            cond("Promoted", "False", reason="GateFailed", message="reward.win_rate 0.48 <= parent 0.50")]},
        ("Degraded", "reward.win_rate 0.48 <= parent 0.50"),
    ),
    ("rejected phase without condition", {"phase": "Rejected"},
     ("Degraded", "{kind} was rejected by its evaluation gates")),
    (
        "promoted",
        {"phase": "Promoted", "promotedAs": "interm-1", "conditions": [
            cond("Evaluated", "True"),
            cond("Promoted", "True", reason="GatesPassed", message="promoted as interm-1")]},
        ("Healthy", "promoted as interm-1"),
    ),
    ("promoted phase without condition", {"phase": "Promoted"}, ("Healthy", "{kind} promoted")),
    (
        "succeeded without promotion",
        {"phase": "Succeeded", "conditions": [
            cond("Running", "False", message="done"),
            cond("Promoted", "False", reason="NoPromotion", message="no promotion requested")]},
        ("Healthy", "{kind} succeeded"),
    ),
    (
        "queued in Kueue",
        {"phase": "Pending", "progress": "queued", "conditions": [
            cond("InputsReady", "True", reason="Resolved"),
            cond("Running", "False", reason="JobSuspended",
                 message="stage pretrain: Job pt-pretrain waiting in queue dgx: insufficient unused "
                         "quota for nvidia.com/gpu in flavor dgx-h100, 8 more needed")]},
        ("Suspended", ("stage pretrain: Job pt-pretrain waiting in queue dgx: insufficient unused "
                       "quota for nvidia.com/gpu in flavor dgx-h100, 8 more needed (queued)")),
    ),
    (
        "queued without a message",
        {"phase": "Pending", "conditions": [cond("Running", "False", reason="JobSuspended")]},
        ("Suspended", "{kind} is queued"),
    ),
    (
        "a failed run that was queued once is degraded, not suspended",
        {"phase": "Failed", "conditions": [
            cond("Running", "False", reason="JobSuspended", message="waiting in queue dgx"),
            cond("Failed", "True", reason="JobFailed", message="Job pt-pretrain failed")]},
        ("Degraded", "Job pt-pretrain failed"),
    ),
    (
        "failure wins over an earlier promotion",
        {"phase": "Failed", "conditions": [
            cond("Promoted", "True", message="promoted as interm-1"),
            cond("Failed", "True", message="promotion pointer could not be written")]},
        ("Degraded", "promotion pointer could not be written"),
    ),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("case", "status", "expected"), CASES, ids=[c[0] for c in CASES])
def test_health_follows_the_status_contract(
    kind: str, case: str, status: dict[str, Any] | None, expected: tuple[str, str]
) -> None:
    want = (expected[0], expected[1].format(kind=kind))
    assert health(kind, status) == want, case


@pytest.mark.parametrize("kind", KINDS)
def test_a_spec_edit_not_yet_observed_is_progressing_even_after_failure(kind: str) -> None:
    failed = {"phase": "Failed", "observedGeneration": 2,
              "conditions": [cond("Failed", "True", message="bad ref")]}
    assert health(kind, failed, generation=3) == (
        "Progressing", "Waiting for the operator to observe generation 3")
    # Caught up, or an operator that does not track generations (0): the status counts.
    assert health(kind, failed, generation=2) == ("Degraded", "bad ref")
    assert health(kind, {**failed, "observedGeneration": 0}, generation=3) == ("Degraded", "bad ref")


def test_the_kinds_share_one_script() -> None:
    """One script serves every kind, and its messages name the kind of the object it judges."""
    for kind in KINDS:
        assert health(kind, {"phase": "Succeeded"}) == ("Healthy", f"{kind} succeeded")


def test_argocd_cm_is_generated_from_the_lua_files() -> None:
    renderer = _renderer()
    checked_in = (ARGOCD / "argocd-cm-health.yaml").read_text(encoding="utf-8")
    assert checked_in == renderer.render(), "stale: run python3 manifests/argocd/render_health_cm.py"
    cm = yaml.safe_load(checked_in)
    assert (cm["kind"], cm["metadata"]["name"], cm["metadata"]["namespace"]) == (
        "ConfigMap", "argocd-cm", "argocd")
    assert sorted(cm["data"]) == sorted(f"resource.customizations.health.synthloop.io_{k}" for k in KINDS)
    for kind in KINDS:
        source = cm["data"][f"resource.customizations.health.synthloop.io_{kind}"]
        assert source == _lua_source(kind)
        # What Argo CD reads behaves like the file the other tests run.
        assert health(kind, {"phase": "Rejected"}, source=source)[0] == "Degraded"
        assert health(kind, {"phase": "Promoted"}, source=source)[0] == "Healthy"


def test_renderer_check_mode_detects_a_stale_configmap(tmp_path: Path) -> None:
    renderer = _renderer()
    health_dir = tmp_path / "health"
    health_dir.mkdir()
    (health_dir / "synthloop.lua").write_text(_lua_source("AlignJob") + "-- edited\n", encoding="utf-8")
    assert renderer.render(health_dir) != renderer.render()
    (health_dir / "synthloop.lua").unlink()
    with pytest.raises(FileNotFoundError, match="synthloop.lua"):
        renderer.render(health_dir)


def test_sandbox_rejects_what_argocd_would_not_run() -> None:
    """The harness itself: an undefined global or os/io access fails instead of passing quietly."""
    with pytest.raises(lua51.LuaError, match="undefined global stauts"):
        health("AlignJob", None, source="local hs = {}\nhs.status = stauts\nreturn hs")
    with pytest.raises(lua51.LuaError, match="undefined global os"):
        health("AlignJob", None, source="os.exit(0)")
