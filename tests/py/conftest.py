"""Starts a real REST backend and the real mcpgate binary for the Python SDK tests."""

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MCPGATE_SHARED", ROOT.parent / "shared"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gateway_binary() -> str:
    if os.environ.get("MCPGATE_BIN"):
        return os.environ["MCPGATE_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug" / "mcpgate"
    if not binary.exists():
        raise RuntimeError(f"mcpgate is not built at {binary}: run cargo build first or set MCPGATE_BIN")
    return str(binary)


class Items(BaseHTTPRequestHandler):
    """GET /items/{id} → JSON; GET /status/{code} → that status."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server API)
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[0] == "items" and len(parts) == 2:
            self.reply(200, {"id": parts[1], "name": f"item {parts[1]}", "price": 9.5})
        elif parts[0] == "status" and len(parts) == 2:
            self.reply(int(parts[1]), {"error": f"status {parts[1]}"})
        else:
            self.reply(404, {"error": "not found"})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def backend():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Items)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def gateway(backend):
    port, admin = free_port(), free_port()
    twilio = SHARED / "openapi-corpus" / "twilio" / "twilio_api_v2010.json"
    config = f"""
listen: ["127.0.0.1:{port}"]
admin: {{listen: "127.0.0.1:{admin}"}}
servers:
  - name: items
    type: rest
    server: {{name: items}}
    tools:
      - name: get_item
        description: Get an item by id
        args: [{{name: id, type: string, required: true, position: path}}]
        outputSchema: {{type: object, properties: {{id: {{type: string}}, name: {{type: string}}, price: {{type: number}}}}}}
        requestTemplate: {{url: "{backend}/items/{{id}}", method: GET}}
      - name: teapot
        description: Always fails upstream
        requestTemplate: {{url: "{backend}/status/418", method: GET}}
      - name: add
        description: Adds two integers
        args: [{{name: a, type: integer, required: true}}, {{name: b, type: integer, required: true}}]
        responseTemplate: {{body: '{{{{add .args.a .args.b}}}}'}}
  - name: twilio
    type: openapi
    spec: {twilio}
    base_url: {backend}
"""
    with running_gateway(config, port, admin):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def running_gateway(config: str, port: int, admin: int, workdir: str | None = None):
    """Runs mcpgate on `config` (MCP listener on `port`, admin listener on `admin`) until
    /readyz answers 200 and the MCP port accepts, yields the process, and kills it
    afterwards. The config is written into `workdir` (relative paths resolve there), a
    new temp folder by default."""
    workdir = workdir or tempfile.mkdtemp(prefix="mcpgate-py-")
    path = Path(workdir) / "mcpgate.yaml"
    path.write_text(config)
    log = open(Path(workdir) / "gateway.log", "w")
    proc = subprocess.Popen([gateway_binary(), "--config", str(path)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1) as r:
                if r.status == 200:
                    # Each listener binds in its own thread: the admin one can answer first.
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError("gateway did not start:\n" + (Path(workdir) / "gateway.log").read_text())
        time.sleep(0.05)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
