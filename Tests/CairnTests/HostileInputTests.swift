import Foundation
import Testing

/// The hostile-input corpus (Tests/Fixtures/hostile, plus the large inputs generated here): each
/// input, committed to a real repository, makes `cairn validate` exit 1 with a positioned error
/// that says what is wrong, and makes `cairn reconcile` refuse the revision without writing
/// anything. See RELIABILITY.md for where the other hostile inputs (tampered artifacts, webhook
/// signatures) are tested.
@Suite struct HostileInputTests {
    struct Case: CustomStringConvertible {
        var name: String
        var bytes: [UInt8]
        /// nil: any position in the file.
        var line: Int?
        var column: Int?
        var text: String
        var description: String { name }
    }

    /// The committed corpus; each file's first line is `# expect: LINE:COLUMN text`.
    static func corpus() throws -> [Case] {
        let dir = fixturesRoot.appendingPathComponent("hostile")
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }.sorted().map { name in
            let bytes = [UInt8](try Data(contentsOf: dir.appendingPathComponent(name)))
            // Only the first line is text; the rest may be bytes that are not UTF-8.
            let expected = try ExpectedError(fixture: String(decoding: bytes.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self))
            return Case(name: name, bytes: bytes, line: expected.line, column: expected.column, text: expected.text)
        }
    }

    /// Inputs too large to commit as fixtures.
    static func generated() -> [Case] {
        let header = "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: big}\nspec:\n  template: popular-now\n"
        let longText = String(repeating: "x", count: 60_000)
        return [
            Case(name: "huge-file.yaml", bytes: Array((header + String(repeating: "# padding\n", count: 900_000)).utf8), line: 1, column: 1,
                 text: "file is 9000085 bytes, over the limit of 8388608 bytes"),
            Case(name: "huge-scalar.yaml", bytes: Array((header + "  label: " + String(repeating: "y", count: 100_000) + "\n").utf8),
                 line: 6, column: 10, text: "a scalar of 100000 bytes, over the limit of 65536 bytes"),
            Case(name: "long-text-alias-bomb.yaml",
                 bytes: Array((header + "  traits: [&t \(longText)" + String(repeating: ", *t", count: 300) + "]\n").utf8),
                 line: 6, column: nil, text: "document expands to more than 16777216 bytes of text"),
            Case(name: "long-name.yaml", bytes: Array("apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: \(String(repeating: "n", count: 50_000))}\nspec:\n  weights: {click: 1}\n".utf8),
                 line: 3, column: 18, text: "metadata.name 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn…nnnnnnnnnnnnnnnnnnnnnnnn' (50000 characters) is 50000 characters long"),
        ]
    }

    @Test func everyHostileInputGetsAPositionedErrorAndChangesNothing() throws {
        let cases = try Self.corpus() + Self.generated()
        #expect(cases.count >= 18)
        let repo = try GitFixture()
        try repo.copyExamples()
        // A symlink that leads out of the repository, for dataset-symlink-out.yaml.
        try FileManager.default.createSymbolicLink(atPath: repo.path + "/data/escape", withDestinationPath: "../../../etc")
        let good = try repo.commit("A valid fleet")
        let registry = try Registry("cairn-hostile")
        let first = try cairn(["reconcile", "--repo", repo.path, "--revision", good, "--db", registry.db], env: Registry.env)
        #expect(first.status == 0 || first.status == 3, "\(first.stdout)\(first.stderr)")
        let before = try registry.dump()
        let generation = try registry.read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'generation'") }
        var refused = 0
        var slowest = 0.0, largest = 0

        for hostile in cases {
            let path = "hostile/" + hostile.name
            try FileManager.default.createDirectory(atPath: repo.path + "/hostile", withIntermediateDirectories: true)
            try Data(hostile.bytes).write(to: URL(fileURLWithPath: repo.path + "/" + path))
            let commit = try repo.commit("Add \(hostile.name)")

            let (validate, cost) = try Self.measured(["validate", "--repo", repo.path, "--revision", commit, "--format", "json"], scratch: registry.dir)
            slowest = max(slowest, cost.seconds)
            largest = max(largest, cost.maxRSSKiB)
            #expect(cost.seconds < Self.timeBound, "\(hostile): \(cost.seconds) s to refuse")
            #expect(cost.maxRSSKiB < Self.memoryBoundKiB, "\(hostile): \(cost.maxRSSKiB) KiB to refuse")
            #expect(validate.status == 1, "\(hostile)")
            #expect(validate.stdout.utf8.count < 8_000, "\(hostile): the report repeats the input (\(validate.stdout.utf8.count) bytes)")
            let report = try JSONSerialization.jsonObject(with: Data(validate.stdout.utf8)) as? [String: Any]
            let diagnostics = report?["diagnostics"] as? [[String: Any]] ?? []
            let match = diagnostics.first { d in
                d["file"] as? String == path && (d["severity"] as? String) == "error"
                    && (hostile.line == nil || d["line"] as? Int == hostile.line)
                    && (hostile.column == nil || d["column"] as? Int == hostile.column)
                    && ((d["summary"] as? String) ?? "").contains(hostile.text)
            }
            #expect(match != nil, "\(hostile): wanted \(hostile.line ?? 0):\(hostile.column ?? 0) '\(hostile.text)', got \(diagnostics)")
            for d in diagnostics where d["file"] as? String == path {
                #expect((d["line"] as? Int ?? 0) >= 1 && (d["column"] as? Int ?? 0) >= 1, "\(hostile): unpositioned \(d)")
            }

            let reconcile = try cairn(["reconcile", "--repo", repo.path, "--revision", commit, "--db", registry.db], env: Registry.env)
            #expect(reconcile.status == 1, "\(hostile): \(reconcile.stdout)")
            #expect(reconcile.stdout.contains(path), "\(hostile): the refusal names the file")
            if validate.status == 1, match != nil, reconcile.status == 1, reconcile.stdout.contains(path) { refused += 1 }

            try FileManager.default.removeItem(atPath: repo.path + "/" + path)
            try repo.commit("Remove \(hostile.name)")
        }

        // A revision that does not exist is refused the same way.
        let missing = try cairn(["reconcile", "--repo", repo.path, "--revision", "no-such-branch", "--db", registry.db], env: Registry.env)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("revision 'no-such-branch' not found"), "\(missing.stderr)")

        // Nothing was written by any refused revision.
        let unchanged = try registry.dump() == before
            && registry.read { try String.fetchOne($0, sql: "SELECT value FROM meta WHERE key = 'generation'") } == generation
        #expect(unchanged)
        let violations = try registry.violations()
        #expect(violations == [])
        #expect(refused == cases.count)
        // Every figure as observed, none written in.
        try Reliability.report("hostile", [
            "inputs": cases.count, "refusedWithPositionedError": refused, "databaseChanged": !unchanged, "violations": violations.count,
            "slowestRefusalSeconds": (slowest * 1000).rounded() / 1000, "largestRefusalMaxRSSKiB": largest,
            "timeBoundSeconds": Self.timeBound, "memoryBoundKiB": Self.memoryBoundKiB,
        ])
    }

    /// The most one refusal may take: far above what it takes (a few hundred ms in a debug
    /// build), far below a denial of service.
    static let timeBound = 5.0
    /// The most memory (peak resident set) one refusal may use.
    static let memoryBoundKiB = 256 * 1024

    /// The cost of one `cairn` process: wall time and peak resident memory, measured by a
    /// parent of its own (Python's `RUSAGE_CHILDREN` covers only that parent's children, so
    /// other tests' processes do not count).
    static func measured(_ args: [String], scratch: TempDir) throws -> (ProcessResult, (seconds: Double, maxRSSKiB: Int)) {
        let out = scratch.path + "/cost-\(UUID().uuidString).json"
        let script = """
            import json, resource, subprocess, sys, time
            start = time.monotonic()
            p = subprocess.run(sys.argv[2:])
            seconds = time.monotonic() - start
            json.dump({"seconds": seconds, "kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, open(sys.argv[1], "w"))
            sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)
            """
        let result = try runProcess("/usr/bin/env", ["python3", "-c", script, out, cairnBinary] + args)
        let cost = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any] ?? [:]
        return (result, (cost["seconds"] as? Double ?? .infinity, cost["kib"] as? Int ?? .max))
    }
}
