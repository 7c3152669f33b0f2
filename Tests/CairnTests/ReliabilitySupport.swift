import Foundation
import CairnStore
import GRDB
import Testing

/// Shared parts of the crash-consistency and concurrency suites: a fleet repository with a
/// history of commits, a driver that reconciles and trains until converged (optionally killing
/// processes), the invariants checked after every fault, and a dump of the final state.
///
/// Sizes come from the environment so the same tests run small in CI and large by hand
/// (`make crash`, `make concurrency`; see RELIABILITY.md).
enum Reliability {
    static func setting(_ name: String, _ fallback: Int) -> Int {
        ProcessInfo.processInfo.environment[name].flatMap(Int.init) ?? fallback
    }

    /// Appends one suite's figures to the JSON report named by CAIRN_RELIABILITY_REPORT, if set.
    static func report(_ suite: String, _ figures: [String: Any]) throws {
        guard let path = ProcessInfo.processInfo.environment["CAIRN_RELIABILITY_REPORT"], !path.isEmpty else { return }
        var all: [String: Any] = [:]
        if let data = FileManager.default.contents(atPath: path), let existing = try? JSONSerialization.jsonObject(with: data) as? [String: Any] {
            all = existing
        }
        var entry = figures
        entry["finishedAt"] = ISO8601DateFormatter().string(from: Date())
        entry["binary"] = cairnBinary
        all[suite] = entry
        try JSONSerialization.data(withJSONObject: all, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: path))
    }
}

/// The example fleet plus `padding` draft models (a longer apply), then a second commit that
/// approves a shadow by decision, retrains through a template change, changes a weight and
/// archives a model: every kind of apply step and a retrain with promotion.
final class ReliabilityFleet: @unchecked Sendable {
    let repo: GitFixture
    let commits: [String]

    init(padding: Int) throws {
        repo = try GitFixture()
        try repo.copyExamples()
        if padding > 0 {
            repo.write("models/padding.yaml", (0..<padding).map { i in
                "apiVersion: cairn/v1\nkind: Model\nmetadata:\n  name: padding-\(i)\nspec:\n  template: popular-now\n  label: Padding \(i)\n"
            }.joined(separator: "---\n"))
        }
        let first = try repo.commit("Fleet with \(padding) draft models")
        try Self.edit(repo, "models/homepage.yaml", "  retrainToken: \"2026-11-20\"\n", "  retrainToken: \"2026-11-20\"\n  decisions: {approve: [1]}\n")
        try Self.edit(repo, "templates/popular-now.yaml", "    holdout: 0.2\n", "    holdout: 0.25\n")
        try Self.edit(repo, "weights/clicks-only.yaml", "no_action: 0.0", "no_action: 0.05")
        let models = try String(contentsOfFile: repo.path + "/models/search.yaml", encoding: .utf8)
        let kept = models.components(separatedBy: "---\n").filter { !$0.contains("name: search-experimental") }.joined(separator: "---\n")
        repo.write("models/search.yaml", kept)
        let second = try repo.commit("Approve homepage-recs-c v1, retrain popular-now, archive search-experimental")
        commits = [first, second]
    }

