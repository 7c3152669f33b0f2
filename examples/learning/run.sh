#!/usr/bin/env bash
# The learning loop end to end on one machine (docs/learning.md): a 50/50 split with a shadow,
# simulated shoppers and their feedback, traces, the A/B readout, a shadow approved on its
# record, a review of any version, the next version learning from feedback, and a rollback
# guard putting the previous version back when the new one does worse.
#
#   examples/learning/run.sh            # after `swift build` (CAIRN=path/to/cairn to choose one)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cairn="${CAIRN:-$here/../../.build/debug/cairn}"
work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-learning.XXXXXX")"
serve_pid=""
cleanup() {
    if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m%s\033[0m\n' "$*"; }
fail() { echo "error: $*" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
# Waits up to 120 s for a Python expression over `cairn status --format json` (bound to s) to hold.
wait_for() {
    local what="$1" check="$2"
    for _ in $(seq 1 600); do
        if "$cairn" status --db "$db" --format json 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($check) else 1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    fail "timed out waiting for $what"
}
commit() { git -C "$repo" add -A && git -C "$repo" -c user.name=Reviewer -c user.email=reviewer@example.com commit -qm "$1"; }

repo="$work/repo"
mkdir -p "$repo"
cp -R "$here"/. "$repo/"
rm -f "$repo/run.sh" "$repo/traffic.py" "$repo/README.md"
git -C "$repo" init -q -b main
commit "shop homepage: a 50/50 split with a shadow and a rollback guard"
db="$work/state/cairn.db"
export CAIRN_SIGNING_KEY=6c6561726e696e672d6c6f6f702d64656d6f2d6b6579
admin="$("$cairn" token create demo --scope admin --db "$db" 2>/dev/null)"
shop="$("$cairn" token create shop-frontend --scope feedback --db "$db" 2>/dev/null)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$cairn" serve --repo "$repo" --db "$db" --listen "127.0.0.1:$port" --interval 1s >"$work/serve.log" 2>&1 &
serve_pid=$!
traffic() { python3 "$here/traffic.py" "$port" "$admin" "$shop" "$@"; }

step "0. cairn serve trains the three models and puts the split live"
wait_for "the split to be live" "any(t['name'] == 'shop-homepage' and len(t['routes']) == 2 and t['shadow'] for t in s['targets'])"
"$cairn" status ServingTarget/shop-homepage --db "$db" | sed -n '/Serving targets/,/^$/p'

step "1. 600 shoppers visit the homepage; their clicks and purchases come back as feedback"
traffic 1 600 shop-recs=0.30 shop-popular=0.12

step "2. What the shadow would have shown, beside what was served"
"$cairn" traces shop-homepage --limit 1 --db "$db"

step "3. The A/B readout of the split"
"$cairn" ab shop-homepage --db "$db"

step "4. shop-recs-tight v1 was listed for approval; it waited for its shadow record (200 requests)"
wait_for "shop-recs-tight v1 to be approved" "any(m['name'] == 'shop-recs-tight' and m.get('latestApproved') == 1 for m in s['models'])"
"$cairn" history --model shop-recs-tight --limit 1 --db "$db"

step "5. A reviewer looks at a random shopper's recommendations from any version"
"$cairn" recommend --model shop-recs-tight --version 1 --random-user --seed 7 -k 5 --repo "$repo" --db "$db"

step "6. A commit retrains shop-recs: v2 learns from the feedback so far, and goes live on its route"
sed -i 's/  learning: {mode: scheduled, every: 24h}/  learning: {mode: scheduled, every: 24h}\n  retrainToken: learn-from-feedback/' "$repo/models.yaml"
sed -i 's/    - {model: shop-recs, version: latest-approved, weight: 50}/    - {model: shop-recs, version: 2, weight: 50}/' "$repo/targets.yaml"
commit "retrain shop-recs on its feedback and put v2 on its route"
wait_for "v2 to be live" "any(t['name'] == 'shop-homepage' and any(r['model'] == 'shop-recs' and r['version'] == 2 for r in t['routes']) for t in s['targets'])"
"$cairn" versions shop-recs --db "$db" | cut -c1-150

step "7. Shoppers take to v2 much less; the guard puts v1 back, once, and says why"
traffic 601 600 shop-recs@2=0.05 shop-popular=0.12
wait_for "the guard to trip" "any(t['name'] == 'shop-homepage' and t.get('drift') for t in s['targets'])"
"$cairn" history --target shop-homepage --limit 1 --db "$db"
"$cairn" status ServingTarget/shop-homepage --db "$db" | sed -n '/Serving targets/,/^$/p'

step "8. The operator decides by commit: keep v1 (the drift mark goes)"
sed -i 's/    - {model: shop-recs, version: 2, weight: 50}/    - {model: shop-recs, version: 1, weight: 50}/' "$repo/targets.yaml"
commit "keep shop-recs v1 on the homepage"
wait_for "the drift to clear" "any(t['name'] == 'shop-homepage' and not t.get('drift') for t in s['targets'])"
"$cairn" status ServingTarget/shop-homepage --db "$db" | sed -n '/Serving targets/,/^$/p'
echo
echo "The learning loop ran end to end."
