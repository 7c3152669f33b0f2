#!/usr/bin/env bash
# The test command: installs what is missing, builds, checks generated files, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
python3 schemas/generate.py --check
python3 examples/tools/generate_interactions.py --check >/dev/null
swift build --build-tests
swift test --skip-build
