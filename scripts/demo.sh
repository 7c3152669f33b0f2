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
# Each step must exit as the demo expects (0, or `expect=N run …`); anything else stops the
# demo with the step that failed (the test command runs it, so a broken step fails CI).
run() {
    step "cairn $*"
    local status=0
    "$cairn" "$@" || status=$?
    if [ "$status" != "${expect:-0}" ]; then
        echo "demo: \`cairn $*\` exited $status, expected ${expect:-0}" >&2
        exit 1
    fi
}

export CAIRN_SIGNING_KEY="64656d6f2d7369676e696e672d6b65792d31323334"   # artifacts are HMAC-signed with it

run validate --repo "$repo"
run plan --repo "$repo" --db "$db"
# Reconcile, train what it queues (builtin trainers, in this process), reconcile again until
# converged. Exit status 3: converged, but the manual-approval shadow still waits for a person.
expect=3 run reconcile --repo "$repo" --db "$db" --wait
run versions homepage-recs-c --db "$db"

step "git commit: approve homepage-recs-c v1 (the pull-request way)"
sed -i 's/^  retrainToken: "2026-11-20"$/  retrainToken: "2026-11-20"\n  decisions: {approve: [1]}\n  versionLabels: [{version: 1, label: first shadow, description: "Approved to score beside the champion."}]/' "$repo/models/homepage.yaml"
git -C "$repo" -c user.name="Demo Reviewer" -c user.email=review@example.com commit -q -am "Approve homepage-recs-c v1 for shadowing"
run plan --repo "$repo" --db "$db" --format markdown
run reconcile --repo "$repo" --db "$db"
run status --db "$db"
run versions homepage-recs-c --db "$db"
run recommend --target acme-homepage --user u0042 -k 5 --db "$db"
run artifact verify homepage-recs@1 --db "$db"
run history --db "$db" --limit 6
run audit verify --db "$db"
