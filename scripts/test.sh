#!/usr/bin/env bash
# The one test command: services, Rust tests (unit + integration over real sockets with the
# official Rust SDK), Python tests with the official MCP Python SDK, and the systemd unit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export MCPGATE_SHARED=${MCPGATE_SHARED:-$(cd "$ROOT/.." && pwd)/shared}

step() { printf '\n==== %s\n' "$*"; }
results=()

step "services"
scripts/services.sh

step "cargo build"
cargo build --workspace --all-targets --locked

step "cargo fmt"
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo fmt --all -- --check
results+=("fmt: clean")

step "cargo clippy"
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo clippy --workspace --all-targets --locked -- -D warnings
results+=("clippy: clean")

step "node tools (Node 22, MCP clients, the MCP conformance suite)"
tests/clients/install.sh >/dev/null

step "cargo test"
cargo test --workspace --locked 2>&1 | tee "$CARGO_TARGET_DIR/cargo-test.log"
results+=("rust: $(grep -E '^test result:' "$CARGO_TARGET_DIR/cargo-test.log" | awk '{p+=$4; f+=$6} END {print p " passed, " f " failed"}')")

step "python (official mcp SDK)"
VENV=$ROOT/tests/py/.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || { echo "python3-venv is missing (apt-get install python3-venv)" >&2; exit 1; }
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/py/requirements.txt
export MCPGATE_BIN=$CARGO_TARGET_DIR/debug/mcpgate
set +e
(cd tests/py && "$VENV/bin/python" -m pytest -q -p no:cacheprovider)
py=$?
set -e
# pytest exits 5 when it collected nothing: that is a failure here.
[ $py -eq 0 ] || { echo "python tests failed (exit $py)" >&2; exit 1; }
results+=("python: passed")

step "systemd unit"
scripts/verify-unit.sh "$CARGO_TARGET_DIR/debug/mcpgate"
results+=("systemd: verified")

step "summary"
printf '%s\n' "${results[@]}"
