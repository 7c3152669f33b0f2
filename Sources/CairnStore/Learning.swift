import CairnCore
import Foundation

// The learning loop's data: decision traces of served requests and outcome feedback. Neither is
// observed state (they never change what is live and never move the generation); feedback is
// training data, read by the next training run of a model of its template as one snapshot.

extension RegistryDatabase {
    static let traceColumns = ["request_id", "at", "target", "user_id", "model", "version", "k", "items", "latency_us", "shadows", "shed"]

    /// Appends traces (one transaction; a request id already recorded is an error).
    public func recordTraces(_ traces: [DecisionTrace]) throws {
        guard !traces.isEmpty else { return }
        let rows = try traces.map { t -> [SQLValue] in
            [.text(t.requestId), .integer(t.at), .text(t.target), t.user.map(SQLValue.text) ?? .null, .text(t.model), .integer(Int64(t.version)),
             .integer(Int64(t.k)), .text(try encode(t.items)), .integer(Int64(t.latencyMicros)), .text(try encode(t.shadows)), .integer(t.shed ? 1 : 0)]
        }
        let answers = traces.flatMap { t in
            t.shadows.map { s -> [SQLValue] in
                [.text(t.requestId), .text(s.model), .integer(Int64(s.version)), .integer(t.at), .real(s.overlap),
                 s.rankCorrelation.map(SQLValue.real) ?? .null, .integer(Int64(s.latencyMicros))]
            }
        }
        try sql.write { db in
            for statement in multiRowInserts(into: "decision_traces", columns: Self.traceColumns, rows: rows, maximumValues: 2000)
                + multiRowInserts(into: "shadow_answers", columns: ["request_id", "model", "version", "at", "overlap", "rank_correlation", "latency_us"],
                                  rows: answers, maximumValues: 2000) {
                try db.execute(sql: statement.sql, arguments: statement.arguments)
            }
        }
    }

    /// Deletes traces older than `cutoff` (unix milliseconds) and, beyond them, all but the
    /// newest `maxRows`. Returns how many went.
    @discardableResult
    public func pruneTraces(before cutoff: Int64, keeping maxRows: Int) throws -> Int {
        try sql.write { db in
            try db.execute(sql: "DELETE FROM decision_traces WHERE at < ?", arguments: [cutoff])
            var removed = db.changesCount
            var oldest = cutoff
            if let oldestKept = try Int64.fetchOne(db, sql: "SELECT at FROM decision_traces ORDER BY at DESC LIMIT 1 OFFSET ?", arguments: [maxRows - 1]) {
                try db.execute(sql: "DELETE FROM decision_traces WHERE at < ?", arguments: [oldestKept])
                removed += db.changesCount
                oldest = max(oldest, oldestKept)
            }
            try db.execute(sql: "DELETE FROM shadow_answers WHERE at < ?", arguments: [oldest])
            return removed
        }
    }

    static func trace(_ row: SQLRow) throws -> DecisionTrace {
        DecisionTrace(requestId: row["request_id"], at: row["at"], target: row["target"], user: row["user_id"], model: row["model"],
                      version: row["version"], k: row["k"], items: try decode([DecisionTrace.Scored].self, row["items"]),
                      latencyMicros: row["latency_us"], shadows: try decode([DecisionTrace.Shadow].self, row["shadows"]), shed: row["shed"])
    }

    /// One trace by its request id.
    public func trace(_ requestId: String) throws -> DecisionTrace? {
        try sql.read { db in
            try SQLRow.fetchOne(db, sql: "SELECT * FROM decision_traces WHERE request_id = ?", arguments: [requestId]).map(Self.trace)
        }
    }

    /// A target's newest traces, newest first, traced at or after `since` (unix milliseconds).
    public func traces(target: String, since: Int64 = 0, limit: Int) throws -> [DecisionTrace] {
        try sql.read { db in
            try SQLRow.fetchAll(db, sql: "SELECT * FROM decision_traces WHERE target = ? AND at >= ? ORDER BY at DESC, request_id DESC LIMIT ?",
                                arguments: [target, since, limit]).map(Self.trace)
        }
    }

