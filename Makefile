# make test   — the README's test command
# make demo   — the README's demo
# make bench  — release build, then the fleet benchmarks (JSON report in bench-out/report.json)
.PHONY: test demo bench
test:
	scripts/test.sh
demo:
	scripts/demo.sh
bench:
	swift build -c release --product cairn
	swift build -c release --product cairn-bench
	$$(swift build -c release --show-bin-path)/cairn-bench --out bench-out/report.json $(BENCH_ARGS)
