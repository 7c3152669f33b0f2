#!/usr/bin/env bash
# Fuzzes the YAML loader + manifest decoder with libFuzzer for FUZZ_SECONDS (default 300).
# Seeds: the example manifests and every fixture (Tests/Fixtures), plus Tests/Fuzz/manifest.dict.
# New interesting inputs go to fuzz-out/corpus; a crash is written to fuzz-out/ and fails the run
# (replay it with `.build/debug/cairn-fuzz fuzz-out/crash-…`). Figures: fuzz-out/report.json. A run that tries
# fewer than FUZZ_MIN_INPUTS inputs (default 300 a second) fails.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-300}"
out="fuzz-out"
mkdir -p "$out/corpus"
# Its own build folder: -sanitize=fuzzer instruments every Swift module it builds.
set +e
swift build --scratch-path .build-fuzz --product cairn-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DCAIRN_LIBFUZZER -Xswiftc -parse-as-library 2>&1 | grep -v "ld.gold: warning"
build=${PIPESTATUS[0]}
set -e
[ "$build" = 0 ] || { echo "fuzz: the libFuzzer build failed" >&2; exit 1; }
fuzzer="$(swift build --scratch-path .build-fuzz --show-bin-path)/cairn-fuzz"
# Seeds at the loader's limits (a 64 KiB scalar, nesting 64 deep, ± one); max_len holds twice the
# scalar limit, so mutations reach past it. The 8 MiB file limit is beyond what a fuzzer can
# mutate quickly: the replay build runs those seeds (scripts/test.sh).
python3 Tests/Fuzz/limit_seeds.py "$out/limits"
mkdir -p "$out/limit-seeds" && find "$out/limits" -name '*.yaml' -size -200k -exec cp {} "$out/limit-seeds/" \;
seeds=(examples/fleet/models examples/fleet/templates examples/fleet/targets examples/fleet/weights
       Tests/Fixtures/manifests/valid Tests/Fixtures/manifests/invalid Tests/Fixtures/manifests/beyond-schema Tests/Fixtures/hostile
       "$out/limit-seeds")
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=131072 -print_final_stats=1 \
    -dict=Tests/Fuzz/manifest.dict -artifact_prefix="$out/" "$out/corpus" "${seeds[@]}" 2>"$out/log.txt"
status=$?
set -e
tail -n 12 "$out/log.txt"
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log.txt")
crashes=$(find "$out" -maxdepth 1 \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
printf '{"seconds": %s, "inputsTried": %s, "corpusSize": %s, "findings": %s, "exitStatus": %s}\n' \
    "$seconds" "${runs:-0}" "$(ls "$out/corpus" | wc -l)" "$crashes" "$status" > "$out/report.json"
cat "$out/report.json"
[ "$status" = 0 ] || exit "$status"
# A run that tried too few inputs tested too little (a slow build, a stuck target): fail it.
minimum="${FUZZ_MIN_INPUTS:-$((seconds * 300))}"
if [ "${runs:-0}" -lt "$minimum" ]; then
    echo "fuzz: only ${runs:-0} inputs tried in ${seconds} s, fewer than the ${minimum} required (FUZZ_MIN_INPUTS)" >&2
    exit 1
fi
