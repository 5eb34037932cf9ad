#!/usr/bin/env bash
# Installs the Node tools the tests run (tests/node/package.json, pinned by its lock): Node 22
# from the npm registry (Debian ships Node 20; no root needed) and the official MCP
# conformance suite. Idempotent: `npm ci` runs only when the lock changed. Prints the
# directory to put first on PATH.
set -euo pipefail
cd "$(dirname "$0")/../tests/node"
command -v npm >/dev/null || { echo "node-tools.sh: npm is missing (apt-get install npm)" >&2; exit 1; }
stamp=node_modules/.installed-lock
if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json "$stamp"
fi
echo "$PWD/node_modules/.bin"
