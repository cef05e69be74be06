"""The process node's pod status keeps the conditions others set, as a kubelet does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthloop.local.nodeagent.runner import PodRunner


class RecordingKube:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch(self, path: str, body: dict[str, Any]) -> None:
        self.patches.append(body)


def test_a_disruption_target_set_by_an_eviction_survives_the_agents_final_status(tmp_path: Path) -> None:
    """The agent writes status with a JSON merge patch, which replaces the condition list; an
    evicted pod's DisruptionTarget must still be there when it turns Failed, or the Job's
    podFailurePolicy cannot tell a disruption from a crash."""
    pod = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"},
           "spec": {"restartPolicy": "Never", "containers": [{"name": "worker", "command": ["true"]}]}}
    kube = RecordingKube()
    runner = PodRunner(pod, kube=kube, pods_dir=tmp_path, base_path="/usr/bin",  # type: ignore[arg-type]
                       server="https://x", ca_cert=tmp_path / "ca", on_done=lambda r: None)
    disruption = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
    # what the agent's watch hands the runner after the eviction (and a stale Ready of its own)
    runner.pod = {**pod, "status": {"conditions": [disruption, {"type": "Ready", "status": "True"}]}}
    runner._finish("Failed", None, None)
    (patch,) = kube.patches
    conds = patch["status"]["conditions"]
    assert disruption in conds
    assert [c["type"] for c in conds].count("Ready") == 1
    assert next(c for c in conds if c["type"] == "Ready")["status"] == "False"  # the agent's own
