import CairnCore
import Foundation

extension RegistryDatabase {
    /// The evidence `request` asks for, read from the decision traces and feedback (one snapshot).
    public func evidence(_ request: EvidenceRequest) throws -> Evidence {
        guard !request.isEmpty else { return .none }
        return try sql.read { db in
            var evidence = Evidence()
            for v in request.shadowVersions {
                if let summary = try shadowSummary(db, model: v.model, version: v.version) {
                    evidence.shadows["\(v.model)@\(v.version)"] = summary
                }
            }
            for target in request.guardTargets {
                if let reading = try guardReading(db, target: target) { evidence.guards[target] = reading }
            }
            for target in request.readoutTargets {
                guard let row = try SQLRow.fetchOne(db, sql: "SELECT * FROM serving_targets WHERE name = ?", arguments: [target]) else { continue }
                let live = try servingTarget(row)
                let since: Int64 = row["promoted_at"]
                let (sums, unattributed, unknown) = try experimentSums(db, target: target, since: since * 1000)
                evidence.readouts[target] = ABReadout.compute(target: target, since: since, routes: live.routes, sums: sums,
                                                              unattributed: unattributed, unknownOutcomes: unknown)
            }
            return evidence
        }
    }

    /// A version's answers as a shadow, over every target (the newest 100,000).
    func shadowSummary(_ db: any SQLSession, model: String, version: Int) throws -> ShadowSummary? {
        let rows = try SQLRow.fetchAll(db, sql: """
            SELECT s.overlap, s.rank_correlation, s.latency_us, t.latency_us AS served_us FROM shadow_answers s
            JOIN decision_traces t ON t.request_id = s.request_id
            WHERE s.model = ? AND s.version = ? ORDER BY s.at DESC LIMIT 100000
            """, arguments: [model, version])
        guard !rows.isEmpty else { return nil }
        var overlap = 0.0, rank = 0.0, ranked = 0
        var latencies: [Int] = [], served: [Int] = []
        for row in rows {
            overlap += row["overlap"] as Double
            if let r: Double = row["rank_correlation"] {
                rank += r
                ranked += 1
            }
            latencies.append(row["latency_us"])
            served.append(row["served_us"])
        }
        let n = Double(rows.count)
        return ShadowSummary(model: model, version: version, requests: rows.count, meanOverlap: (overlap / n * 1e6).rounded() / 1e6,
                             meanRankCorrelation: ranked > 0 ? (rank / Double(ranked) * 1e6).rounded() / 1e6 : nil,
                             p50LatencyMicros: percentile(latencies, 0.5), p95LatencyMicros: percentile(latencies, 0.95),
                             servedP95LatencyMicros: percentile(served, 0.95))
    }

    /// What a target's rollback guard judges: each route its last promotion from git changed,
    /// since then, against the route of the same model (else the heaviest) it replaced, over the
    /// traces before the promotion.
    func guardReading(_ db: any SQLSession, target: String) throws -> GuardReading? {
        guard let row = try SQLRow.fetchOne(db, sql: "SELECT * FROM serving_targets WHERE name = ?", arguments: [target]) else { return nil }
        let live = try servingTarget(row)
        let promotedAt: Int64 = row["promoted_at"]
        // The routes before it: the last promotion's audit row says what it replaced.
        let before = try String.fetchOne(db, sql: """
            SELECT a.before FROM audit_log a WHERE a.address = ? AND a.action = 'promote' ORDER BY a.id DESC LIMIT 1
            """, arguments: [ManifestAddress(.servingTarget, target).description])
        let previous = (try before.map { try decode(Assignment.self, $0) })?.routes ?? []
        let since = promotedAt * 1000
        func side(_ route: LiveRoute, from: Int64, until: Int64) throws -> GuardReading.Side {
            let latencies = try Int.fetchAll(db, sql: """
                SELECT latency_us FROM decision_traces WHERE target = ? AND model = ? AND version = ? AND at >= ? AND at < ? ORDER BY at DESC LIMIT 100000
                """, arguments: [target, route.model, route.version, from, until])
            let reward = try Double.fetchOne(db, sql: """
                SELECT SUM(COALESCE(f.weight, 0)) FROM feedback f JOIN decision_traces t ON t.request_id = f.request_id
                WHERE t.target = ? AND t.model = ? AND t.version = ? AND t.at >= ? AND t.at < ?
                """, arguments: [target, route.model, route.version, from, until]) ?? 0
            return GuardReading.Side(model: route.model, version: route.version, requests: latencies.count,
                                     rewardPerRequest: latencies.isEmpty ? 0 : ((reward / Double(latencies.count)) * 1e6).rounded() / 1e6,
                                     p95LatencyMicros: percentile(latencies, 0.95))
        }
        let heaviest = previous.max { ($0.weight, $1.model) < ($1.weight, $0.model) }
        var comparisons: [GuardReading.Comparison] = []
        // `promoted_at` has whole seconds, traces milliseconds: the replaced version's requests in
        // the second of the promotion came before it (or were answered by it while the serving
        // cache caught up), so they count for it; without them, traffic and a promotion within one
        // second left the replaced side with no requests and the guard could never trip.
        let previousUntil = (promotedAt + 1) * 1000
        for route in live.routes where !previous.contains(where: { $0.model == route.model && $0.version == route.version }) {
            let replaced = previous.first { $0.model == route.model } ?? heaviest
            comparisons.append(GuardReading.Comparison(current: try side(route, from: since, until: Int64.max),
                                                       previous: try replaced.map { try side($0, from: 0, until: previousUntil) }))
        }
        return GuardReading(previousRoutes: previous, promotedAt: promotedAt, comparisons: comparisons)
    }
}

extension RegistryDatabase {
    /// The plan of `desired` against this registry now: its observed state and the online
    /// evidence the plan needs. Writes nothing.
    public func plan(_ desired: DesiredState, now: Int64, options: PlannerOptions) throws -> Plan {
        let observed = try observedState()
        return Planner.plan(desired: desired, observed: observed, evidence: try evidence(Planner.evidenceNeeded(desired: desired, observed: observed)),
                            now: now, options: options)
    }
}
