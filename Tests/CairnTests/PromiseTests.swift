import CairnCore
import CairnReconcile
import CairnStore
import CairnTesting
import Foundation
import GRDB
import Testing

/// Promises RELIABILITY.md makes that no other test held the code to, each on a real SQLite
/// file: a lost lease writes nothing, the audit table refuses edits by its own triggers, runs
/// stop after their attempts, a superseded run is cancelled at apply.
@Suite struct PromiseTests {
    let dir = TempDir("cairn-promises")
    static let t0: Int64 = 1_800_000_000

    func database() throws -> RegistryDatabase { try RegistryDatabase(path: dir.path + "/r.db") }

    func counts(_ db: RegistryDatabase) throws -> [String: Int] {
        try DatabaseQueue(path: dir.path + "/r.db").read { db in
            var out: [String: Int] = [:]
            for table in ["models", "templates", "outcome_weights", "serving_targets", "training_runs", "versions", "audit_log"] {
                out[table] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)")
            }
            return out
        }
    }

    /// A reconcile whose lease another applier took over (it stalled past the expiry) applies
    /// nothing: the step that finds the lease gone rolls back whole.
    @Test func aReconcileThatLostItsLeaseWritesNothing() throws {
        let db = try database()
        let slow = LeaseHolder(id: "slow"), next = LeaseHolder(id: "next", host: "ops-elsewhere")
        try ReconcilePass.acquireLease(db, slow, wait: 0, clock: ManualClock(at: Double(Self.t0)))
        let before = try counts(db)
        // 121 s later the lease has expired and another applier holds it.
        #expect(try db.tryAcquireLease(next, now: Self.t0 + 121) == nil)
        let plan = try PlannerCase(name: "01-fresh-fleet").run()
        #expect(throws: CairnError.self) {
            _ = try db.apply(plan, holder: slow, context: AuditContext(revision: plan.revision, author: "t", actor: "test"), now: { Self.t0 + 122 })
        }
        #expect(try counts(db) == before, "the step that lost its lease rolled back")
        // The holder that has it applies.
        let result = try db.apply(plan, holder: next, context: AuditContext(revision: plan.revision, author: "t", actor: "test"), now: { Self.t0 + 123 })
        #expect(result.applied == plan.changes.count && result.applied > 0)
    }

    /// Queues the runs of the fresh-fleet case; returns the database.
    func queued() throws -> RegistryDatabase {
        let db = try database()
        let holder = LeaseHolder()
        try ReconcilePass.acquireLease(db, holder, wait: 0, clock: ManualClock(at: Double(Self.t0)))
        let plan = try PlannerCase(name: "01-fresh-fleet").run()
        _ = try db.apply(plan, holder: holder, context: AuditContext(revision: plan.revision, author: "t", actor: "test"), now: { Self.t0 })
        #expect(try db.activeRunCounts().queued > 0)
        return db
    }

    /// A worker whose run lease expired (and whose run another worker took) cannot record a
    /// version for it: one run, one version.
    @Test func aWorkerThatLostItsRunsLeaseCannotRecordAVersion() throws {
        let db = try queued()
        let lost = try #require(try db.claimRun(holder: "w1", leaseSeconds: 60, now: Self.t0))
        #expect(try db.requeueExpiredRuns(now: Self.t0 + 61, baseDelay: 0) == [lost.id])
        let taken = try #require(try db.claimRun(holder: "w2", leaseSeconds: 60, now: Self.t0 + 62))
        #expect(taken.id == lost.id)
        let success = RunSuccess(metrics: ["ndcg@10": 0.3, "recall@20": 0.4], datasetHash: lost.request.inputs.dataset, trainerVersion: "t")
        #expect(throws: CairnError.self) {
            _ = try TrainingWorker.record(store: db, run: lost, holder: "w1", artifacts: nil, success: success, now: Self.t0 + 63)
        }
        #expect(try counts(db)["versions"] == 0)
        _ = try TrainingWorker.record(store: db, run: taken, holder: "w2", artifacts: nil, success: success, now: Self.t0 + 64)
        #expect(try counts(db)["versions"] == 1)
        #expect(try db.verifyAudit() == nil)
    }

    /// A run whose workers keep dying is failed after its attempts (3), not retried forever.
    @Test func runsStopAfterTheirAttempts() throws {
        let db = try queued()
        var now = Self.t0
        let first = try #require(try db.claimRun(holder: "w", leaseSeconds: 60, now: now))
        var attempts = 0
        while true {
            now += 61
            _ = try db.requeueExpiredRuns(now: now, baseDelay: 0)
            let state = try DatabaseQueue(path: dir.path + "/r.db").read {
                try Row.fetchOne($0, sql: "SELECT state, attempts, reason FROM training_runs WHERE id = ?", arguments: [first.id])!
            }
            attempts = state["attempts"]
            if state["state"] as String == "failed" {
                #expect((state["reason"] as String).contains("giving up after 3 attempts"))
                break
            }
            #expect(state["state"] as String == "queued")
            #expect(attempts < 3, "still queued after \(attempts) attempts")
            if attempts >= 3 { break }
            // Claim this very run again (others are queued too): by id, as the oldest due.
            var claimed: ClaimedRun?
            repeat { claimed = try db.claimRun(holder: "w", leaseSeconds: 60, now: now) } while claimed != nil && claimed!.id != first.id
            try #require(claimed?.id == first.id)
        }
        #expect(attempts == 3)
        #expect(try db.verifyAudit() == nil)
    }

    /// The audit table's own triggers refuse UPDATE and DELETE (nothing dropped first).
    @Test func theAuditTableRefusesUpdatesAndDeletes() throws {
        let db = try queued()
        let rows = try #require(try counts(db)["audit_log"])
        #expect(rows > 0)
        let raw = try DatabaseQueue(path: dir.path + "/r.db")
        for sql in ["UPDATE audit_log SET reason = 'rewritten' WHERE id = 1", "DELETE FROM audit_log WHERE id = (SELECT MAX(id) FROM audit_log)",
                    "DELETE FROM audit_log"] {
            #expect {
                try raw.write { try $0.execute(sql: sql) }
            } throws: { error in
                "\(error)".contains("audit_log is append-only")
            }
        }
        #expect(try counts(db)["audit_log"] == rows)
        #expect(try db.verifyAudit() == nil)
    }

    /// A queued run whose inputs changed before it ran is cancelled in the apply that queues
    /// its replacement: never trained on stale inputs, never left queued.
    @Test func aSupersededRunIsCancelledAtApply() throws {
        let fleet = try ReconcileEndToEndTests.Fleet()
        _ = try fleet.run(["reconcile"])
        func runs() throws -> [String] {
            try fleet.database().observedState().runs.filter { $0.model == "homepage-recs" }.map { "\($0.id) \($0.state.rawValue)" }
        }
        let first = try runs()
        #expect(first.count == 1 && first[0].hasSuffix(" queued"), "\(first)")
        let weights = fleet.repo.dir.url.appendingPathComponent("weights/retail-default.yaml")
        try fleet.repo.commit("weigh renewals more", files: ["weights/retail-default.yaml":
            try String(contentsOf: weights, encoding: .utf8).replacingOccurrences(of: "renewed: 1.2", with: "renewed: 1.5")])
        _ = try fleet.run(["reconcile"])
        let after = try runs()
        #expect(after.count == 2 && after[0] == first[0].replacingOccurrences(of: "queued", with: "cancelled") && after[1].hasSuffix(" queued"), "\(after)")
        let history = try fleet.runDB(["history", "--model", "homepage-recs", "--format", "json"])
        // The train row that queued the replacement says which run it cancelled.
        let cancelled = first[0].split(separator: " ")[0]
        #expect(history.stdout.contains("no version yet; cancels queued run \(cancelled)"), "\(history.stdout.prefix(2000))")
        #expect(try fleet.runDB(["audit", "verify"]).status == 0)
    }
}
