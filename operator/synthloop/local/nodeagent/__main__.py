"""Entry point: ``python -m synthloop.local.nodeagent --config node-agent.json`` (started by `up`)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from datetime import UTC
from pathlib import Path
from types import FrameType

from synthloop.local.kube import KubeClient
from synthloop.local.nodeagent.agent import Agent
from synthloop.local.nodeagent.logserver import serve_logs
from synthloop.local.nodeagent.nodes import NodeRegistrar, process_node, process_node_names
from synthloop.local.nodeagent.runner import default_base_path

log = logging.getLogger("synthloop.nodeagent")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="synthloop-node-agent")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
    cfg = json.loads(args.config.read_text())
    kube = KubeClient.from_kubeconfig(cfg["kubeconfig"], maxsize=64)
    names = process_node_names(dgx=cfg["dgx_nodes"], cpu=cfg["cpu_nodes"],
                               first_dgx=int(cfg.get("first_dgx", 0)), first_cpu=int(cfg.get("first_cpu", 0)))
    from datetime import datetime

    since = datetime.now(UTC)
    nodes = [
        process_node(n, gpu_labels=cfg["gpu_labels"] if n.startswith("local-dgx-") else None,
                     kubelet_port=cfg["kubelet_port"], since=since)
        for n in names
    ]
    registrar = NodeRegistrar(kube, nodes)
    pods_dir = Path(cfg["pods_dir"])
    pods_dir.mkdir(parents=True, exist_ok=True)
    agent = Agent(
        kube, registrar=registrar, pods_dir=pods_dir,
        base_path=default_base_path(Path(cfg["bin_dir"])), server=cfg["server"],
        ca_cert=Path(cfg["ca_cert"]),
    )
    serve_logs(
        port=cfg["kubelet_port"], pods_dir=pods_dir, cert=Path(cfg["serving_cert"]),
        key=Path(cfg["serving_key"]), ca=Path(cfg["ca_cert"]),
        is_running=lambda ns, pod: agent.runner_for(ns, pod) is not None,
    )
    registrar.register()
    log.info("registered nodes %s", names)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping pods and exiting", signum)
        agent.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=agent.heartbeat_loop, name="heartbeat", daemon=True).start()
    for n in names:
        threading.Thread(target=agent.watch_loop, args=(n,), name=f"watch-{n}", daemon=True).start()
    while not agent.stop.wait(1.0):
        pass
    agent.shutdown(grace=10.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
