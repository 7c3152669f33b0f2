#!/usr/bin/env bash
# The demo: installs what is missing, builds cairn, and runs it on examples/ in a scratch git
# repository with a fresh registry database, so this checkout is left as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --product cairn
cairn="$(swift build --show-bin-path)/cairn"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
repo="$work/ml-config"
mkdir -p "$repo"
cp -R examples/fleet/. "$repo/"
git -C "$repo" init -q -b main
git -C "$repo" add -A
git -C "$repo" -c user.name="Demo Operator" -c user.email=demo@example.com commit -q -m "Fleet: homepage and search families"
db="$work/registry.db"

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; }
run() { step "cairn $*"; "$cairn" "$@" || true; }

run validate --repo "$repo"
run plan --repo "$repo" --db "$db"
# Exit status 3 here means: applied, with promotions blocked until training finishes.
run reconcile --repo "$repo" --db "$db"
run status --db "$db"
run history --db "$db" --limit 5
run audit verify --db "$db"
