#!/usr/bin/env bash
# The demo: installs what is missing, builds cairn, and runs it on examples/ in a
# throw-away copy, so this checkout is left as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --product cairn
cairn="$(swift build --show-bin-path)/cairn"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/repo"
cp -R examples/fleet/. "$work/repo/"
git -C "$work/repo" init -q -b main
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name="Demo Operator" -c user.email=demo@example.com commit -q -m "Fleet: homepage and search families"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step cairn validate --repo "$work/repo"
"$cairn" validate --repo "$work/repo"