    /// How many traces a target has, and the total kept.
    public func traceCounts(target: String) throws -> (target: Int, total: Int) {
        try sql.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM decision_traces WHERE target = ?", arguments: [target]) ?? 0,
             try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM decision_traces") ?? 0)
        }
    }

    /// Appends outcome samples; returns the last id given.
    @discardableResult
    public func recordFeedback(_ samples: [FeedbackSample], receivedAt: Int64) throws -> Int {
        try sql.write { db in
            for s in samples {
                try db.execute(sql: """
                    INSERT INTO feedback(received_at, at, request_id, target, model, version, template, user_id, item_id, outcome, weight)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [receivedAt, s.at, s.requestId, s.target, s.model, s.version, s.template, s.user, s.item, s.outcome, s.weight])
            }
            return try Int.fetchOne(db, sql: "SELECT MAX(id) FROM feedback") ?? 0
        }
    }

    /// Every outcome sample received for `template`'s models up to now, oldest first, as the
    /// rows a training run appends to its dataset; `through` pins it (the last id included).
    public func feedbackSnapshot(template: String) throws -> FeedbackSnapshot {
        try sql.read { db in try feedbackSnapshot(db, template: template) }
    }

    func feedbackSnapshot(_ db: any SQLSession, template: String) throws -> FeedbackSnapshot {
        do {
            var snapshot = FeedbackSnapshot(through: 0, rows: [])
            for row in try SQLRow.fetchAll(db, sql: "SELECT id, user_id, item_id, outcome, at FROM feedback WHERE template = ? ORDER BY id",
                                           arguments: [template]) {
                snapshot.rows.append(.init(user: row["user_id"], item: row["item_id"], outcome: row["outcome"], at: row["at"]))
                snapshot.through = row["id"]
            }
            return snapshot
        }
    }

    /// Outcome samples per template: total, and those of types the template gives no weight.
    public func feedbackCounts() throws -> [String: (total: Int, unknown: Int)] {
        try sql.read { db in
            var out: [String: (Int, Int)] = [:]
            for row in try SQLRow.fetchAll(db, sql: """
                SELECT template, COUNT(*) AS n, SUM(CASE WHEN weight IS NULL THEN 1 ELSE 0 END) AS unknown FROM feedback GROUP BY template
                """) {
                out[row["template"]] = (row["n"], row["unknown"])
            }
            return out
        }
    }

    /// What a target's A/B readout is computed from: per route ("model@version"), the requests
    /// traced at or after `since` (unix milliseconds) and the reward sums of the outcomes
    /// attributed to them by request id; outcomes without a request id; unknown outcome types.
    public func experimentSums(target: String, since: Int64) throws -> (sums: [String: ABReadout.RouteSums], unattributed: Int, unknown: [String: Int]) {
        try sql.read { db in try experimentSums(db, target: target, since: since) }
    }

    func experimentSums(_ db: any SQLSession, target: String, since: Int64) throws -> (sums: [String: ABReadout.RouteSums], unattributed: Int, unknown: [String: Int]) {
        do {
            var sums: [String: ABReadout.RouteSums] = [:]
            for row in try SQLRow.fetchAll(db, sql: """
                SELECT model, version, COUNT(*) AS n FROM decision_traces WHERE target = ? AND at >= ? GROUP BY model, version
                """, arguments: [target, since]) {
                let model: String = row["model"], version: Int = row["version"]
                sums["\(model)@\(version)", default: .init()].requests = row["n"]
            }
            // Each traced request's reward: the sum of its outcomes' weights.
            for row in try SQLRow.fetchAll(db, sql: """
                SELECT t.model, t.version, f.request_id, SUM(COALESCE(f.weight, 0)) AS reward FROM feedback f
                JOIN decision_traces t ON t.request_id = f.request_id
                WHERE t.target = ? AND t.at >= ? GROUP BY t.model, t.version, f.request_id
                """, arguments: [target, since]) {
                let model: String = row["model"], version: Int = row["version"], reward: Double = row["reward"]
                let key = "\(model)@\(version)"
                sums[key, default: .init()].rewardSum += reward
                sums[key, default: .init()].rewardSquares += reward * reward
            }
            var unknown: [String: Int] = [:]
            for row in try SQLRow.fetchAll(db, sql: """
                SELECT t.model, t.version, f.outcome, COUNT(*) AS n, MAX(CASE WHEN f.weight IS NULL THEN 1 ELSE 0 END) AS unknown FROM feedback f
                JOIN decision_traces t ON t.request_id = f.request_id
                WHERE t.target = ? AND t.at >= ? GROUP BY t.model, t.version, f.outcome
                """, arguments: [target, since]) {
                let model: String = row["model"], version: Int = row["version"], outcome: String = row["outcome"], n: Int = row["n"]
                sums["\(model)@\(version)", default: .init()].outcomes[outcome] = n
                if (row["unknown"] as Int) == 1 { unknown[outcome, default: 0] += n }
            }
            let unattributed = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM feedback WHERE target = ? AND request_id IS NULL AND at >= ?",
                                                arguments: [target, since / 1000]) ?? 0
            return (sums, unattributed, unknown)
        }
    }
}

/// One outcome as recorded: who, which item, what happened, and the route that served it.
public struct FeedbackSample: Sendable, Equatable {
    /// Unix seconds (when the outcome happened).
    public var at: Int64
    public var requestId: String?
    public var target: String
    public var model: String
    public var version: Int
    /// The served model's template: every model trained from it learns from this sample.
    public var template: String
    public var user: String
    public var item: String
    public var outcome: String
    /// The template's weight of `outcome` when received; nil: an outcome type it does not weigh.
    public var weight: Double?

    public init(at: Int64, requestId: String?, target: String, model: String, version: Int, template: String, user: String, item: String,
                outcome: String, weight: Double?) {
        self.at = at
        self.requestId = requestId
        self.target = target
        self.model = model
        self.version = version
        self.template = template
        self.user = user
        self.item = item
        self.outcome = outcome
        self.weight = weight
    }
}

/// A target's traces and how its shadows agree with what was served (`cairn traces`, the API).
public struct TraceReport: Encodable, Sendable {
    public var formatVersion = "1"
    public var target: String
    /// Traces kept for this target.
    public var kept: Int
    /// Over the newest `TraceReport.window` traces.
    public var shadows: [ShadowSummary]
    /// The newest traces, newest first.
    public var traces: [DecisionTrace]

    /// How many of the newest traces the shadow summaries read.
    public static let window = 10_000

    public static func of(target: String, db: RegistryDatabase, limit: Int) throws -> TraceReport {
        let recent = try db.traces(target: target, limit: window)
        return TraceReport(target: target, kept: try db.traceCounts(target: target).target, shadows: ShadowSummary.of(recent),
                           traces: Array(recent.prefix(limit)))
    }
}

/// A target's A/B readout from the registry.
public enum ExperimentReport {
    /// The readout of `target`'s live routes over requests traced since `since` (unix seconds;
    /// default: when the live routes were promoted).
    public static func readout(target: String, db: RegistryDatabase, since: Int64?) throws -> Result<ABReadout, CairnError> {
        guard let live = try db.observedState().targets[target], live.assigned, !live.routes.isEmpty else {
            return .failure(CairnError("ServingTarget/\(target) serves nothing", hint: "`cairn status` lists the targets"))
        }
        let from = try since ?? db.promotedAt(target: target) ?? 0
        let (sums, unattributed, unknown) = try db.experimentSums(target: target, since: from * 1000)
        return .success(ABReadout.compute(target: target, since: from, routes: live.routes, sums: sums, unattributed: unattributed,
                                          unknownOutcomes: unknown))
    }
}

extension RegistryDatabase {
    /// When a target's live routes were last changed (unix seconds).
    public func promotedAt(target: String) throws -> Int64? {
        try sql.read { db in try Int64.fetchOne(db, sql: "SELECT promoted_at FROM serving_targets WHERE name = ?", arguments: [target]) }
    }
}