    static func edit(_ repo: GitFixture, _ file: String, _ old: String, _ new: String) throws {
        let path = repo.path + "/" + file
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard text.contains(old) else { throw FixtureError("\(file) does not contain \(old)") }
        try text.replacingOccurrences(of: old, with: new).write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// One registry in its own folder: a SQLite file there, or a fresh PostgreSQL database (the
/// folder then holds only scratch files).
final class Registry: @unchecked Sendable {
    let dir: TempDir
    let backend: Backend
    private let postgres: String?
    /// The PostgreSQL database's connections, kept for the registry's life (polled in loops).
    let postgresExecutor: PostgresExecutor?
    /// What `--db` takes: the file, or the PostgreSQL address.
    var db: String { postgres ?? dir.path + "/registry.db" }
    static let env = ["CAIRN_SIGNING_KEY": "72656c696162696c6974792d7375697465"]

    init(_ label: String, backend: Backend = .sqlite) throws {
        dir = TempDir(label)
        self.backend = backend
        postgres = backend == .postgres ? try TestPostgres.freshDatabase() : nil
        postgresExecutor = try postgres.map { try PostgresExecutor(try PostgresLocation(parsing: $0)) }
    }

    deinit { postgresExecutor?.close() }

    /// Rows of a query, on either database, through the store's own adapters (SQLite opened
    /// read-write, as the next cairn process would).
    func rows(_ sql: String) throws -> [SQLRow] {
        let executor: any SQLExecutor = try postgresExecutor ?? SQLiteExecutor(writer: try queue())
        return try executor.read { try $0.fetchAll(sql: sql, arguments: []) }
    }

    /// True when the registry's schema exists (a process killed while creating it leaves none).
    func hasTable(_ table: String) throws -> Bool {
        switch backend {
        case .sqlite:
            guard FileManager.default.fileExists(atPath: db) else { return false }
            return try read { try $0.tableExists(table) }
        case .postgres:
            return try rows("SELECT to_regclass('\(table)')::text AS t").first.map { ($0["t"] as String?) != nil } ?? false
        }
    }

    /// Runs SQL on the database in a read transaction. The connection is opened read-write, as
    /// the next cairn process would open it: after a kill, SQLite may need to recover the WAL.
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        try queue().read(body)
    }

    /// A connection that waits for other processes' locks, as cairn's own do.
    func queue() throws -> DatabaseQueue {
        var config = Configuration()
        config.busyMode = .timeout(30)
        return try DatabaseQueue(path: db, configuration: config)
    }

    /// A count from `table`; 0 while the database or its schema does not exist yet (a process
    /// killed while creating the database leaves an empty file, which the next one migrates).
    func count(_ table: String, _ condition: String = "1 = 1") throws -> Int {
        guard try hasTable(table) else { return 0 }
        return try rows("SELECT COUNT(*) AS n FROM \(table) WHERE \(condition)").first?["n"] ?? 0
    }

    func activeRuns() throws -> Int { try count("training_runs", "state IN ('queued', 'running')") }

    func auditRows() throws -> Int { try count("audit_log") }

    /// What must hold after any fault: the audit chain verifies, SQLite finds the file intact and
    /// consistent, and nothing is duplicated. Returns the broken promises (empty when all hold).
    func violations() throws -> [String] {
        // Killed while creating the database: nothing was written yet, and nothing can be wrong.
        guard try hasTable("audit_log") else { return [] }
        var broken: [String] = []
        let verify = try cairn(["audit", "verify", "--db", db])
        if verify.status != 0 { broken.append("audit verify: \(verify.stdout)\(verify.stderr)") }
        if backend == .sqlite {
            // Opened read-write, as the next cairn process would: SQLite replays the WAL a killed writer left.
            try queue().read { db in
                let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check")
                if integrity != ["ok"] { broken.append("integrity_check: \(integrity.joined(separator: "; "))") }
                let foreign = try Row.fetchAll(db, sql: "PRAGMA foreign_key_check")
                if !foreign.isEmpty { broken.append("foreign_key_check: \(foreign)") }
            }
        }
        do {
            let checks: [(String, String)] = [
                ("a version trained twice", "SELECT model, fingerprint, COUNT(*) FROM versions GROUP BY model, fingerprint HAVING COUNT(*) > 1"),
                ("a run recorded as two versions", "SELECT run_id FROM versions GROUP BY run_id HAVING COUNT(*) > 1"),
                ("a fingerprint queued or trained twice", """
                    SELECT model, fingerprint FROM training_runs WHERE state IN ('queued', 'running', 'succeeded')
                    GROUP BY model, fingerprint HAVING COUNT(*) > 1
                    """),
                ("a succeeded run without its version", """
                    SELECT id FROM training_runs r WHERE state = 'succeeded'
                    AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.run_id = r.id AND v.model = r.model AND v.number = r.version)
                    """),
                ("a version audited twice", "SELECT address, version FROM audit_log WHERE action = 'version' GROUP BY address, version HAVING COUNT(*) > 1"),
                ("an audit row without its model index", "SELECT id FROM audit_log a WHERE NOT EXISTS (SELECT 1 FROM audit_models m WHERE m.audit_id = a.id) AND address LIKE 'Model/%'"),
            ]
            for (what, sql) in checks {
                let found = try rows(sql)
                if !found.isEmpty { broken.append("\(what): \(found.prefix(3).map { row in row.columnNames.indices.map { row.value(at: $0) } })") }
            }
        }
        return broken
    }

    /// The registry's state with times, run ids and other incidental values left out: two
    /// registries that reached the same state by different paths dump identically.
    /// The dump of the registry at `path`.
    static func dump(at path: String) throws -> String {
        let registry = try Registry("cairn-dump")
        try FileManager.default.removeItem(atPath: registry.dir.path)
        try FileManager.default.createDirectory(atPath: registry.dir.path, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: path, toPath: registry.db)
        for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
            try FileManager.default.copyItem(atPath: path + suffix, toPath: registry.db + suffix)
        }
        return try registry.dump()
    }

