#!/usr/bin/env bash
# Builds mcpgate (the `local` profile: optimized, thin LTO) and runs it on the shipped config, conf/mcpgate.yaml:
# MCP on 127.0.0.1:8080, admin on 127.0.0.1:9090. Extra arguments go to mcpgate.
# On a fresh Debian machine it first installs the build dependencies Pingora needs.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v cc >/dev/null || missing+=(build-essential)
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "start.sh: installing build dependencies: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"
fi

# PROFILE=release for the fully optimized (fat LTO) build that packages and benchmarks use.
PROFILE=${PROFILE:-local}
target=${CARGO_TARGET_DIR:-target}/$PROFILE/mcpgate
if [ ! -x "$target" ]; then
  echo "start.sh: first build of mcpgate (profile $PROFILE): about 12 minutes on 2 idle cores (every dependency is compiled once; loadtest/RESULTS.md), later starts take seconds" >&2
fi
exec cargo run --profile "$PROFILE" -p mcpgate -- --config conf/mcpgate.yaml "$@"
