#!/usr/bin/env bash
# Talks MCP to a running gateway with curl: initialize, tools/list, one tools/call.
#   scripts/try.sh [server] [tool] [arguments-json]
# Defaults: the shipped `gateway` server and its `list_servers` tool.
set -euo pipefail
GW=${MCPGATE_URL:-http://127.0.0.1:8080}
SERVER=${1:-gateway}
TOOL=${2:-list_servers}
ARGS=${3:-{\}}
H=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')

hdrs=$(mktemp); trap 'rm -f "$hdrs"' EXIT
curl -sS -D "$hdrs" -o /dev/null "${H[@]}" "$GW/mcp/$SERVER" \
  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"try.sh","version":"1"}}}'
SID=$(awk 'tolower($1)=="mcp-session-id:"{print $2}' "$hdrs" | tr -d '\r')
[ -n "$SID" ] || { echo "no session: is the gateway running at $GW?" >&2; exit 1; }
S=(-H "mcp-session-id: $SID" -H 'mcp-protocol-version: 2025-06-18')
curl -sS "${H[@]}" "${S[@]}" "$GW/mcp/$SERVER" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'

echo "== tools on /mcp/$SERVER"
curl -sS "${H[@]}" "${S[@]}" "$GW/mcp/$SERVER" -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
  | python3 -c 'import json,sys; [print(" -", t["name"], "—", (t.get("description") or "").splitlines()[0] if t.get("description") else "") for t in json.load(sys.stdin)["result"]["tools"]]'
echo "== tools/call $TOOL $ARGS"
curl -sS "${H[@]}" "${S[@]}" "$GW/mcp/$SERVER" \
  -d "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"$TOOL\",\"arguments\":$ARGS}}" \
  | python3 -m json.tool
