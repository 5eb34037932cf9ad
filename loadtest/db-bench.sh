#!/usr/bin/env bash
# The database `query` tool on a primary-key SELECT through mcpgate (MCP tools/call over
# HTTP with a session, driven by oha) vs. the same SELECT through sqlx directly with the
# same pool size, in one run. Prints both throughputs, p50/p99 and the ratio, for
# reference only: a network service against an in-process library call is no target. The
# comparison that is one is against the peer a user would deploy: toolbox-bench.sh.
#
# Both sides get the same pool size, the same number of runtime worker threads (THREADS)
# and the same TLS support (sqlx-direct is built with the gateway's TLS feature, so the
# same URL negotiates the same transport).
#
# On a shared or virtual machine throughput drifts by tens of percent within minutes, so
# the gateway and both sqlx runs are measured in ROUNDS back-to-back rounds (the order
# alternating) and the verdict is on the median round's ratio.
#
#   loadtest/db-bench.sh            # DURATION=10 CONNECTIONS=64 POOL=8 THREADS=1 ROUNDS=3, PostgreSQL on :5432
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
POOL=${POOL:-8}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}
# A least-privileged role: over a superuser the gateway does not serve `query` at all.
PG=${PG:-postgres://mcpgate_bench:bench@127.0.0.1:5432/test}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}/release
OUT=${OUT:-$PWD/loadtest/out}
mkdir -p "$OUT"
command -v oha >/dev/null || cargo install oha --locked
[ -n "${SKIP_BUILD:-}" ] || cargo build --release -p mcpgate -p sqlx-direct >&2
psql "$PG_ADMIN" -qX -f loadtest/bench-role.sql >&2
psql "$PG_ADMIN" -qX >&2 <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS mcpgate_bench;
CREATE TABLE mcpgate_bench (id int PRIMARY KEY, name text);
INSERT INTO mcpgate_bench SELECT g, 'row ' || g FROM generate_series(1, 1000) g;
GRANT SELECT ON mcpgate_bench TO mcpgate_bench;
SQL

GW=127.0.0.1:18400 ADMIN=127.0.0.1:18401
cat > "$OUT/db.yaml" <<YAML
listen: ["$GW"]
admin: {listen: "$ADMIN"}
pingora: {threads: $THREADS}
servers:
  - name: db
    type: database
    source: {url: "$PG", pool_size: $POOL}
YAML
RUST_LOG=warn "$TARGET/mcpgate" --config "$OUT/db.yaml" >"$OUT/db-gw.log" 2>&1 & GWPID=$!
# SIGINT: Pingora's fast shutdown (SIGTERM would drain for minutes).
trap 'kill -INT $GWPID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
H=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
SID=$(curl -s -D - -o /dev/null "${H[@]}" "http://$GW/mcp/db" -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' | awk 'tolower($1)=="mcp-session-id:"{print $2}' | tr -d '\r')
CALL='{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"query","arguments":{"sql":"SELECT id, name FROM mcpgate_bench WHERE id = $1","params":[42]}}}'
curl -s "${H[@]}" -H "mcp-session-id: $SID" "http://$GW/mcp/db" -d "$CALL" | grep -q '"row 42"' || { echo "the query tool does not answer" >&2; exit 1; }

oha --no-tui --output-format json -z 2s -c "$CONNECTIONS" -m POST "${H[@]}" -H "mcp-session-id: $SID" -d "$CALL" "http://$GW/mcp/db" >/dev/null 2>&1 || true
gateway() { oha --no-tui --output-format json -z "${DURATION}s" -c "$CONNECTIONS" -m POST "${H[@]}" -H "mcp-session-id: $SID" -d "$CALL" "http://$GW/mcp/db" > "$OUT/db-gateway-$1.json"; }
direct() { "$TARGET/sqlx-direct" "$PG" "$POOL" "$CONNECTIONS" "$DURATION" default "$THREADS" > "$OUT/db-direct-$1.json"; }
lean() { "$TARGET/sqlx-direct" "$PG" "$POOL" "$CONNECTIONS" "$DURATION" lean "$THREADS" > "$OUT/db-direct-lean-$1.json"; }
# Rounds back to back, the order alternating, so drift on a shared machine favours no side.
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then gateway "$r"; direct "$r"; lean "$r"; else lean "$r"; direct "$r"; gateway "$r"; fi
done

python3 - "$OUT" "$CONNECTIONS" "$POOL" "$DURATION" "$THREADS" "$ROUNDS" <<'PY'
import json, statistics, sys
out, conns, pool, dur, threads, rounds = sys.argv[1:]
print(f"\nPK SELECT, {conns} concurrent clients, pool of {pool}, {threads} worker thread(s) each side, {dur}s per run\n")
print(f"{'round':<6} {'path':<20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
ratios, lean_ratios = [], []
for r in range(1, int(rounds) + 1):
    g = json.load(open(f"{out}/db-gateway-{r}.json")); d = json.load(open(f"{out}/db-direct-{r}.json")); t = json.load(open(f"{out}/db-direct-lean-{r}.json"))
    codes = g.get("statusCodeDistribution", {})
    ok = codes.get("200", 0) == sum(codes.values())
    gw = dict(rps=g["summary"]["requestsPerSec"], p50=g["latencyPercentiles"]["p50"] * 1000, p99=g["latencyPercentiles"]["p99"] * 1000)
    print(f"{r:<6} {'sqlx directly':<20} {d['rps']:>9.0f} {d['p50_ms']:>8.3f} {d['p99_ms']:>8.3f}   (sqlx's default pool)")
    print(f"{r:<6} {'sqlx, lean pool':<20} {t['rps']:>9.0f} {t['p50_ms']:>8.3f} {t['p99_ms']:>8.3f}   (acquire ping only after 1 s idle)")
    print(f"{r:<6} {'mcpgate query tool':<20} {gw['rps']:>9.0f} {gw['p50']:>8.3f} {gw['p99']:>8.3f}   (HTTP 200: {codes.get('200', 0)} of {sum(codes.values())}{'' if ok else ' - FAILURES'})")
    ratios.append(gw["rps"] / d["rps"]); lean_ratios.append(gw["rps"] / t["rps"])
print("\nper round, mcpgate / sqlx default: " + " ".join(f"{x:.3f}" for x in ratios) + "   / sqlx lean: " + " ".join(f"{x:.3f}" for x in lean_ratios))
r = statistics.median(ratios)
print(f"mcpgate / sqlx throughput (median of {rounds}):          {r:.3f}  (for reference; the target is against Toolbox: toolbox-bench.sh)")
print(f"mcpgate / sqlx lean pool (median of {rounds}):           {statistics.median(lean_ratios):.3f}  (sqlx's leanest setting, no HTTP, no transaction)")
PY
