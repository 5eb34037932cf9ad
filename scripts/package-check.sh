#!/usr/bin/env bash
# Checks the Debian package end to end: builds it (scripts/package.sh), installs it, starts
# the service the way its unit does, calls tools through it over MCP with curl, checks what
# the service owns, reinstalls it (with a zero-downtime binary upgrade), stops it and purges it.
#   scripts/package-check.sh [--profile NAME]     (as package.sh; default: release)
# Where systemd is PID 1 it starts mcpgate.service; elsewhere (containers, CI) it runs the
# unit's ExecStartPre/ExecStart itself: same user, environment file, umask and directory
# (the unit's sandboxing needs systemd and is not applied then).
# Needs root or sudo, and refuses to run where mcpgate is already installed or 8080/9090
# are taken: it purges its own install at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
UNIT=/usr/lib/systemd/system/mcpgate.service
ENV_FILE=/etc/mcpgate/mcpgate.env
SQL=/usr/share/mcpgate/demo/hotels.sql
# The shipped config's listeners (systemd/mcpgate.yaml.example).
MCP=http://127.0.0.1:8080
ADMIN=http://127.0.0.1:9090

step() { printf '\n==== package: %s\n' "$*"; }
fail() { echo "package-check: $*" >&2; exit 1; }
owner() { stat -c '%U:%G %a' "$1"; }
expect_owner() { [ "$(owner "$1")" = "$2" ] || fail "$1 is $(owner "$1"), expected $2"; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

status=$(dpkg-query -W -f='${db:Status-Status}' mcpgate 2>/dev/null || true)
[ -z "$status" ] || [ "$status" = not-installed ] || fail "mcpgate is already on this host (dpkg status: $status); this check installs and purges its own copy, so remove it first (dpkg --purge mcpgate)"
for port in 8080 9090; do
  listening $port && fail "something already listens on 127.0.0.1:$port, which the shipped config uses"
done

SYSTEMD=no
if state=$(systemctl is-system-running 2>/dev/null) || [ "$state" = running ] || [ "$state" = degraded ]; then SYSTEMD=yes; fi

PID="" INSTALLED=no
cleanup() { # on failure: stop what this check started (SIGTERM drains for up to 15 s), then purge
  local pids p alive
  pids="$PID ${new:-} $(cat /run/mcpgate/mcpgate.pid 2>/dev/null || true)"
  for p in $pids; do $SUDO kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 300); do
    alive=no
    for p in $pids; do kill -0 "$p" 2>/dev/null && alive=yes; done
    [ $alive = yes ] || break
    sleep 0.1
  done
  for p in $pids; do $SUDO kill -KILL "$p" 2>/dev/null || true; done
  if [ $INSTALLED = yes ]; then $SUDO dpkg --purge mcpgate >/dev/null || true; fi
}
trap cleanup EXIT

step "build"
DEB=$(scripts/package.sh "$@" | tail -n1)
[ -f "$DEB" ] || fail "package.sh did not print the path of a .deb (got '$DEB')"
dpkg-deb --info "$DEB" | sed -n '/Package:/,$p'
dpkg-deb --contents "$DEB"

step "install"
INSTALLED=yes
if ! $SUDO dpkg -i "$DEB"; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -f -y -qq
fi
[ "$(dpkg-query -W -f='${db:Status-Status}' mcpgate)" = installed ] || fail "mcpgate did not install"

step "what the package set up"
IFS=: read -r _ _ _ _ _ home shell < <(getent passwd mcpgate) || fail "no mcpgate user"
[ "$home" = /var/lib/mcpgate ] || fail "mcpgate's home is $home"
[ "$shell" = /usr/sbin/nologin ] || fail "mcpgate's shell is $shell"
expect_owner /var/lib/mcpgate "mcpgate:mcpgate 755"
expect_owner /var/log/mcpgate "mcpgate:mcpgate 755"
expect_owner /run/mcpgate "mcpgate:mcpgate 755"
expect_owner "$ENV_FILE" "root:mcpgate 640"
expect_owner /etc/mcpgate/mcpgate.yaml "root:root 644"
KEY=$($SUDO sed -n 's/^MCPGATE_SESSION_KEY=//p' "$ENV_FILE")
[ "$(printf %s "$KEY" | base64 -d | wc -c)" -eq 32 ] || fail "$ENV_FILE does not hold a 32-byte base64 session key"
dpkg-query -W -f='${Conffiles}\n' mcpgate | grep -q ' /etc/mcpgate/mcpgate.yaml ' || fail "/etc/mcpgate/mcpgate.yaml is not a conffile"
for f in /usr/bin/mcpgate "$UNIT" /usr/lib/tmpfiles.d/mcpgate.conf /usr/share/mcpgate/openapi/gateway-admin.yaml "$SQL"; do
  [ -f "$f" ] || fail "$f is missing"
