#!/usr/bin/env bash
# One run, three targets on the same REST backend, same load:
#   1. the backend directly            GET /items/42
#   2. a bare Pingora passthrough      GET /items/42 via loadtest/passthrough
#   3. mcpgate tools/call getItem      POST /mcp/bench (OpenAPI tool, with a session)
# Prints requests/s, p50 and p99 for each, and mcpgate's throughput ratio and added p99
# against the bare passthrough. Targets: ratio >= 0.8, added p99 <= 0.5 ms at 64 connections.
#
# As on a multicore host, the proxies get CPUs of their own (PIN=1, the default when
# taskset exists and there are 2+ CPUs): the upper half of the CPUs serves the proxies,
# the lower half runs the load generator and the backend. Each proxy's CPU time per
# request (from /proc) is printed too: it is the cost a request adds, and it tells
# whether a proxy was saturated.
#
# Four measurements, each printed per round:
#   solo    each proxy alone at full load (64 connections), the two alternating over
#           ROUNDS rounds. On a shared or virtual machine these swing by +-15% between
#           runs a minute apart, more than the difference being measured.
#   shared  both proxies at full load at the same time on the same CPU(s), each driven
#           by its own 64 connections (SHARED_ROUNDS rounds). The kernel splits the CPU
#           between them, so their throughput ratio is their cost ratio, and whatever
#           the machine does meanwhile hits both alike. The throughput verdict is the
#           median of these rounds.
#   latency each proxy at the same offered load (RATE_SHARE of the passthrough's solo
#           median, 64 connections, open loop with latency correction), alternating.
#           At full load latency is queueing behind the other 63 connections, i.e.
#           throughput again; at equal load the p99 difference is the latency mcpgate
#           adds. On a VM, though, the machine's own stalls set the tail of each run
#           (the passthrough's p99 alone moves by 2x between rounds).
#   latency, shared
#           both proxies at the same offered load at the same time (SHARED_RATE_SHARE of
#           the passthrough's solo median each, 64 connections each, open loop), ROUNDS
#           rounds: a stall of the machine lands in both tails alike, so the difference
#           is what mcpgate adds. The p99 verdict is the median of these rounds.
#
#   loadtest/bench.sh      # PROFILE=release DURATION=10s CONNECTIONS=64 THREADS=1 ROUNDS=3 SHARED_ROUNDS=5 RATE_SHARE=0.5 SHARED_RATE_SHARE=0.1
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}           # worker threads for backend, passthrough and mcpgate each
ROUNDS=${ROUNDS:-3}
SHARED_ROUNDS=${SHARED_ROUNDS:-5}
RATE_SHARE=${RATE_SHARE:-0.5}
SHARED_RATE_SHARE=${SHARED_RATE_SHARE:-0.1}   # each proxy's rate in the shared latency rounds
PROFILE=${PROFILE:-release}    # cargo profile of all three binaries (`local`: what start.sh runs)
TARGET=${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE
OUT=${OUT:-$PWD/loadtest/out}
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.ticks

command -v oha >/dev/null || cargo install oha --locked
[ -n "${SKIP_BUILD:-}" ] || cargo build --profile "$PROFILE" -p mcpgate -p passthrough -p backend >&2

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
for _ in $(seq 1 100); do curl -sf "http://$ADMIN/readyz" >/dev/null && curl -sf "http://$BACKEND/items/1" >/dev/null && curl -sf "http://$PASS/items/1" >/dev/null && break; sleep 0.1; done

H=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
SID=$(curl -s -D - -o /dev/null "${H[@]}" "http://$GW/mcp/bench" \
  -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
  | awk 'tolower($1)=="mcp-session-id:"{print $2}' | tr -d '\r')
curl -s "${H[@]}" -H "mcp-session-id: $SID" -H 'mcp-protocol-version: 2025-06-18' "http://$GW/mcp/bench" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
CALL='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"getItem","arguments":{"id":42}}}'
sample=$(curl -s "${H[@]}" -H "mcp-session-id: $SID" -H 'mcp-protocol-version: 2025-06-18' "http://$GW/mcp/bench" -d "$CALL")
echo "$sample" | grep -q '"structuredContent"' && ! echo "$sample" | grep -q '"isError":true' || { echo "mcpgate tools/call does not succeed: $sample" >&2; exit 1; }

PASS_ARGS=("http://$PASS/items/42")
GW_ARGS=(-m POST "${H[@]}" -H "mcp-session-id: $SID" -H 'mcp-protocol-version: 2025-06-18' -d "$CALL" "http://$GW/mcp/bench")
cpu_ticks() { # pid -> utime+stime in clock ticks
  [ -n "${1:-}" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0
}
oha_run() { # out-name, oha args... (one load, its JSON kept)
  local name=$1; shift
  "${LOAD[@]}" oha --no-tui --output-format json -c "$CONNECTIONS" "$@" > "$OUT/$name.json"
}
solo() { # name, pid of the proxy (or ""), oha args...
  local name=$1 pid=$2; shift 2
  "${LOAD[@]}" oha --no-tui --output-format json -z 2s -c "$CONNECTIONS" "$@" >/dev/null 2>&1 || true     # warm-up
  local before; before=$(cpu_ticks "$pid")
  oha_run "$name" -z "$DURATION" "$@"
  echo $(( $(cpu_ticks "$pid") - before )) > "$OUT/$name.ticks"
}
shared() { # round: both proxies loaded at once
  local p0 g0
  p0=$(cpu_ticks "$PASS_PID"); g0=$(cpu_ticks "$GW_PID")
  oha_run "shared-pass.$1" -z "$DURATION" "${PASS_ARGS[@]}" & local o=$!
  oha_run "shared-mcpgate.$1" -z "$DURATION" "${GW_ARGS[@]}"
  wait "$o"
  echo $(( $(cpu_ticks "$PASS_PID") - p0 )) > "$OUT/shared-pass.$1.ticks"
  echo $(( $(cpu_ticks "$GW_PID") - g0 )) > "$OUT/shared-mcpgate.$1.ticks"
}

solo direct "" "http://$BACKEND/items/42"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then solo "passthrough.$r" "$PASS_PID" "${PASS_ARGS[@]}"; solo "mcpgate.$r" "$GW_PID" "${GW_ARGS[@]}"
  else solo "mcpgate.$r" "$GW_PID" "${GW_ARGS[@]}"; solo "passthrough.$r" "$PASS_PID" "${PASS_ARGS[@]}"; fi
done
for r in $(seq 1 "$SHARED_ROUNDS"); do shared "$r"; done
RATE=$(python3 - "$OUT" "$ROUNDS" "$RATE_SHARE" <<'PY'
import json, statistics, sys
out, rounds, share = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
print(int(share * statistics.median(json.load(open(f"{out}/passthrough.{r}.json"))["summary"]["requestsPerSec"] for r in range(1, rounds + 1))))
PY
)
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then oha_run "latency-pass.$r" -z "$DURATION" -q "$RATE" --latency-correction "${PASS_ARGS[@]}"; oha_run "latency-mcpgate.$r" -z "$DURATION" -q "$RATE" --latency-correction "${GW_ARGS[@]}"
  else oha_run "latency-mcpgate.$r" -z "$DURATION" -q "$RATE" --latency-correction "${GW_ARGS[@]}"; oha_run "latency-pass.$r" -z "$DURATION" -q "$RATE" --latency-correction "${PASS_ARGS[@]}"; fi
done

# Both at the same offered load at the same time: a stall of the machine lands in both
# tails alike, so the p99 difference is what mcpgate adds, not when the VM hiccuped.
SHARED_RATE=$(python3 -c "print(int($RATE * $SHARED_RATE_SHARE / $RATE_SHARE))")
for r in $(seq 1 "$ROUNDS"); do
  oha_run "latency-shared-pass.$r" -z "$DURATION" -q "$SHARED_RATE" --latency-correction "${PASS_ARGS[@]}" & o=$!
  oha_run "latency-shared-mcpgate.$r" -z "$DURATION" -q "$SHARED_RATE" --latency-correction "${GW_ARGS[@]}"
  wait "$o"
done

python3 - "$OUT" "$DURATION" "$CONNECTIONS" "$THREADS" "$PIN" "$(getconf CLK_TCK)" "$ROUNDS" "$SHARED_ROUNDS" "$RATE" "$SHARED_RATE" <<'PY'
import json, os, statistics, sys
out, duration, conns, threads, pin, hz, rounds, shared_rounds, rate, shared_rate = sys.argv[1:]
rounds, shared_rounds = int(rounds), int(shared_rounds)
def load(name):
    d = json.load(open(f"{out}/{name}.json"))
    s = d["summary"]; p = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution", {})
    ok = codes.get("200", 0); total = sum(codes.values()) or 1
    path = f"{out}/{name}.ticks"
    ticks = int(open(path).read() or 0) if os.path.exists(path) else 0
    secs = s["total"]
    cpu = ticks / int(hz)
    return dict(rps=s["requestsPerSec"], p50=p["p50"] * 1000, p99=p["p99"] * 1000, ok=ok / total, errors=errors(d),
                busy=cpu / secs if secs else 0, us=cpu * 1e6 / max(ok, 1) if ticks else None)
def errors(d):
    # Requests in flight when a timed run ends are cut off, not failed.
    return sum(v for k, v in d.get("errorDistribution", {}).items() if k != "aborted due to deadline")
failed = []   # runs with failed or non-200 requests: a fast failure is not a fast call
def row(n, r):
    if r["errors"] or r["ok"] < 1:
        failed.append(f"{section}: {n}")
    busy = f"{r['busy']*100:.0f}%" if r['us'] is not None else "-"
    us = f"{r['us']:.1f}" if r['us'] is not None else "-"
    print(f"{n:<18} {r['rps']:>10.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} {r['ok']*100:>6.1f}% {r['errors']:>7} {busy:>10} {us:>11}")
where = "proxies pinned to their own CPU(s), load generator and backend on the others" if pin == "1" else "all processes share the CPUs"
print(f"\n{conns} connections, {duration} per run, {threads} worker thread(s) per server; {where}")
head = f"{'target':<18} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'200s':>7} {'errors':>7} {'proxy CPU':>10} {'CPU us/req':>11}"
section = "solo"
print(f"\n-- solo: each proxy alone at full load, {rounds} alternating rounds\n{head}")
row("direct", load("direct"))
solo = []
for r in range(1, rounds + 1):
    pt, gw = load(f"passthrough.{r}"), load(f"mcpgate.{r}")
    row(f"passthrough {r}", pt); row(f"mcpgate {r}", gw)
    solo.append((gw["rps"] / pt["rps"], gw["p99"] - pt["p99"]))
print("per round, throughput ratio: " + " ".join(f"{x[0]:.3f}" for x in solo) + "   added p99 (ms, at full load): " + " ".join(f"{x[1]:+.3f}" for x in solo))
section = "shared"
print(f"\n-- shared: both proxies at full load at once on the same CPU(s), {shared_rounds} rounds\n{head}")
shared = []
for r in range(1, shared_rounds + 1):
    pt, gw = load(f"shared-pass.{r}"), load(f"shared-mcpgate.{r}")
    row(f"passthrough {r}", pt); row(f"mcpgate {r}", gw)
    shared.append(gw["rps"] / pt["rps"])
print("per round, throughput ratio: " + " ".join(f"{x:.3f}" for x in shared))
section = "latency"
print(f"\n-- latency: both at the same offered load, {rate} req/s ({conns} connections, open loop), {rounds} alternating rounds\n{head}")
lat = []
for r in range(1, rounds + 1):
    pt, gw = load(f"latency-pass.{r}"), load(f"latency-mcpgate.{r}")
    row(f"passthrough {r}", pt); row(f"mcpgate {r}", gw)
    lat.append(gw["p99"] - pt["p99"])
print("per round, added p99 (ms): " + " ".join(f"{x:+.3f}" for x in lat))
section = "latency, shared"
print(f"\n-- latency, shared: both at {shared_rate} req/s each at the same time ({conns} connections each, open loop), {rounds} rounds\n{head}")
slat = []
for r in range(1, rounds + 1):
    pt, gw = load(f"latency-shared-pass.{r}"), load(f"latency-shared-mcpgate.{r}")
    row(f"passthrough {r}", pt); row(f"mcpgate {r}", gw)
    slat.append((gw["p99"] - pt["p99"], gw["p50"] - pt["p50"]))
print("per round, added p99 (ms): " + " ".join(f"{x[0]:+.3f}" for x in slat) + "   added p50 (ms): " + " ".join(f"{x[1]:+.3f}" for x in slat))
def verdict(ok):
    if failed:
        return "not valid: failed requests in " + ", ".join(failed)
    return "met" if ok else "NOT met"
ratio = statistics.median(shared)
added = statistics.median(lat)
print(f"\nmcpgate / passthrough throughput, shared CPU (median of {shared_rounds}): {ratio:.3f}  (target >= 0.8: {verdict(ratio >= 0.8)})")
print(f"mcpgate / passthrough throughput, solo (median of {rounds}):        {statistics.median(x[0] for x in solo):.3f}  (each alone; noisy on shared machines)")
print(f"mcpgate p99 - passthrough p99 at {rate} req/s, alternating (median of {rounds}): {added:+.3f} ms  (the machine's stalls included)")
sadded = statistics.median(x[0] for x in slat)
print(f"mcpgate p99 - passthrough p99, both at {shared_rate} req/s at once (median of {rounds}): {sadded:+.3f} ms  (target <= 0.5 ms: {verdict(sadded <= 0.5)})")
PY
