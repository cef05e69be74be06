"""The kubelet log endpoint, so `kubectl logs` works for pods on process nodes.

The apiserver proxies ``kubectl logs`` to ``https://<node InternalIP>:<kubeletEndpoint
port>/containerLogs/<ns>/<pod>/<container>`` with its kubelet client certificate; this
server answers that path (``follow``, ``tailLines``, ``previous``) from the per-pod log
files. One server serves every node of the agent, since they share 127.0.0.1.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from synthloop.local.nodeagent.logs import find_log


def serve_logs(
    *,
    port: int,
    pods_dir: Path,
    cert: Path,
    key: Path,
    ca: Path,
    is_running: Callable[[str, str], bool],
) -> ThreadingHTTPServer:
    """Start the HTTPS log server in a daemon thread and return it."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def do_GET(self) -> None:
            url = urlparse(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if url.path in ("/healthz", "/readyz"):
                self._send(200, b"ok")
                return
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._send(404, b"not found")
                return
            _, ns, pod, container = parts
            q = parse_qs(url.query)
            previous = q.get("previous", ["false"])[0] == "true"
            path = find_log(pods_dir, ns, pod, container, previous=previous)
            if path is None:
                self._send(404, f"no log for {ns}/{pod}/{container}".encode())
                return
            data = path.read_bytes()
            tail = q.get("tailLines", [None])[0]
            if tail is not None:
                lines = data.splitlines(keepends=True)
                data = b"".join(lines[-int(tail):]) if int(tail) > 0 else b""
            follow = q.get("follow", ["false"])[0] == "true"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            if not follow:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.end_headers()
            self.wfile.write(data)
            offset = path.stat().st_size
            try:
                while True:
                    with path.open("rb") as f:
                        f.seek(offset)
                        chunk = f.read()
                    if chunk:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        offset += len(chunk)
                    elif not is_running(ns, pod):
                        return
                    else:
                        time.sleep(0.3)
            except (BrokenPipeError, ConnectionResetError):
                return

        def _send(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    ctx.load_verify_locations(str(ca))
    ctx.verify_mode = ssl.CERT_REQUIRED  # only the apiserver (kubelet client cert) may read logs
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="kubelet-logs", daemon=True).start()
    return server
