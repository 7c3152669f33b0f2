import CairnCore
import CairnReconcile
import Foundation

/// Read-only views for `status`, `versions`, `history` and `logs`.
extension RegistryDatabase {
    public func versions(of model: String) throws -> [ModelVersion]? {
        try sql.read { db in
            guard let spec = try String.fetchOne(db, sql: "SELECT spec FROM models WHERE name = ?", arguments: [model]) else { return nil }
            // Labels and descriptions come from the applied spec (git owns them).
            return ObservedModel.labelled(try SQLRow.fetchAll(db, sql: "SELECT * FROM versions WHERE model = ? ORDER BY number", arguments: [model]).map(version),
                                          by: try decode(Model.self, spec))
        }
    }

    /// A training run as `cairn status` and `cairn logs` show it.
    public struct RunSummary: Sendable, Codable, Equatable {
        public var id: Int
        public var model: String
        public var state: String
        public var reason: String?
        public var createdAt: Int64
        public var startedAt: Int64?
        public var finishedAt: Int64?
        public var attempts: Int
        public var version: Int?
        /// Trained by a worker without the signing key; waits for the control plane to verify,
        /// sign and record it.
        public var awaitingRecord: Bool = false
        /// The batch job the run was handed to (a Slurm trainer), e.g. `slurm job 4711`.
        public var job: String?
    }

    /// What a run summary reads of `training_runs t` (never the log, up to 1 MiB a run).
    static let summaryColumns = "t.id, t.model, t.state, t.reason, t.created_at, t.started_at, t.finished_at, t.attempts, t.version, t.job"

    static func runSummary(_ row: SQLRow, awaiting: Bool = false) -> RunSummary {
        RunSummary(id: row["id"], model: row["model"], state: row["state"], reason: row["reason"], createdAt: row["created_at"],
                   startedAt: row["started_at"], finishedAt: row["finished_at"], attempts: row["attempts"], version: row["version"],
                   awaitingRecord: awaiting, job: (row["job"] as String?).flatMap { try? decode(RunJob.self, $0) }.map(\.description))
    }

    /// The newest runs first.
    public func recentRuns(limit: Int = 20) throws -> [RunSummary] {
        try sql.read { db in
            try SQLRow.fetchAll(db, sql: """
                SELECT \(Self.summaryColumns), EXISTS (SELECT 1 FROM run_results r WHERE r.run_id = t.id) AS awaiting
                FROM training_runs t ORDER BY t.id DESC LIMIT ?
                """, arguments: [limit]).map { Self.runSummary($0, awaiting: $0["awaiting"]) }
        }
    }

    /// The runs with these ids, by id (those that exist).
    public func runSummaries(ids: [Int]) throws -> [Int: RunSummary] {
        guard !ids.isEmpty else { return [:] }
        return try sql.read { db in
            let marks = Array(repeating: "?", count: ids.count).joined(separator: ", ")
            let rows = try SQLRow.fetchAll(db, sql: "SELECT \(Self.summaryColumns) FROM training_runs t WHERE t.id IN (\(marks))",
                                           arguments: SQLArguments(ids))
            return Dictionary(uniqueKeysWithValues: rows.map { row -> (Int, RunSummary) in (row["id"], Self.runSummary(row)) })
        }
    }

    /// The last `characters` of these runs' logs, by id (runs with no log are left out).
    public func logTails(ids: [Int], characters: Int) throws -> [Int: String] {
        guard !ids.isEmpty else { return [:] }
        return try sql.read { db in
            let marks = Array(repeating: "?", count: ids.count).joined(separator: ", ")
            let tail = db.dialect == .postgres ? "right(log, \(characters))" : "substr(log, -\(characters))"
            var out: [Int: String] = [:]
            for row in try SQLRow.fetchAll(db, sql: "SELECT id, \(tail) AS tail FROM training_runs WHERE log IS NOT NULL AND id IN (\(marks))",
                                           arguments: SQLArguments(ids)) {
                out[row["id"]] = row["tail"]
            }
            return out
        }
    }

    /// Which audit rows `cairn history` reads.
    public struct HistoryFilter: Sendable {
        public var model: String?
        public var target: String?
        public var since: Int64?
        public var limit: Int

        public init(model: String? = nil, target: String? = nil, since: Int64? = nil, limit: Int = 100) {
            self.model = model
            self.target = target
            self.since = since
            self.limit = limit
        }
    }

    /// Audit rows, newest first. `model` matches rows about the model and promotions that route it.
    public func history(_ filter: HistoryFilter) throws -> [AuditEntry] {
        try sql.read { db in
            var conditions: [String] = []
            var arguments: [any SQLBindable] = []
            if let model = filter.model {
                conditions.append("id IN (SELECT audit_id FROM audit_models WHERE model = ?)")
                arguments.append(model)
            }
            if let target = filter.target {
                conditions.append("address = ?")
                arguments.append(AuditAddress.servingTarget(target).description)
            }
            if let since = filter.since {
                conditions.append("at >= ?")
                arguments.append(since)
            }
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            arguments.append(filter.limit)
            return try SQLRow.fetchAll(db, sql: "SELECT * FROM audit_log \(whereClause) ORDER BY id DESC LIMIT ?",
                                    arguments: SQLArguments(arguments)).map { row in
                func json(_ column: String) throws -> JSONValue? {
                    guard let text: String = row[column] else { return nil }
                    return try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
                }
                let (actionText, addressText): (String, String) = (row["action"], row["address"])
                guard let action = AuditAction(rawValue: actionText), let address = AuditAddress(parsing: addressText) else {
                    throw CairnError("audit row \(row["id"] as Int64) records '\(actionText) \(addressText)', which Cairn never writes",
                                     hint: "run `cairn audit verify`: the history was edited beside Cairn")
                }
                return AuditEntry(id: row["id"], at: row["at"], action: action, address: address, version: row["version"],
                                  before: try json("before"), after: try json("after"), reason: row["reason"], revision: row["revision"],
                                  author: row["author"], file: row["file"], actor: row["actor"], hash: row["hash"], signer: row["signer"])
            }
        }
    }

    /// A run's stored log, or nil if the run does not exist.
    public func runLog(_ id: Int) throws -> (RunSummary, String)? {
        try sql.read { db in
            guard let row = try SQLRow.fetchOne(db, sql: "SELECT \(Self.summaryColumns), t.log FROM training_runs t WHERE t.id = ?",
                                                arguments: [id]) else { return nil }
            return (Self.runSummary(row), row["log"] ?? "")
        }
    }
}

extension RegistryDatabase {
    /// The request a run was queued with (the resolved template, weights, dataset, commit), as stored.
    public func runRequest(_ id: Int) throws -> String? {
        try sql.read { db in try String.fetchOne(db, sql: "SELECT request FROM training_runs WHERE id = ?", arguments: [id]) }
    }
}

extension RegistryDatabase {
    /// What artifact garbage collection must keep: every artifact a version or a submitted result
    /// references, and when the oldest queued or running run was created (nil when none is).
    public func artifactReferences() throws -> (referenced: Set<String>, activeSince: Int64?) {
        try sql.read { db in
            var hashes = Set(try String.fetchAll(db, sql: "SELECT artifact_hash FROM versions WHERE artifact_hash IS NOT NULL"))
            for text in try String.fetchAll(db, sql: "SELECT result FROM run_results") {
                if let success = try? decode(RunSuccess.self, text), let hash = success.artifactHash { hashes.insert(hash) }
            }
            let since = try Int64.fetchOne(db, sql: "SELECT MIN(created_at) FROM training_runs WHERE state IN ('queued', 'running')")
            return (hashes, since)
        }
    }
}
