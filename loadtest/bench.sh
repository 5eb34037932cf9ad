#!/usr/bin/env bash
# One run, three targets on the same REST backend, same load:
#   1. the backend directly            GET /items/42
#   2. a bare Pingora passthrough      GET /items/42 via loadtest/passthrough
#   3. mcpgate tools/call getItem      POST /mcp/bench (OpenAPI tool, with a session)
# Prints requests/s, p50 and p99 for each, and mcpgate's throughput ratio and added p99
# against the bare passthrough. Targets: ratio >= 0.8, added p99 <= 0.5 ms at 64 connections.
#
# As on a multicore host, the proxy under test gets CPUs of its own (PIN=1, the default
# when taskset exists and there are 2+ CPUs): the upper half of the CPUs serves the
# proxies, the lower half runs the load generator and the backend. Each proxy's CPU time
# per request (from /proc) is printed too: it is the cost a request adds, whatever else
# the machine is doing, and it tells whether a proxy was saturated.
#
# On a shared or virtual machine one run of each can land on a noisy second; so the
# passthrough and mcpgate are measured in ROUNDS back-to-back pairs (the order alternating
# each round, so drift favours neither), every round is printed, and the verdict is on
# the median round.
#
#   loadtest/bench.sh                      # DURATION=15s CONNECTIONS=64 THREADS=1 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}           # worker threads for backend, passthrough and mcpgate each
ROUNDS=${ROUNDS:-3}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}/release
OUT=${OUT:-$PWD/loadtest/out}
mkdir -p "$OUT"

command -v oha >/dev/null || cargo install oha --locked
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p mcpgate -p passthrough -p backend >&2

NCPU=$(nproc)
PIN=${PIN:-$([ "$NCPU" -ge 2 ] && command -v taskset >/dev/null && echo 1 || echo 0)}
LOAD=() PROXY=()
if [ "$PIN" = 1 ]; then
  half=$((NCPU / 2))
  LOAD=(taskset -c "0-$((half - 1))") PROXY=(taskset -c "$half-$((NCPU - 1))")
fi

BACKEND=127.0.0.1:18200 PASS=127.0.0.1:18100 GW=127.0.0.1:18300 ADMIN=127.0.0.1:18301
pids=()
# SIGINT: Pingora's fast shutdown (SIGTERM would drain for minutes, holding a piped stdout
# open); the backend ignores SIGINT as a background job, so whatever is left gets SIGTERM.
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

"${LOAD[@]}" "$TARGET/backend" --listen $BACKEND --threads "$THREADS" >"$OUT/backend.log" 2>&1 & pids+=($!)
"${PROXY[@]}" "$TARGET/passthrough" --listen $PASS --upstream $BACKEND --threads "$THREADS" >"$OUT/passthrough.log" 2>&1 & pids+=($!); PASS_PID=$!
cat > "$OUT/mcpgate.yaml" <<YAML
listen: ["$GW"]
admin: {listen: "$ADMIN"}
pingora: {threads: $THREADS}
servers:
  - name: bench
    type: openapi
    spec: $PWD/loadtest/backend/openapi.yaml
    base_url: http://$BACKEND
YAML
RUST_LOG=warn "${PROXY[@]}" "$TARGET/mcpgate" --config "$OUT/mcpgate.yaml" >"$OUT/mcpgate.log" 2>&1 & pids+=($!); GW_PID=$!
for _ in $(seq 1 100); do curl -sf "http://$ADMIN/readyz" >/dev/null && curl -sf "http://$BACKEND/items/1" >/dev/null && break; sleep 0.1; done

H=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
SID=$(curl -s -D - -o /dev/null "${H[@]}" "http://$GW/mcp/bench" \
  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
  | awk 'tolower($1)=="mcp-session-id:"{print $2}' | tr -d '\r')
curl -s "${H[@]}" -H "mcp-session-id: $SID" -H 'mcp-protocol-version: 2025-06-18' "http://$GW/mcp/bench" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
CALL='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"getItem","arguments":{"id":42}}}'
sample=$(curl -s "${H[@]}" -H "mcp-session-id: $SID" -H 'mcp-protocol-version: 2025-06-18' "http://$GW/mcp/bench" -d "$CALL")
echo "$sample" | grep -q '"structuredContent"' && ! echo "$sample" | grep -q '"isError":true' || { echo "mcpgate tools/call does not succeed: $sample" >&2; exit 1; }