done
echo "user, directories, session key, conffile and data files: OK"

# The unit's settings, read from the installed file so this runs what systemd would.
unit() { sed -n "s/^$1=//p" "$UNIT" | tail -n1; }
run_as_unit() { # the command line of one Exec*= setting
  local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin HOME="$home" USER="$(unit User)" LOGNAME="$(unit User)" SHELL="$shell")   # as systemd sets them
  local line file
  file=$(unit EnvironmentFile); file=${file#-}
  if [ -n "$file" ] && $SUDO test -f "$file"; then
    while IFS= read -r line; do
      case "$line" in '' | '#'* | ';'*) ;; *=*) envs+=("$line") ;; esac
    done < <($SUDO cat "$file")
  fi
  local dir mask
  dir=$(unit WorkingDirectory); mask=$(unit UMask)   # systemd's defaults: / and 0022
  [ "${1:0:1}" = / ] || fail "cannot run '$1' like systemd (a prefixed or relative command)"
  # shellcheck disable=SC2086 # the unit's command line is split into words as systemd does (no quotes in it)
  (cd "${dir:-/}" && umask "${mask:-0022}" && exec $SUDO "${LIMIT[@]}" env -i "${envs[@]}" \
    setpriv --reuid="$(unit User)" --regid="$(unit Group)" --init-groups -- $1)
}

step "start (systemd as PID 1: $SYSTEMD)"
if [ $SYSTEMD = yes ]; then
  $SUDO systemctl start mcpgate.service
  PID=$(systemctl show -p MainPID --value mcpgate.service)
else
  nofile=$(unit LimitNOFILE); nofile=${nofile:-1024:524288}   # systemd's default
  LIMIT=(prlimit --nofile="$nofile")
  if ! $SUDO "${LIMIT[@]}" true 2>/dev/null; then   # a container without CAP_SYS_RESOURCE
    echo "package-check: cannot raise the open-file limit to $nofile here; running with $(ulimit -Hn)" >&2
    LIMIT=()
  fi
  run_as_unit "$(unit ExecStartPre)"
  run_as_unit "$(unit ExecStart)"
  pid_file=$(unit PIDFile)
  for _ in $(seq 100); do [ -s "$pid_file" ] && break; sleep 0.1; done
  PID=$(cat "$pid_file")
fi
for _ in $(seq 300); do curl -fsS -o /dev/null "$ADMIN/readyz" 2>/dev/null && break; sleep 0.1; done
curl -fsS "$ADMIN/readyz" >/dev/null || fail "not ready after 30 s; log: $($SUDO tail -n 20 /var/log/mcpgate/mcpgate.log 2>&1)"
[ "$(ps -o user= -p "$PID")" = mcpgate ] || fail "the service (pid $PID) runs as $(ps -o user= -p "$PID"), not mcpgate"
echo "pid $PID, user mcpgate, ready"

# One MCP session on a server, then one tools/call; prints the JSON-RPC response.
call_tool() { # server tool arguments-json
  local hdrs sid h=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream')
  hdrs=$(mktemp)
  curl -fsS -D "$hdrs" -o /dev/null "${h[@]}" "$MCP/mcp/$1" \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"package-check","version":"1"}}}'
  sid=$(awk 'tolower($1)=="mcp-session-id:"{print $2}' "$hdrs" | tr -d '\r'); rm -f "$hdrs"
  [ -n "$sid" ] || fail "initialize on /mcp/$1 returned no session"
  h+=(-H "mcp-session-id: $sid" -H 'mcp-protocol-version: 2025-06-18')
  curl -fsS -o /dev/null "${h[@]}" "$MCP/mcp/$1" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'
  curl -fsS "${h[@]}" "$MCP/mcp/$1" -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"$2\",\"arguments\":$3}}"
}

