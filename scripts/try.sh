#!/usr/bin/env bash
# Talks MCP to a running gateway with curl: initialize, tools/list, one tools/call.
#   scripts/try.sh [server] [tool] [arguments-json]
# Defaults: the shipped `gateway` server and its `list_servers` tool; MCPGATE_URL sets the
# gateway (default http://127.0.0.1:8080).
set -euo pipefail
GW=${MCPGATE_URL:-http://127.0.0.1:8080}
SERVER=${1:-gateway}
TOOL=${2:-list_servers}
ARGS=${3:-{\}}
URL="$GW/mcp/$SERVER"
H=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
S=()

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# post JSON: POSTs one message; the reply is left in $tmp/body, its headers in $tmp/headers.
# No answer at all means no gateway there; an HTTP error is the gateway's own message.
post() {
  local code
  if ! code=$(curl -sS -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' "${H[@]}" ${S[@]+"${S[@]}"} "$URL" -d "$1"); then
    echo "try.sh: no answer from $URL: is the gateway running at $GW?" >&2
    exit 1
  fi
  if [ "${code:0:1}" != 2 ]; then
    echo "try.sh: POST $URL: HTTP $code: $(python3 -c 'import json,sys
t = open(sys.argv[1], encoding="utf-8", errors="replace").read()
try:
    v = json.loads(t)
except ValueError:
    v = None
e = v.get("error") if isinstance(v, dict) else None
print(e.get("message", e) if isinstance(e, dict) else e or t.strip()[:500] or "(empty body)")' "$tmp/body")" >&2
    exit 1
  fi
}

# rpc_error: the JSON-RPC error in $tmp/body, if it is one (then exits 1).
rpc_error() {
  python3 -c 'import json,sys
v = json.load(open(sys.argv[1]))
e = v.get("error") if isinstance(v, dict) else None
if e:
    print("try.sh: %s: JSON-RPC error %s: %s" % (sys.argv[2], e.get("code"), e.get("message")), file=sys.stderr)
    sys.exit(1)' "$tmp/body" "$1"
}

post '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"try.sh","version":"1"}}}'
rpc_error initialize
SID=$(awk 'tolower($1)=="mcp-session-id:"{print $2}' "$tmp/headers" | tr -d '\r')
[ -n "$SID" ] || { echo "try.sh: $URL answered initialize without an Mcp-Session-Id header" >&2; exit 1; }
S=(-H "mcp-session-id: $SID" -H 'mcp-protocol-version: 2025-06-18')
post '{"jsonrpc":"2.0","method":"notifications/initialized"}'

echo "== tools on /mcp/$SERVER"
post '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
rpc_error tools/list
python3 -c 'import json,sys; [print(" -", t["name"], "—", (t.get("description") or "").splitlines()[0] if t.get("description") else "") for t in json.load(open(sys.argv[1]))["result"]["tools"]]' "$tmp/body"
echo "== tools/call $TOOL $ARGS"
post "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"$TOOL\",\"arguments\":$ARGS}}"
python3 -m json.tool "$tmp/body"
rpc_error "tools/call $TOOL"
