#!/usr/bin/env bash
# mcpgate against the peer a user would deploy instead: Google MCP Toolbox (the binary
# npm's @toolbox-sdk/server-linux-x64 ships), serving the same tools.yaml on the same
# PostgreSQL, under the same MCP client load, in one run.
#
# Two tools, each a tools/call of one row out of a 10,000-row table:
#   custom  a `postgres-sql` tool from the tools.yaml both servers load:
#           SELECT id, name FROM mcpgate_tb_rows WHERE id = $1
#   query   mcpgate's instance `query` tool (in a read-only transaction, which Toolbox
#           does not have) against Toolbox's `postgres-execute-sql`, the same SQL text.
# and, for mcpgate only, the custom tool on an `access: read-write` server (it runs in
# autocommit there), to show it costs what the read-only one does.
#
# Both servers run on the same CPUs (SERVER_CPUS: the upper half, PIN=1) with the same
# parallelism (mcpgate `pingora.threads` = Toolbox GOMAXPROCS = CPUS) and pools of the
# same size (POOL; Toolbox's pgx pool holds max(4, CPUs) connections); wrk and
# PostgreSQL get the lower half. The database account is least-privileged for both. Each
# server gets a session where it issues one (Toolbox is stateless). wrk checks every
# response (HTTP 200, the row's text, no isError): a fast error is not a fast call.
#
# Printed per run: req/s, p50, p99 and the server's CPU time per call (utime+stime from
# /proc over the run / calls). Measured in ROUNDS solo rounds, the two servers
# alternating, then SHARED_ROUNDS rounds with both loaded at once on the same CPUs (the
# kernel splits them, so the throughput ratio is the cost ratio and the VM's drift hits
# both alike). Targets: throughput >= Toolbox's in every round; mcpgate's CPU per call
# <= 0.35 x Toolbox's (median of the solo rounds), for both tools.
#
#   loadtest/toolbox-bench.sh    # DURATION=8 CONNECTIONS=64 ROUNDS=3 SHARED_ROUNDS=3 POOL=4 SETTLE=2 TOOLBOX_VERSION=1.12.0
#   PIN=0 CPUS=2 loadtest/toolbox-bench.sh    # everything on all CPUs, 2-way parallel servers
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-3}
SHARED_ROUNDS=${SHARED_ROUNDS:-3}
POOL=${POOL:-4}
TOOLBOX_VERSION=${TOOLBOX_VERSION:-1.12.0}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}/release
OUT=${OUT:-$PWD/loadtest/out}/toolbox
mkdir -p "$OUT"
rm -f "$OUT"/*.wrk "$OUT"/*.ticks

command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq wrk >/dev/null; }
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p mcpgate >&2
TB=$OUT/npm/node_modules/@toolbox-sdk/server-linux-x64/bin/toolbox
if [ ! -x "$TB" ] || ! "$TB" --version 2>/dev/null | grep -q "$TOOLBOX_VERSION"; then
  npm install --silent --no-audit --no-fund --prefix "$OUT/npm" "@toolbox-sdk/server-linux-x64@$TOOLBOX_VERSION" >&2
fi

NCPU=$(nproc)
PIN=${PIN:-$([ "$NCPU" -ge 2 ] && command -v taskset >/dev/null && echo 1 || echo 0)}
LOAD=() SERVER=()
if [ "$PIN" = 1 ]; then
  half=$((NCPU / 2))
  LOAD=(taskset -c "0-$((half - 1))") SERVER=(taskset -c "$half-$((NCPU - 1))")
  CPUS=${CPUS:-$((NCPU - half))}
else
  CPUS=${CPUS:-$NCPU}
fi

# The least-privileged role (loadtest/bench-role.sql) and the table.
psql "$PG_ADMIN" -qX -f loadtest/bench-role.sql >&2
psql "$PG_ADMIN" -qX >&2 <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS mcpgate_tb_rows;
CREATE TABLE mcpgate_tb_rows (id int PRIMARY KEY, name text);
INSERT INTO mcpgate_tb_rows SELECT g, 'row ' || g FROM generate_series(1, 10000) g;
GRANT SELECT ON mcpgate_tb_rows TO mcpgate_bench;
ANALYZE mcpgate_tb_rows;
SQL

cat > "$OUT/tools.yaml" <<'YAML'
sources:
  bench-pg:
    kind: postgres
    host: 127.0.0.1
    port: 5432
    database: test
    user: mcpgate_bench
    password: bench
tools:
  get-row:
    kind: postgres-sql
    source: bench-pg
    description: One row of the benchmark table by id.
    parameters:
      - {name: id, type: integer, description: The row's id}
    statement: SELECT id, name FROM mcpgate_tb_rows WHERE id = $1
YAML
# Toolbox's free-SQL tool: mcpgate serves its own `query` instead (a Toolbox
# `postgres-execute-sql` entry is refused by mcpgate, by design).
cat > "$OUT/toolbox-extra.yaml" <<'YAML'
tools:
  execute-sql:
    kind: postgres-execute-sql
    source: bench-pg
    description: Run one SQL statement.
YAML
GW=127.0.0.1:18500 ADMIN=127.0.0.1:18501 TBADDR=127.0.0.1 TBPORT=18502
cat > "$OUT/mcpgate.yaml" <<YAML
listen: ["$GW"]
admin: {listen: "$ADMIN"}
pingora: {threads: $CPUS}
servers:
  - name: tb
    type: database
    source: {url: "postgres://mcpgate_bench:bench@127.0.0.1:5432/test", pool_size: $POOL}
    tools_file: tools.yaml
  - name: tb-rw
    type: database
    access: read-write
    source: {url: "postgres://mcpgate_bench:bench@127.0.0.1:5432/test", pool_size: $POOL}
    tools_file: tools.yaml
YAML

# Pingora listens with SO_REUSEPORT: a gateway left over from an earlier run would share
# the port and take half the load. Refuse to measure then.
for port in 18500 18501 18502; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is in use (a server left over from an earlier run?)" >&2; exit 1; fi
done
RUST_LOG=warn "${SERVER[@]}" "$TARGET/mcpgate" --config "$OUT/mcpgate.yaml" >"$OUT/mcpgate.log" 2>&1 & GWPID=$!
# Toolbox merges the shared tools.yaml with its extra file.
GOMAXPROCS=$CPUS "${SERVER[@]}" "$TB" --configs "$OUT/tools.yaml,$OUT/toolbox-extra.yaml" --disable-version-check --disable-reload --log-level warn \
  --address "$TBADDR" --port "$TBPORT" >"$OUT/toolbox.log" 2>&1 & TBPID=$!
# SIGINT: Pingora's fast shutdown (SIGTERM would drain for minutes).
trap 'kill -INT $GWPID 2>/dev/null || true; kill $TBPID 2>/dev/null || true' EXIT

H=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}'
for _ in $(seq 1 150); do
  curl -sf "http://$ADMIN/readyz" >/dev/null && curl -sf "${H[@]}" "http://$TBADDR:$TBPORT/mcp" -d "$INIT" >/dev/null && break
  sleep 0.1
done
session() { curl -s -D - -o /dev/null "${H[@]}" "$1" -d "$INIT" | awk 'tolower($1)=="mcp-session-id:"{print $2}' | tr -d '\r'; }
SID_TB=$(session "http://$GW/mcp/tb") SID_RW=$(session "http://$GW/mcp/tb-rw") SID_TOOLBOX=$(session "http://$TBADDR:$TBPORT/mcp")

call() { printf '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"%s","arguments":%s}}' "$1" "$2"; }
SQL='SELECT id, name FROM mcpgate_tb_rows WHERE id = 42'
CUSTOM=$(call get-row '{"id":42}')
GW_QUERY=$(call query "{\"sql\":\"$SQL\"}")
TB_QUERY=$(call execute-sql "{\"sql\":\"$SQL\"}")
EXPECT='row 42'
# One checked call of each before any load: a server that does not answer stops the run.
for probe in "http://$GW/mcp/tb|$SID_TB|$CUSTOM" "http://$GW/mcp/tb|$SID_TB|$GW_QUERY" "http://$GW/mcp/tb-rw|$SID_RW|$CUSTOM" \
             "http://$TBADDR:$TBPORT/mcp||$CUSTOM" "http://$TBADDR:$TBPORT/mcp||$TB_QUERY"; do
  IFS='|' read -r url sid body <<<"$probe"
  resp=$(curl -s "${H[@]}" -H 'mcp-protocol-version: 2025-06-18' ${sid:+-H "mcp-session-id: $sid"} "$url" -d "$body")
  grep -q "$EXPECT" <<<"$resp" && ! grep -q '"isError":true' <<<"$resp" || { echo "no valid answer from $url: $resp" >&2; exit 1; }
done

ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# measure NAME PID URL SESSION BODY: one wrk run; its JSON line and the server's CPU ticks.
measure() {
  local t0 t1
  # A moment for the last run's connections and the database to settle.
  sleep "${SETTLE:-2}"
  t0=$(ticks "$2")
  MCP_BODY="$5" MCP_SESSION="$4" MCP_EXPECT="$EXPECT" "${LOAD[@]}" wrk -t 1 -c "$CONNECTIONS" -d "${DURATION}s" --latency \
    -s loadtest/wrk/mcp_call.lua "$3" | tail -n 1 >"$OUT/$1.wrk"
  t1=$(ticks "$2")
  echo $((t1 - t0)) >"$OUT/$1.ticks"
}
gw_custom() { measure "$1-mcpgate-custom" "$GWPID" "http://$GW/mcp/tb" "$SID_TB" "$CUSTOM"; }
gw_query() { measure "$1-mcpgate-query" "$GWPID" "http://$GW/mcp/tb" "$SID_TB" "$GW_QUERY"; }
gw_rw() { measure "$1-mcpgate-custom-rw" "$GWPID" "http://$GW/mcp/tb-rw" "$SID_RW" "$CUSTOM"; }
tb_custom() { measure "$1-toolbox-custom" "$TBPID" "http://$TBADDR:$TBPORT/mcp" "$SID_TOOLBOX" "$CUSTOM"; }
tb_query() { measure "$1-toolbox-query" "$TBPID" "http://$TBADDR:$TBPORT/mcp" "$SID_TOOLBOX" "$TB_QUERY"; }

echo "warming up" >&2
DURATION=2 gw_custom warm; DURATION=2 tb_custom warm; DURATION=2 gw_query warm; DURATION=2 tb_query warm; DURATION=2 gw_rw warm
for r in $(seq 1 "$ROUNDS"); do
  echo "solo round $r of $ROUNDS" >&2
  # The order alternates, so the machine's drift favours neither server.
  if [ $((r % 2)) = 1 ]; then gw_custom "$r"; tb_custom "$r"; tb_query "$r"; gw_query "$r"; gw_rw "$r"
  else gw_rw "$r"; tb_custom "$r"; gw_custom "$r"; gw_query "$r"; tb_query "$r"; fi
done
for r in $(seq 1 "$SHARED_ROUNDS"); do
  echo "shared round $r of $SHARED_ROUNDS" >&2
  gw_custom "s$r" & a=$!; tb_custom "s$r" & b=$!; wait "$a" "$b"
  gw_query "s$r" & a=$!; tb_query "s$r" & b=$!; wait "$a" "$b"
done

python3 - "$OUT" "$ROUNDS" "$SHARED_ROUNDS" "$CONNECTIONS" "$DURATION" "$CPUS" "$POOL" "$(getconf CLK_TCK)" "$TOOLBOX_VERSION" <<'PY'
import json, statistics, sys
out, rounds, shared, conns, dur, cpus, pool, hz, version = sys.argv[1:]
rounds, shared, hz = int(rounds), int(shared), int(hz)
invalid = []
def run(name):
    w = json.load(open(f"{out}/{name}.wrk"))
    ticks = int(open(f"{out}/{name}.ticks").read())
    calls = w["good"] + w["bad"]
    if w["bad"] or w["socket_errors"]:
        invalid.append(f"{name}: {w['bad']} bad answers, {w['socket_errors']} socket errors ({w['bad_sample'][:120]})")
    return dict(rps=w["good"] / (w["duration_us"] / 1e6), p50=w["p50_us"] / 1000, p99=w["p99_us"] / 1000,
                cpu=ticks / hz * 1e6 / calls if calls else float("nan"), bad=w["bad"])
print(f"\nmcpgate vs Google MCP Toolbox {version}: tools/call of one row (10,000-row table), {conns} connections, "
      f"{cpus} CPU(s) and a pool of {pool} each, {dur}s per run\n")
print(f"{'round':<6} {'tool':<8} {'server':<22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/call':>12}")
ratio = {"custom": [], "query": []}; cpu_ratio = {"custom": [], "query": []}; shared_ratio = {"custom": [], "query": []}
rw = []
for r in [str(i) for i in range(1, rounds + 1)] + [f"s{i}" for i in range(1, shared + 1)]:
    for tool in ("custom", "query"):
        g, t = run(f"{r}-mcpgate-{tool}"), run(f"{r}-toolbox-{tool}")
        label = {"custom": "get-row (postgres-sql)", "query": "query / execute-sql"}[tool]
        print(f"{r:<6} {tool:<8} {'mcpgate':<22} {g['rps']:>9.0f} {g['p50']:>8.2f} {g['p99']:>8.2f} {g['cpu']:>12.1f}")
        print(f"{r:<6} {tool:<8} {'Toolbox':<22} {t['rps']:>9.0f} {t['p50']:>8.2f} {t['p99']:>8.2f} {t['cpu']:>12.1f}")
        (shared_ratio if r.startswith("s") else ratio)[tool].append(g["rps"] / t["rps"])
        if not r.startswith("s"):
            cpu_ratio[tool].append(g["cpu"] / t["cpu"])
    if not r.startswith("s"):
        x = run(f"{r}-mcpgate-custom-rw")
        print(f"{r:<6} {'custom':<8} {'mcpgate, read-write':<22} {x['rps']:>9.0f} {x['p50']:>8.2f} {x['p99']:>8.2f} {x['cpu']:>12.1f}")
        rw.append((x["rps"] / run(f"{r}-mcpgate-custom")["rps"], x["cpu"] / run(f"{r}-mcpgate-custom")["cpu"]))
print()
ok = True
for tool in ("custom", "query"):
    every = ratio[tool] + shared_ratio[tool]
    t_ok = min(every) >= 1.0
    c = statistics.median(cpu_ratio[tool])
    c_ok = c <= 0.35
    ok = ok and t_ok and c_ok
    print(f"{tool:<7} throughput mcpgate/Toolbox, solo: {' '.join(f'{x:.2f}' for x in ratio[tool])}; shared: {' '.join(f'{x:.2f}' for x in shared_ratio[tool])}"
          f"  (target >= 1 in every round: {'met' if t_ok else 'NOT met'})")
    print(f"{tool:<7} CPU per call mcpgate/Toolbox, solo: {' '.join(f'{x:.3f}' for x in cpu_ratio[tool])}; median {c:.3f}  (target <= 0.35: {'met' if c_ok else 'NOT met'})")
print("read-write server's custom tool vs read-only's, req/s and CPU per call: " + "; ".join(f"{a:.2f} {b:.2f}" for a, b in rw))
if invalid:
    print("\nNOT VALID: some calls did not answer correctly:\n  " + "\n  ".join(invalid))
PY