step "tools/call through the installed gateway"
# The demo database's answer must be what SQLite itself makes of the installed seed script.
QUERY='SELECT name, city, stars FROM hotels WHERE stars >= ? ORDER BY name'
call_tool demo-db query "{\"sql\":\"$QUERY\",\"params\":[4]}" | python3 -c '
import json, sqlite3, sys
sql, query = sys.argv[1], sys.argv[2]
reply = sys.stdin.read()
result = json.loads(reply)["result"]
assert not result.get("isError"), reply
db = sqlite3.connect(":memory:")
db.executescript(open(sql).read())
want = [list(r) for r in db.execute(query, [4])]
assert want, "the seed script has no hotel with 4 stars or more"
assert result["structuredContent"]["rows"] == want, (reply, want)
lines = result["content"][0]["text"].splitlines()   # the text copy: a header, a line per row
assert [" | ".join(map(str, r)) for r in want] == lines[1:1 + len(want)], (reply, want)
print(f"demo-db query: {len(want)} rows, as SQLite reads {sql}")
' "$SQL" "$QUERY"
call_tool gateway list_servers '{}' | python3 -c '
import json, sys
result = json.load(sys.stdin)["result"]
assert not result.get("isError"), result
names = sorted(s["name"] for s in json.loads(result["content"][0]["text"])["servers"])
assert names == ["demo-db", "gateway"], names
print("gateway list_servers:", ", ".join(names))
'

step "what the service wrote"
for f in /var/lib/mcpgate/hotels.db "$(unit PIDFile)" /var/log/mcpgate/mcpgate.log; do
  [ "$(stat -c %U:%G "$f")" = mcpgate:mcpgate ] || fail "$f is $(owner "$f"), not mcpgate's"
done
foreign=$($SUDO find /var/lib/mcpgate /var/log/mcpgate /run/mcpgate ! -user mcpgate)
[ -z "$foreign" ] || fail "not owned by mcpgate: $foreign"
$SUDO find /var/lib/mcpgate /var/log/mcpgate /run/mcpgate -exec stat -c '%U:%G %a %n' {} +

step "reinstall: the session key and the edited config stay, the binary is upgraded in place"
echo "# edited by package-check" | $SUDO tee -a /etc/mcpgate/mcpgate.yaml >/dev/null
before=$($SUDO sha256sum "$ENV_FILE" /etc/mcpgate/mcpgate.yaml)
$SUDO dpkg -i --force-confold "$DEB" >/dev/null
[ "$($SUDO sha256sum "$ENV_FILE" /etc/mcpgate/mcpgate.yaml)" = "$before" ] || fail "reinstalling changed $ENV_FILE or the edited config"
# Under systemd, postinst asks the running service for the zero-downtime binary upgrade;
# without it, send the same signal the unit would.
[ $SYSTEMD = yes ] || $SUDO kill -USR2 "$PID"
for _ in $(seq 100); do
  new=$(if [ $SYSTEMD = yes ]; then systemctl show -p MainPID --value mcpgate.service; else cat "$(unit PIDFile)" 2>/dev/null || echo "$PID"; fi)   # rewritten during the handover
  [ "$new" != "$PID" ] && [ "$new" != 0 ] && break; sleep 0.1
done
[ "$new" != "$PID" ] || fail "the binary upgrade on reinstall did not replace pid $PID; log: $($SUDO tail -n 20 /var/log/mcpgate/mcpgate.log 2>&1)"
[ "$(ps -o user= -p "$new")" = mcpgate ] || fail "the upgraded service (pid $new) does not run as mcpgate"
curl -fsS "$ADMIN/readyz" >/dev/null || fail "not ready after the binary upgrade"
for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done   # the old one drains
! kill -0 "$PID" 2>/dev/null || fail "the old process (pid $PID) still runs 30 s after the upgrade"
echo "key and config kept; upgraded from pid $PID to $new, serving"
PID=$new

step "stop"
if [ $SYSTEMD = yes ]; then
  $SUDO systemctl stop mcpgate.service
else
  $SUDO kill -TERM "$PID"
  timeout=$(unit TimeoutStopSec)
  for _ in $(seq "${timeout%s}0"); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
fi
! kill -0 "$PID" 2>/dev/null || fail "pid $PID still runs after SIGTERM"
! listening 8080 || fail "127.0.0.1:8080 still listens after the stop"
echo "stopped"

step "remove, then purge"
$SUDO dpkg --remove mcpgate >/dev/null
{ [ -f /etc/mcpgate/mcpgate.yaml ] && $SUDO test -f "$ENV_FILE"; } || fail "remove (not purge) dropped the config or the key"
[ ! -e /usr/bin/mcpgate ] || fail "remove left /usr/bin/mcpgate"
$SUDO dpkg --purge mcpgate >/dev/null
INSTALLED=no
for p in /etc/mcpgate /var/lib/mcpgate /var/log/mcpgate /run/mcpgate /usr/share/mcpgate "$UNIT"; do
  [ ! -e "$p" ] || fail "purge left $p"
done
echo "purged (the mcpgate system user stays, as Debian packages leave it)"
echo "package-check: OK ($DEB)"
