# make test         — the README's test command (includes the small reliability suites and a 60 s fuzz run)
# make demo         — the README's demo
# make bench        — release build, then the fleet benchmarks (JSON report in bench-out/report.json); the
#                     PostgreSQL rows on a throwaway cluster (scripts/postgres.sh), stopped afterwards
# make crash        — crash-consistency suite at full size (TRIALS=200 PADDING=1000), release binary
# make concurrency  — two reconcilers + two workers, ROUNDS=10, release binary
# make hostile      — the hostile-input corpus
# make fuzz         — libFuzzer over the YAML loader + decoder, FUZZ_SECONDS=300
# make redteam      — the red-team suite (attacks on the trust boundary; see RELIABILITY.md, Security)
# make reliability  — all four; figures in reliability-out/report.json (see RELIABILITY.md)
.PHONY: test demo bench crash concurrency hostile redteam fuzz reliability release-cairn
TRIALS ?= 200
PADDING ?= 1000
ROUNDS ?= 10
FUZZ_SECONDS ?= 300
REPORT = $(CURDIR)/reliability-out/report.json
RELEASE_CAIRN = $$(swift build -c release --show-bin-path)/cairn

test:
	scripts/test.sh
demo:
	scripts/demo.sh
bench:
	swift build -c release --product cairn
	swift build -c release --product cairn-bench
	bash -c 'source scripts/postgres.sh && postgres_start && trap postgres_stop EXIT && \
	    CAIRN_BENCH_POSTGRES_URL="$$CAIRN_TEST_POSTGRES_URL" $$(swift build -c release --show-bin-path)/cairn-bench --out bench-out/report.json $(BENCH_ARGS)'

release-cairn:
	scripts/setup.sh
	swift build -c release --product cairn
	swift build --build-tests
	mkdir -p reliability-out
crash: release-cairn
	CAIRN_BIN=$(RELEASE_CAIRN) CAIRN_CRASH_TRIALS=$(TRIALS) CAIRN_CRASH_PADDING=$(PADDING) CAIRN_RELIABILITY_REPORT=$(REPORT) \
	    swift test --skip-build --filter CrashConsistencyTests
concurrency: release-cairn
	CAIRN_BIN=$(RELEASE_CAIRN) CAIRN_CONCURRENCY_ROUNDS=$(ROUNDS) CAIRN_CONCURRENCY_PADDING=$(PADDING) CAIRN_RELIABILITY_REPORT=$(REPORT) \
	    swift test --skip-build --filter ConcurrencyTests
hostile: release-cairn
	CAIRN_BIN=$(RELEASE_CAIRN) CAIRN_RELIABILITY_REPORT=$(REPORT) swift test --skip-build --filter HostileInputTests
redteam: release-cairn
	CAIRN_BIN=$(RELEASE_CAIRN) CAIRN_RELIABILITY_REPORT=$(REPORT) swift test --skip-build --filter RedTeamTests
fuzz:
	scripts/setup.sh
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh
	mkdir -p reliability-out && cp fuzz-out/report.json reliability-out/fuzz.json
reliability: crash concurrency hostile redteam fuzz
