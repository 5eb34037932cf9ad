#!/usr/bin/env bash
# Runs `systemd-analyze verify` on systemd/mcpgate.service, pointing ExecStart at a built
# binary (verify checks that the executable exists) without installing anything.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:?usage: verify-unit.sh PATH-TO-mcpgate}
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/bin/mcpgate#$(readlink -f "$BIN")#g" systemd/mcpgate.service > "$tmp/mcpgate.service"
out=$(systemd-analyze verify "$tmp/mcpgate.service" 2>&1) || { echo "$out" >&2; exit 1; }
# verify exits 0 on some warnings; treat any line about our unit as a failure.
if echo "$out" | grep -i "mcpgate.service" >&2; then exit 1; fi
echo "systemd-analyze verify: mcpgate.service OK"
