import Foundation
import Testing

/// `make bench` records a figure only for a process that did its work: a non-zero exit or a
/// signal fails the benchmark (a killed process was recorded as exit 0, a failing one timed).
@Suite struct BenchHarnessTests {
    static let bench = packageRoot.appendingPathComponent(".build/debug/cairn-bench").path

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: bench), "needs the cairn-bench build (swift build)"))
    func aFailedOrKilledProcessFailsTheBenchmark() throws {
        let dir = TempDir("cairn-bench-harness")
        let killed = dir.path + "/killed.sh"
        try "#!/bin/sh\nkill -9 $$\n".write(toFile: killed, atomically: true, encoding: .utf8)
        chmod(killed, 0o755)
        for (binary, says) in [("/bin/false", "plan --repo \(dir.path)/fleet-20 --db \(dir.path)/fleet-20/.bench/cairn.db exited 1"), (killed, "was killed by signal 9")] {
            let result = try runProcess(Self.bench, ["--sizes", "20", "--cairn", binary, "--work", dir.path, "--out", dir.path + "/report.json"])
            #expect(result.status != 0, "\(binary): \(result.stdout)")
            #expect(result.stderr.contains(says), "\(binary): \(result.stderr.suffix(2000))")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/report.json"), "no report from a failed benchmark")
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: bench), "needs the cairn-bench build (swift build)"))
    func helpPrintsUsageAndAnUnknownOptionIsAUsageError() throws {
        let help = try runProcess(Self.bench, ["--help"])
        #expect(help.status == 0 && help.stdout.hasPrefix("usage: cairn-bench") && help.stdout.contains("--sizes"), "\(help)")
        let wrong = try runProcess(Self.bench, ["--size", "10"])
        #expect(wrong.status == 64 && wrong.stderr.contains("unknown option --size") && wrong.stderr.contains("usage:"), "\(wrong)")
    }

    /// The whole harness on a tiny fleet with the built binary: every scenario gives a row.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: bench), "needs the cairn-bench build (swift build)"))
    func everyScenarioIsMeasuredOnATinyFleet() throws {
        let dir = TempDir("cairn-bench-tiny")
        let result = try runProcess(Self.bench, ["--sizes", "20", "--cairn", cairnBinary, "--work", dir.path, "--out", dir.path + "/report.json",
                                                 "--history-rows", "200", "--idle-seconds", "1"])
        #expect(result.status == 0, "\(result.stderr.suffix(3000))")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.path + "/report.json"))) as? [String: Any]
        let rows = (report?["results"] as? [[String: Any]]) ?? []
        let scenarios = rows.compactMap { $0["scenario"] as? String }
        for expected in ["floor (read blobs + libyaml, no decoding), loose objects", "plan (cold, empty database), loose objects",
                         "floor (read blobs + libyaml, no decoding)", "plan (cold, empty database)", "reconcile (apply whole fleet)",
                         "serve pass: one file changed (parse cache warm, apply included)", "serve: push + signed webhook to applied",
                         "history (one model, 1,000,000 rows)", "dashboard: GET /ui/models (median of 5)",
                         "dashboard: GET /ui/models/model-19 (median of 5)", "dashboard: GET /ui/history (median of 5)",
                         "recommendations with a shadow scored off the path: p95 (4 clients)", "recommendations without a shadow: p95 (4 clients)"] {
            #expect(scenarios.contains(expected), "no row \(expected) in \(scenarios)")
        }
        let apply = rows.first { $0["scenario"] as? String == "reconcile (apply whole fleet)" }
        #expect((apply?["ratioToBound"] as? Double).map { $0 > 1 } == true, "apply is slower than writing its rows alone: \(apply ?? [:])")
        #expect(scenarios.contains { $0.hasPrefix("apply's lower bound (its ") })
        #expect(result.stdout.contains("| reconcile (apply whole fleet) | 20 |"))
    }
}
