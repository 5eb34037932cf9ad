#!/usr/bin/env python3
"""Connection floods against a release mcpgate on loopback, with figures.

Starts the gateway (MCPGATE_BIN, default target/release/mcpgate) on a config answering a
local tool, then, in one run:

1. RSS per idle keep-alive connection: N connections that each made one call and stay
   open (default 10,000), RSS before and after (from /proc/<pid>/status).
2. A normal client's latency (p50/p99 of 500 pings, each on the client's own keep-alive
   connection) with 0, 1k, 2k, 5k, 10k idle connections held, and with 10k connections
   dripping a request head (slowloris, under the per-IP cap).
3. A connection flood past the cap (N + 5,000 attempts): how many got 503, the peak RSS,
   and whether /healthz and a normal client kept answering.

Usage:  loadtest/flood.py [--connections 10000]
Prints a table; copy it into loadtest/RESULTS.md with the command and the commit.
"""

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PING = b'{"jsonrpc":"2.0","id":7,"method":"ping"}'


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(port, body, sid=None):
    extra = f"Mcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-06-18\r\n" if sid else ""
    return (f"POST /mcp/local HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json, text/event-stream\r\n{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


def read_reply(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a body")
        rest += chunk
    return head, rest


def initialize(port):
    body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"flood","version":"1"}}}'
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request(port, body))
    head, _ = read_reply(s)
    s.close()
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"mcp-session-id:"):
            return line.split(b":", 1)[1].strip().decode()
    raise RuntimeError("no session id")


def latency(port, sid, n=500):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = request(port, PING, sid)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        s.sendall(req)
        read_reply(s)
        times.append((time.perf_counter() - t) * 1000)
    s.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def healthz(admin):
    try:
        s = socket.create_connection(("127.0.0.1", admin), timeout=3)
        s.settimeout(3)
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nConnection: close\r\n\r\n".encode())
        return s.recv(100).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def open_connections(admin):
    s = socket.create_connection(("127.0.0.1", admin), timeout=3)
    s.sendall(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{admin}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith('mcpgate_connections_open{listener="mcp"}'):
            return int(float(line.split()[-1]))
    return 0


def settle(admin, at_most):
    """Waits until the gateway has seen the closes (its open-connection gauge)."""
    for _ in range(600):
        if open_connections(admin) <= at_most:
            return
        time.sleep(0.05)
    raise RuntimeError("connections did not close")


def open_idle(port, sid, n):
    socks = []
    req = request(port, PING, sid)
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        socks.append(s)
    for s in socks:
        read_reply(s)
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    args = ap.parse_args()
    n = args.connections
    cap = n + 10  # room for the normal client beside n held connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < n + 5200:
        sys.exit(f"open-file limit {hard} is too low for {n} connections plus the flood: ulimit -n {n + 5200}")
    binary = os.environ.get("MCPGATE_BIN", os.path.join(ROOT, "target/release/mcpgate"))
    port, admin = free_port(), free_port()
    tmp = tempfile.mkdtemp()
    conf = os.path.join(tmp, "mcpgate.yaml")
    with open(conf, "w") as f:
        f.write(f'listen: ["127.0.0.1:{port}"]\nadmin: {{listen: "127.0.0.1:{admin}"}}\n'
                f"connections: {{max: {cap}, max_per_ip: {cap}, head_timeout: 120s, idle_timeout: 600s}}\n"
                "pingora: {threads: 1, grace_period_seconds: 1, graceful_shutdown_timeout_seconds: 1}\n"
                "servers:\n  - name: local\n    type: rest\n    server: {name: local}\n    tools:\n"
                "      - name: hello\n        description: says hello\n        responseTemplate: {body: 'hello'}\n")
    gw = subprocess.Popen([binary, "--config", conf], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "log"), "w"))
    try:
        for _ in range(300):
            if healthz(admin):
                break
            time.sleep(0.05)
        sid = initialize(port)
        latency(port, sid, 200)  # warm up
        base = rss_kib(gw.pid)
        rows = []
        p50, p99 = latency(port, sid)
        rows.append(("idle", 0, p50, p99, base))
        held = []
        for target in sorted({t for t in [1000, 2000, 5000, n] if t <= n}):
            held += open_idle(port, sid, target - len(held))
            time.sleep(0.5)
            p50, p99 = latency(port, sid)
            rows.append(("idle", target, p50, p99, rss_kib(gw.pid)))
        idle_rss = rss_kib(gw.pid)
        for s in held:
            s.close()
        held = []
        settle(admin, 0)
        # Slowloris under the cap: every connection sends part of a head and stalls.
        drips = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /mcp/local HTTP/1.1\r\nHost: x\r\nX-Slow: a")
            drips.append(s)
        time.sleep(0.5)
        p50, p99 = latency(port, sid)
        rows.append(("dripping heads", len(drips), p50, p99, rss_kib(gw.pid)))
        for s in drips:
            s.close()
        settle(admin, 0)
        # Flood past the cap.
        held = open_idle(port, sid, cap)
        peak, refused, other, stop = [0], [0], [0], threading.Event()

        def watch():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(gw.pid))
                time.sleep(0.05)

        w = threading.Thread(target=watch)
        w.start()
        flood = []
        for _ in range(5000):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                flood.append(s)
            except OSError:
                other[0] += 1
        for s in flood:
            try:
                s.settimeout(5)
                if s.recv(40).startswith(b"HTTP/1.1 503"):
                    refused[0] += 1
                else:
                    other[0] += 1
            except OSError:
                other[0] += 1
        health = healthz(admin)
        for s in held[:10]:
            s.close()
        settle(admin, cap - 10)
        p50, p99 = latency(port, sid, 200)
        stop.set()
        w.join()
        print(f"mcpgate {binary} (1 worker thread), loopback, connections.max {cap}\n")
        print("| load held | connections | normal client p50 ms | p99 ms | gateway RSS MiB |")
        print("|---|---:|---:|---:|---:|")
        for kind, count, a, b, r in rows:
            print(f"| {kind} | {count} | {a:.3f} | {b:.3f} | {r / 1024:.1f} |")
        per = (idle_rss - base) * 1024 / n
        print(f"\nRSS per idle keep-alive connection: {per:,.0f} bytes ({n} connections: {idle_rss / 1024:.0f} MiB, base {base / 1024:.0f} MiB)")
        print(f"flood of 5,000 connections past the cap (all {cap} held): {refused[0]} answered 503, {other[0]} other; peak RSS {peak[0] / 1024:.0f} MiB; /healthz {'answered' if health else 'DID NOT ANSWER'}; normal client after it p50 {p50:.3f} ms p99 {p99:.3f} ms")
    finally:
        gw.send_signal(2)
        try:
            gw.wait(10)
        except subprocess.TimeoutExpired:
            gw.kill()


if __name__ == "__main__":
    main()
