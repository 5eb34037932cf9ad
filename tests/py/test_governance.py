"""Governance with the official MCP Python SDK: two consumers with API keys see different
tool lists (paginated) and get different call outcomes on the same servers, over
Streamable HTTP and the 2024-11-05 SSE transport; a caller without a key cannot connect."""

import hashlib

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import PaginatedRequestParams

from conftest import SHARED, free_port, running_gateway

ALICE = "mcpg_py-alice-0123456789abcdefghij"
BOB = "mcpg_py-bob-0123456789abcdefghijkl"


def stored(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def governed(backend):
    port, admin = free_port(), free_port()
    twilio = SHARED / "openapi-corpus" / "twilio" / "twilio_api_v2010.json"
    config = f"""
listen: ["127.0.0.1:{port}"]
admin: {{listen: "127.0.0.1:{admin}"}}
consumers:
  - {{name: alice, groups: [staff], api_keys: ["{stored(ALICE)}"]}}
  - {{name: bob, api_keys: ["{stored(BOB)}"]}}
servers:
  - name: items
    type: rest
    server: {{name: items}}
    policy:
      rules:
        - {{tools: [get_item], allow: {{}}}}
        - {{tools: [add], allow: {{groups: [staff]}}}}
    tools:
      - name: get_item
        args: [{{name: id, type: string, required: true, position: path}}]
        requestTemplate: {{url: "{backend}/items/{{id}}", method: GET}}
      - name: add
        args: [{{name: a, type: integer, required: true}}, {{name: b, type: integer, required: true}}]
        responseTemplate: {{body: '{{{{add .args.a .args.b}}}}'}}
  - name: twilio
    type: openapi
    spec: {twilio}
    base_url: {backend}
    policy:
      rules:
        - {{tools: ["*"], allow: {{consumers: [alice]}}}}
        - {{tools: ["Fetch*", "List*"], allow: {{consumers: [bob]}}}}
"""
    with running_gateway(config, port, admin):
        yield f"http://127.0.0.1:{port}"


async def all_tools(s: ClientSession) -> list[str]:
    names, cursor = [], None
    while True:
        page = await s.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        names += [t.name for t in page.tools]
        cursor = page.next_cursor
        if not cursor:
            return names


async def test_two_consumers_see_and_call_different_tools(governed):
    seen = {}
    for who, key in (("alice", ALICE), ("bob", BOB)):
        async with httpx2.AsyncClient(headers={"x-api-key": key}) as http:
            async with streamable_http_client(f"{governed}/mcp/twilio", http_client=http) as (read, write):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    seen[who] = await all_tools(s)
            async with streamable_http_client(f"{governed}/mcp/items", http_client=http) as (read, write):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    r = await s.call_tool("get_item", {"id": "1"})
                    assert not r.is_error
                    if who == "alice":
                        assert (await s.call_tool("add", {"a": 2, "b": 3})).content[0].text == "5"
                    else:
                        with pytest.raises(MCPError) as e:
                            await s.call_tool("add", {"a": 2, "b": 3})
                        assert e.value.error.code == -32602 and "Unknown tool" in e.value.error.message
    assert len(seen["alice"]) == len(set(seen["alice"])) == 197
    assert len(seen["bob"]) == len(set(seen["bob"])) == 103, "Fetch* and List*, across pages"
    assert all(n.startswith(("Fetch", "List")) for n in seen["bob"])
    assert set(seen["bob"]) < set(seen["alice"])


async def test_sse_client_with_a_bearer_key(governed):
    async with sse_client(f"{governed}/mcp/items/sse", headers={"Authorization": f"Bearer {BOB}"}, timeout=5, sse_read_timeout=30) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            assert [t.name for t in (await s.list_tools()).tools] == ["get_item"]
            assert not (await s.call_tool("get_item", {"id": "2"})).is_error


async def test_no_key_no_session(governed):
    async with httpx2.AsyncClient() as http:
        r = await http.post(
            f"{governed}/mcp/items",
            headers={"accept": "application/json, text/event-stream", "content-type": "application/json"},
            json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "py", "version": "1"}}},
        )
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer ")
        assert r.json()["error"]["code"] == -32001