cpu_ticks() { # pid -> utime+stime in clock ticks
  [ -n "${1:-}" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0
}
run() { # name, pid of the proxy (or ""), oha args...
  local name=$1 pid=$2; shift 2
  "${LOAD[@]}" oha --no-tui --output-format json -z 2s -c "$CONNECTIONS" "$@" >/dev/null 2>&1 || true     # warm-up
  local before; before=$(cpu_ticks "$pid")
  "${LOAD[@]}" oha --no-tui --output-format json -z "$DURATION" -c "$CONNECTIONS" "$@" > "$OUT/$name.json"
  echo $(( $(cpu_ticks "$pid") - before )) > "$OUT/$name.ticks"
}
run_pass() { run "passthrough.$1" "$PASS_PID" "http://$PASS/items/42"; }
run_gw() { run "mcpgate.$1" "$GW_PID" -m POST "${H[@]}" -H "mcp-session-id: $SID" -H 'mcp-protocol-version: 2025-06-18' -d "$CALL" "http://$GW/mcp/bench"; }
run direct "" "http://$BACKEND/items/42"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then run_pass "$r"; run_gw "$r"; else run_gw "$r"; run_pass "$r"; fi
done

python3 - "$OUT" "$DURATION" "$CONNECTIONS" "$THREADS" "$PIN" "$(getconf CLK_TCK)" "$ROUNDS" <<'PY'
import json, os, statistics, sys
out, duration, conns, threads, pin, hz, rounds = sys.argv[1:]
def load(name):
    d = json.load(open(f"{out}/{name}.json"))
    s = d["summary"]; p = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    ok = codes.get("200", 0); total = sum(codes.values()) or 1
    ticks = int(open(f"{out}/{name}.ticks").read() or 0)
    secs = s["total"]
    cpu = ticks / int(hz)
    return dict(rps=s["requestsPerSec"], p50=p["p50"] * 1000, p99=p["p99"] * 1000, ok=ok / total, errors=sum(d.get("errorDistribution", {}).values()),
                busy=cpu / secs if secs else 0, us=cpu * 1e6 / max(ok, 1) if ticks else None)
rows = [("direct", load("direct"))]
pairs = []
for r in range(1, int(rounds) + 1):
    pt, gw = load(f"passthrough.{r}"), load(f"mcpgate.{r}")
    rows += [(f"passthrough {r}", pt), (f"mcpgate {r}", gw)]
    pairs.append((gw["rps"] / pt["rps"], gw["p99"] - pt["p99"], pt, gw))
where = "proxy pinned to its own CPU(s), load generator and backend on the others" if pin == "1" else "all processes share the CPUs"
print(f"\n{conns} connections, {duration} per target, {threads} worker thread(s) per server, {rounds} round(s); {where}\n")
print(f"{'target':<15} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'200s':>7} {'errors':>7} {'proxy CPU':>10} {'CPU us/req':>11}")
for n, r in rows:
    busy = f"{r['busy']*100:.0f}%" if r['us'] is not None else "-"
    us = f"{r['us']:.1f}" if r['us'] is not None else "-"
    print(f"{n:<15} {r['rps']:>10.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} {r['ok']*100:>6.1f}% {r['errors']:>7} {busy:>10} {us:>11}")
print()
for i, (ratio, added, pt, gw) in enumerate(pairs, 1):
    cpu = f", CPU per request passthrough / mcpgate {pt['us'] / gw['us']:.3f}" if pt["us"] and gw["us"] else ""
    print(f"round {i}: throughput ratio {ratio:.3f}, added p99 {added:+.3f} ms{cpu}")
ratio = statistics.median(p[0] for p in pairs)
added = statistics.median(p[1] for p in pairs)
print(f"\nmcpgate / passthrough throughput (median of {rounds}): {ratio:.3f}  (target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")
print(f"mcpgate p99 - passthrough p99 (median of {rounds}):    {added:+.3f} ms  (target <= 0.5 ms: {'met' if added <= 0.5 else 'NOT met'})")
PY
