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
        for (binary, says) in [("/bin/false", "validate --repo \(dir.path)/fleet-20 exited 1"), (killed, "was killed by signal 9")] {
            let result = try runProcess(Self.bench, ["--sizes", "20", "--cairn", binary, "--work", dir.path, "--out", dir.path + "/report.json"])
            #expect(result.status != 0, "\(binary): \(result.stdout)")
            #expect(result.stderr.contains(says), "\(binary): \(result.stderr.suffix(2000))")
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/report.json"), "no report from a failed benchmark")
        }
    }
}