    func dump() throws -> String {
        do {
            var lines: [String] = []
            func add(_ label: String, _ sql: String) throws {
                for row in try rows(sql) {
                    lines.append(label + " " + row.columnNames.enumerated().map { i, name in
                        let shown = switch row.value(at: i) {
                        case .null: "NULL"
                        case let .integer(v): "\(v)"
                        case let .real(v): "\(v)"
                        case let .text(v): "\"\(v)\""
                        }
                        return "\(name)=\(shown)"
                    }.joined(separator: " "))
                }
            }
            try add("weights", "SELECT name, spec, archived FROM outcome_weights ORDER BY name")
            try add("template", "SELECT name, spec, archived FROM templates ORDER BY name")
            try add("model", "SELECT name, spec, family, stage, lifecycle, first_ready_at IS NOT NULL AS ready FROM models ORDER BY name")
            try add("version", """
                SELECT model, number, status, status_reason, metrics, fingerprint, dataset_hash, commit_sha, trainer_version,
                       artifact_hash, artifact_signature, decided_at IS NOT NULL AS decided FROM versions ORDER BY model, number
                """)
            try add("run", "SELECT model, fingerprint, state, version, metrics FROM training_runs ORDER BY model, fingerprint, state")
            try add("target", "SELECT name, tenant, surface, routes, shadow, assigned, drift, revision FROM serving_targets ORDER BY name")
            try add("audit", """
                SELECT action, address, version, before, after, reason, revision, file, COUNT(*) AS n FROM audit_log
                WHERE action NOT IN ('version') GROUP BY action, address, version, before, after, reason, revision, file
                ORDER BY action, address, version, reason
                """)
            try add("audit-version", "SELECT address, version, COUNT(*) AS n FROM audit_log WHERE action = 'version' GROUP BY address, version ORDER BY address, version")
            try add("meta", "SELECT key, value FROM meta WHERE key NOT IN ('generation', 'audit_head') ORDER BY key")
            // Sorted here, not by each database's collation: a SQLite and a PostgreSQL registry dump alike.
            return lines.sorted().joined(separator: "\n")
        }
    }
}

/// One process started by the driver.
struct Invocation {
    var kind: String
    /// When it started and how long it ran.
    var started: Date
    var seconds: Double
    var status: Int32
    var killed: Bool
    var output: String
}

/// When the driver kills a process: after a delay, or the moment something is seen in its
/// registry (aimed at a moment that matters, not left to chance).
enum Kill {
    case after(Double)
    /// Once the audit history has more rows than when the process started: a step committed.
    case afterCommittedStep
    /// Once a training run is `running`: the worker is training.
    case duringTraining

    var description: String {
        switch self {
        case let .after(s): String(format: "after %.3fs", s)
        case .afterCommittedStep: "after a committed step"
        case .duringTraining: "during training"
        }
    }
}

