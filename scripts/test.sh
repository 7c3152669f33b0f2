#!/usr/bin/env bash
# The test command: installs what is missing, builds, checks generated files, runs every test
# (the reliability suites at their small CI size), then fuzzes the YAML loader + decoder for
# FUZZ_SECONDS (default 60; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
python3 schemas/generate.py --check
python3 examples/tools/generate_interactions.py --check >/dev/null
swift build --build-tests
swift test --skip-build
if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
    FUZZ_SECONDS="${FUZZ_SECONDS:-60}" scripts/fuzz.sh
fi
