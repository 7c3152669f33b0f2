#!/usr/bin/env bash
# The test command: installs what is missing, builds, checks generated files, starts a
# throwaway PostgreSQL cluster, runs every test (the reliability suites at their small CI size,
# the store contract on SQLite and PostgreSQL), then fuzzes the YAML loader + decoder for
# FUZZ_SECONDS (default 60; 0 skips it). Run as root, it also starts a single-node Slurm cluster
# for the Slurm trainer tests (not root, they skip and say why).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
python3 schemas/generate.py --check
python3 examples/tools/generate_interactions.py --check >/dev/null
swift build --build-tests
# A throwaway PostgreSQL cluster for the PostgreSQL registry tests, and (as root) a throwaway
# single-node Slurm cluster for the Slurm trainer tests; both stopped on exit.
source scripts/postgres.sh
source scripts/slurm.sh
trap 'slurm_stop; postgres_stop' EXIT
postgres_start
export CAIRN_REQUIRE_POSTGRES=1
slurm_start
if [ "$(id -u)" -eq 0 ]; then export CAIRN_REQUIRE_SLURM=1; fi
# The dashboard's browser tests drive Debian's headless Chromium with Selenium (installed here,
# not by setup.sh: the demo does not need a browser).
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "installing: chromium and chromium-driver (the dashboard's browser tests)" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
        || { $sudo apt-get update -qq; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
fi
if ! python3 -c "import selenium" 2>/dev/null; then
    echo "installing: selenium for $(command -v python3)" >&2
    python3 -m pip install --quiet selenium 2>/dev/null || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-selenium >/dev/null
fi
export CAIRN_REQUIRE_BROWSER=1
# Every observed state a registry handle advances by its history is also read whole and compared
# (in the tests and every cairn process they start).
export CAIRN_CHECK_OBSERVED_ADVANCE=1
swift test --skip-build
# The fuzz target's replay mode (an ordinary build) over every seed and the limit seeds,
# the 8 MiB ones included: the same check the fuzzer runs, on inputs it cannot reach.
python3 Tests/Fuzz/limit_seeds.py .build/limit-seeds
.build/debug/cairn-fuzz examples/fleet/models examples/fleet/templates examples/fleet/targets examples/fleet/weights \
    Tests/Fixtures/manifests/valid Tests/Fixtures/manifests/invalid Tests/Fixtures/manifests/beyond-schema Tests/Fixtures/hostile \
    .build/limit-seeds
# The README's demo, end to end: it fails on any step that exits other than it expects.
scripts/demo.sh > .build/demo.log 2>&1 || { tail -n 40 .build/demo.log; echo "test: the demo failed" >&2; exit 1; }
echo "demo: every step as expected (.build/demo.log)"
if [ "${FUZZ_SECONDS:-60}" != 0 ]; then
    FUZZ_SECONDS="${FUZZ_SECONDS:-60}" scripts/fuzz.sh
fi