/// Runs `cairn` with arguments; with `kill`, sends SIGKILL at that moment if it is still
/// running. Output goes to a file (no pipe a killed process could leave open).
func invoke(_ kind: String, _ arguments: [String], env: [String: String] = [:], kill killing: Kill? = nil, registry: Registry? = nil,
            scratch: TempDir) throws -> Invocation {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: cairnBinary)
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    for (k, v) in Registry.env.merging(env, uniquingKeysWith: { $1 }) { environment[k] = v }
    process.environment = environment
    let outputPath = scratch.path + "/out-\(UUID().uuidString)"
    _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
    let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
    process.standardOutput = output
    process.standardError = output
    process.standardInput = FileHandle.nullDevice
    let started = Date()
    try process.run()
    var killed = false
    switch killing {
    case nil: break
    case let .after(seconds):
        let deadline = started.addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { usleep(2_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            killed = true
        }
    case .afterCommittedStep?, .duringTraining?:
        // One connection, polled as fast as SQLite answers: the window between a step's commit
        // and the process's exit is short.
        guard let registry else { throw FixtureError("an aimed kill needs the registry") }
        let sql = killing.map { k -> String in
            if case .duringTraining = k { return "SELECT COUNT(*) AS n FROM training_runs WHERE state = 'running'" }
            return "SELECT COUNT(*) AS n FROM audit_log"
        }!
        let threshold = killing.map { k -> Int in if case .duringTraining = k { return 0 } else { return (try? registry.auditRows()) ?? 0 } }!
        var connection: DatabaseQueue?
        let postgres = registry.postgresExecutor
        while process.isRunning {
            if postgres == nil, connection == nil, FileManager.default.fileExists(atPath: registry.db) {
                var config = Configuration()
                config.readonly = true
                connection = try? DatabaseQueue(path: registry.db, configuration: config)
            }
            let seen = postgres.map { pg in (try? pg.read { try $0.fetchAll(sql: sql, arguments: []).first?["n"] as Int? } ?? 0) ?? 0 }
                ?? (try? connection?.read { try Int.fetchOne($0, sql: sql) ?? 0 }) ?? 0
            if seen > threshold {
                kill(process.processIdentifier, SIGKILL)
                killed = true
                break
            }
            usleep(200)
        }
    }
    process.waitUntilExit()
    try output.close()
    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    try? FileManager.default.removeItem(atPath: outputPath)
    return Invocation(kind: kind, started: started, seconds: Date().timeIntervalSince(started), status: process.terminationStatus,
                      killed: killed && process.terminationReason == .uncaughtSignal, output: text)
}

/// Reconciles each commit in turn, alternating `cairn reconcile` and `cairn worker --once`,
/// until the plan is empty and no run is queued or running. `kills` maps an invocation's index
/// (counted over the whole drive) to the moment it is SIGKILLed; after each kill that
/// landed, `afterKill` is called. Returns every invocation.
func drive(_ fleet: ReliabilityFleet, into registry: Registry, kills: [Int: Kill] = [:],
           afterKill: (Invocation, _ auditBefore: Int, _ runningAfter: Int) throws -> Void = { _, _, _ in }) throws -> [Invocation] {
    var invocations: [Invocation] = []
    let worker = ["worker", "--once", "--lease", "2s", "--retry-delay", "1s", "--repo", fleet.repo.path, "--db", registry.db]
    for commit in fleet.commits {
        let reconcile = ["reconcile", "--repo", fleet.repo.path, "--revision", commit, "--db", registry.db, "--lock-timeout", "30"]
        let deadline = Date().addingTimeInterval(180)
        while true {
            for (kind, arguments) in [("reconcile", reconcile), ("worker", worker)] {
                // Carrying on after a kill means finishing the interrupted work before the other
                // kind starts, as an uninterrupted drive would: a reconcile is run again until it
                // completes, a worker until no run is queued or running (a dead worker's run waits
                // for its lease). Otherwise a worker running between two halves of an apply, or a
                // reconcile between two halves of the training, groups promotions differently:
                // the same state, but other audit rows than the reference.
                var interrupted = false
                while true {
                    let before = try registry.auditRows()
                    let run = try invoke(kind, arguments, kill: kills[invocations.count], registry: registry, scratch: registry.dir)
                    invocations.append(run)
                    if run.killed {
                        let running = try registry.count("training_runs", "state = 'running'")
                        try afterKill(run, before, running)
                        interrupted = true
                        continue
                    } else if kind == "reconcile", run.status != 0, run.status != 3 {
                        throw FixtureError("cairn reconcile exited \(run.status): \(run.output)")
                    } else if kind == "worker", run.status != 0 {
                        throw FixtureError("cairn worker exited \(run.status): \(run.output)")
                    }
                    guard interrupted, kind == "worker", try registry.activeRuns() > 0 else { break }
                    if Date() > deadline { throw FixtureError("training not finished on \(commit) after 180 s") }
                    Thread.sleep(forTimeInterval: 0.3)
                }
            }
            let plan = try cairn(["plan", "--repo", fleet.repo.path, "--revision", commit, "--db", registry.db, "--detailed-exitcode"], env: Registry.env)
            if plan.status == 0, try registry.activeRuns() == 0 { break }
            if plan.status == 1 { throw FixtureError("cairn plan failed: \(plan.stdout)\(plan.stderr)") }
            if Date() > deadline { throw FixtureError("not converged on \(commit) after 180 s:\n\(plan.stdout)") }
            // A dead worker's run waits for its lease to expire (2 s) before another takes it.
            if try registry.activeRuns() > 0 { Thread.sleep(forTimeInterval: 0.3) }
        }
    }
    return invocations
}
