"""The official MCP Python SDK against mcpgate: Streamable HTTP (low-level session and the
high-level auto-mode client, which probes 2026-07-28 server/discover first) and the
2024-11-05 SSE client."""

import httpx2
from mcp import Client, ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client


async def test_streamable_http_session(gateway):
    async with httpx2.AsyncClient() as http:
        async with streamable_http_client(f"{gateway}/mcp/items", http_client=http) as (read, write):
            async with ClientSession(read, write) as s:
                init = await s.initialize()
                assert init.protocol_version == "2025-11-25"
                assert init.server_info.name == "mcpgate/items"
                tools = await s.list_tools()
                assert [t.name for t in tools.tools] == ["get_item", "teapot", "add"]
                r = await s.call_tool("get_item", {"id": "42"})
                assert not r.is_error
                assert r.structured_content == {"id": "42", "name": "item 42", "price": 9.5}
                assert '"item 42"' in r.content[0].text
                r = await s.call_tool("teapot", {})
                assert r.is_error
                assert "HTTP 418" in r.content[0].text
                r = await s.call_tool("add", {"a": 2, "b": "three"})
                assert r.is_error
                assert "`b`" in r.content[0].text and "integer" in r.content[0].text
                r = await s.call_tool("add", {"a": 2, "b": 3})
                assert r.content[0].text == "5"


async def test_auto_mode_client_falls_back_to_initialize(gateway):
    transport = streamable_http_client(f"{gateway}/mcp/items", http_client=httpx2.AsyncClient())
    async with Client(transport, mode="auto") as c:
        names = [t.name for t in (await c.list_tools()).tools]
        assert "get_item" in names
        r = await c.call_tool("get_item", {"id": "7"})
        assert r.structured_content["name"] == "item 7"


async def test_pagination_with_cursors(gateway):
    async with httpx2.AsyncClient() as http:
        async with streamable_http_client(f"{gateway}/mcp/twilio", http_client=http) as (read, write):
            async with ClientSession(read, write) as s:
                await s.initialize()
                from mcp.types import PaginatedRequestParams

                names, cursor, pages = [], None, 0
                while True:
                    page = await s.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
                    names += [t.name for t in page.tools]
                    pages += 1
                    cursor = page.next_cursor
                    if not cursor:
                        break
                assert pages == 2
                assert len(set(names)) == len(names) == 197


async def test_legacy_sse_client(gateway):
    async with sse_client(f"{gateway}/mcp/items/sse", timeout=5, sse_read_timeout=30) as (read, write):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            assert init.protocol_version in ("2024-11-05", "2025-11-25", "2025-06-18", "2025-03-26")
            tools = await s.list_tools()
            assert {t.name for t in tools.tools} == {"get_item", "teapot", "add"}
            r = await s.call_tool("get_item", {"id": "9"})
            assert not r.is_error
            assert '"item 9"' in r.content[0].text
            r = await s.call_tool("teapot", {})
            assert r.is_error
