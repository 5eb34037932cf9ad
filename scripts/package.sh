#!/usr/bin/env bash
# Builds the Debian package for edge hosts with cargo-deb (metadata: proxy/Cargo.toml,
# [package.metadata.deb]; contents: systemd/README.md, "Package").
#   scripts/package.sh [--profile NAME] [--dbgsym]     MCPGATE_PROFILE=NAME works too
# `release` (fat LTO, the default) is what ships; another profile (e.g. `local` or dev) only makes local
# iteration quicker. The binary is stripped (30 MB instead of 147 MB with the release
# profile's line tables); --dbgsym keeps its debug info in a separate mcpgate-dbgsym .ddeb
# (minutes more of compression). The last line printed is the path of the .deb, under
# $CARGO_TARGET_DIR/debian/.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${MCPGATE_PROFILE:-release}
SYMBOLS=--strip
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=${2:?"--profile needs a Cargo profile name"}; shift 2 ;;
    --profile=*) PROFILE=${1#*=}; shift ;;
    --dbgsym) SYMBOLS=--dbgsym; shift ;;
    *) echo "package.sh: unknown argument '$1' (usage: package.sh [--profile NAME] [--dbgsym])" >&2; exit 2 ;;
  esac
done

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v cc >/dev/null || missing+=(build-essential)
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)   # the package's library dependencies
if [ ${#missing[@]} -gt 0 ]; then
  echo "package.sh: installing build dependencies: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
if ! cargo deb --version >/dev/null 2>&1; then
  echo "package.sh: installing cargo-deb" >&2
  cargo install cargo-deb --locked
fi

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
case "$PROFILE" in dev) PROFILE_DIR=debug ;; *) PROFILE_DIR=$PROFILE ;; esac

# Build here rather than in cargo-deb: only the mcpgate binary, with the lock file as is.
cargo build --locked -p mcpgate --bin mcpgate --profile "$PROFILE" >&2
if command -v systemd-analyze >/dev/null; then
  scripts/verify-unit.sh "$TARGET_DIR/$PROFILE_DIR/mcpgate" >&2
fi
debs=$(cargo deb -p mcpgate --no-build --locked --profile "$PROFILE" "$SYMBOLS" --output "$TARGET_DIR/debian/")
echo "$debs" | grep -v '\.deb$' || true   # the .ddeb with --dbgsym
echo "$debs" | grep '\.deb$'
