"""`make demo` fails fast with the reason: the real operator, the real cluster, a loop that cannot run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from synthloop.api.v1alpha1 import API_VERSION
from synthloop.demo.__main__ import run_loop
from synthloop.demo.watchdog import DemoFailure
from synthloop.local.testing import LocalCluster

pytestmark = pytest.mark.local_only  # the demo pins its pods to the process node local-dgx-0


def _loop(tmp_path: Path, *docs: dict[str, Any]) -> Path:
    folder = tmp_path / "loop"
    folder.mkdir()
    (folder / "00.yaml").write_text(yaml.safe_dump_all(docs))
    return folder


def _align(name: str, base: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "AlignJob", "metadata": {"name": name},
            "spec": {"baseModel": base, "data": {"uri": "s3://synthloop/none/"}, "stages": [{"type": "sft"}]}}


def test_a_failed_run_stops_the_demo_with_its_condition(
    local_cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    env = {**local_cluster.env(), "SYNTHLOOP_REF_GRACE_SECONDS": "0"}
    loop = _loop(tmp_path, _align("orphan", {"fromRef": {"kind": "PretrainJob", "name": "nope"}}))
    started = time.monotonic()
    with pytest.raises(DemoFailure) as info:
        run_loop(env, namespace=namespace, loop_dir=loop, timeout=600, home=tmp_path, echo=lambda _m: None)
    message = str(info.value)
    assert "AlignJob/orphan" in message and "PretrainJob nope does not exist" in message, message
    assert str(tmp_path / "local" / "logs") in message
    assert time.monotonic() - started < 600  # ended by the failure, not by the timeout


def test_an_operator_that_cannot_start_stops_the_demo_with_its_error(
    local_cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    env = {**local_cluster.env(), "SYNTHLOOP_RESYNC_SECONDS": "not-a-number"}
    loop = _loop(tmp_path, _align("waits", {"promoted": "never"}))
    with pytest.raises(DemoFailure) as info:
        run_loop(env, namespace=namespace, loop_dir=loop, timeout=600, home=tmp_path, echo=lambda _m: None)
    message = str(info.value)
    assert "the operator exited with code" in message and "SYNTHLOOP_RESYNC_SECONDS" in message, message
