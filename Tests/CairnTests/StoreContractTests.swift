import CairnCore
import CairnReconcile
import CairnStore
import CairnTesting
import CairnTraining
import Foundation
import GRDB
import Testing

/// The rest of the store's contract (beside StoreTests): runs, leases, tokens, break-glass,
/// passes, history and tamper detection, each on SQLite and on PostgreSQL.
@Suite struct StoreContractTests {
    let dir = TempDir("cairn-contract")
    static let t0: Int64 = 1_800_000_000

    /// A registry with the fresh-fleet case applied: two models queued for training.
    func applied(_ backend: Backend) throws -> (RegistryDatabase, LeaseHolder, String) {
        let location = try backend.location(in: dir)
        let db = try RegistryDatabase(location: location)
        let holder = LeaseHolder()
        try ReconcilePass.acquireLease(db, holder, wait: 0, clock: ManualClock(at: Double(Self.t0)))
        let plan = try PlannerCase(name: "01-fresh-fleet").run()
        _ = try db.apply(plan, holder: holder, context: AuditContext(revision: plan.revision, author: "t", actor: "test"), now: { Self.t0 })
        return (db, holder, location)
    }

    @Test(arguments: Backend.available) func runsAreClaimedOnceHeartbeatAndComeBackWhenTheirWorkerIsLost(_ backend: Backend) throws {
        let (db, _, _) = try applied(backend)
        #expect(try db.runStateCounts() == ["queued": 2])
        let first = try #require(try db.claimRun(holder: "w1", leaseSeconds: 60, now: Self.t0))
        let second = try #require(try db.claimRun(holder: "w2", leaseSeconds: 60, now: Self.t0))
        #expect(first.id != second.id)
        #expect(try db.claimRun(holder: "w3", now: Self.t0) == nil)
        #expect(try db.heartbeat(first.id, holder: "w1", leaseSeconds: 60, now: Self.t0 + 30))
        #expect(try !db.heartbeat(first.id, holder: "w2", now: Self.t0 + 30))
        #expect(try db.liveRunFolders(now: Self.t0 + 61) == ["run-\(first.id)-1"])
        // w2 was lost: its lease expired; the run is queued again after a backoff.
        #expect(try db.requeueExpiredRuns(now: Self.t0 + 61, baseDelay: 30) == [second.id])
        #expect(try db.claimRun(holder: "w3", now: Self.t0 + 62) == nil)
        let retried = try #require(try db.claimRun(holder: "w3", now: Self.t0 + 91))
        #expect(retried.id == second.id && retried.attempt == 2)
        // A stopping worker hands its run back without spending an attempt.
        try db.releaseRun(retried.id, holder: "w3")
        #expect(try db.claimRun(holder: "w4", now: Self.t0 + 92)?.attempt == 2)
        try db.failRun(first.id, holder: "w1", reason: "trainer exited 1", log: "boom", now: Self.t0 + 100)
        #expect(throws: CairnError.self) { try db.failRun(first.id, holder: "w1", reason: "again", now: Self.t0 + 101) }
        let (summary, log) = try #require(try db.runLog(first.id))
        #expect(summary.state == "failed" && log == "boom")
        #expect(try db.recentRuns(limit: 1).map(\.id) == [second.id])
        #expect(try db.verifyAudit() == nil)
        #expect(try db.verifyState().isEmpty)
    }

    @Test(arguments: Backend.available) func tokensAreHashedAuditedAndRevoked(_ backend: Backend) throws {
        let (db, _, _) = try applied(backend)
        #expect(try !db.hasActiveTokens())
        let token = try db.createToken(name: "ci", scope: .read, by: "ops", at: Self.t0)
        #expect(throws: CairnError.self) { _ = try db.createToken(name: "ci", scope: .admin, by: "ops", at: Self.t0) }
        #expect(try db.scope(ofToken: token) == .read)
        #expect(try db.scope(ofToken: token + "0") == nil)
        #expect(try db.revokeToken(name: "ci", by: "ops", at: Self.t0 + 1))
        #expect(try !db.revokeToken(name: "ci", by: "ops", at: Self.t0 + 2))
        #expect(try db.scope(ofToken: token) == nil)
        #expect(try db.tokens().map(\.name) == ["ci"])
        #expect(try db.history(RegistryDatabase.HistoryFilter(limit: 2)).map(\.action) == [.tokenRevoke, .tokenCreate])
        #expect(try db.verifyAudit() == nil)
    }

    @Test(arguments: Backend.available) func passesSuspensionAndTheBoundSourceAreKept(_ backend: Backend) throws {
        let (db, _, location) = try applied(backend)
        try db.recordFailedPass(revision: "abc", revisionName: "main", result: "invalid", message: "models/a.yaml:3:1: bad", at: Self.t0 + 5)
        let pass = try #require(try db.lastPass())
        #expect(pass.revision == "abc" && pass.result == "invalid" && pass.message == "models/a.yaml:3:1: bad" && pass.at == Self.t0 + 5)
        try db.bindSource(BoundSource(rootCommit: "r1", manifestRoot: "fleet"))
        try db.bindSource(BoundSource(rootCommit: "r2", manifestRoot: ""))
        #expect(try db.boundSource() == BoundSource(rootCommit: "r1", manifestRoot: "fleet"))
        let generation = try db.generation()
        #expect(try db.setSuspended(true, actor: "ops", at: Self.t0 + 6))
        #expect(try !db.setSuspended(true, actor: "ops", at: Self.t0 + 7))
        #expect(try db.suspension()?.by == "ops" && db.suspension()?.at == Self.t0 + 6)
        #expect(try db.generation() == generation + 1)
        // A reader opened on the same registry sees all of it.
        let reader = try #require(try RegistryDatabase.openForReading(location: location))
        #expect(try reader.suspension()?.by == "ops")
        #expect(try reader.observedState().models.keys.sorted() == ["home-a", "home-b"])
    }

    @Test(arguments: Backend.available) func breakGlassRollbackIsDriftAndAudited(_ backend: Backend) throws {
        let (db, holder, _) = try applied(backend)
        // Two approved versions of home-a (gated at ndcg@10 ≥ 0.2): train, then retrain the same request.
        var request: TrainRequest?
        for metric in [0.3, 0.4] {
            if let request {
                let again = Plan(revision: request.commit, revisionName: "main", manifestRoot: "", manifestCount: 0,
                                 observedGeneration: try db.generation(), lastAppliedRevision: nil,
                                 changes: [Change(action: .train, address: ManifestAddress(.model, "home-a"), version: 2, after: .from(request),
                                                  reason: "retrain")], blocked: [], drift: [])
                _ = try db.apply(again, holder: holder, context: AuditContext(revision: again.revision, author: nil, actor: "test"), now: { Self.t0 + 10 })
            }
            while let run = try db.claimRun(holder: "w", now: Self.t0 + 20) {
                if run.model == "home-a" { request = run.request }
                _ = try TrainingWorker.record(store: db, run: run, holder: "w", artifacts: nil,
                                              success: RunSuccess(metrics: ["ndcg@10": metric], datasetHash: "d\(metric)", trainerVersion: "t"), now: Self.t0 + 20)
            }
        }
        #expect(try db.versions(of: "home-a")?.map(\.status) == [.approved, .approved])
        let promote = Plan(revision: String(repeating: "c", count: 40), revisionName: "main", manifestRoot: "", manifestCount: 0,
                           observedGeneration: try db.generation(), lastAppliedRevision: nil,
                           changes: [Change(action: .promote, address: ManifestAddress(parsing: "ServingTarget/acme")!,
                                            after: .from(Assignment(tenant: "acme", surface: "home", routes: [LiveRoute(model: "home-a", version: 2, weight: 100)], shadow: [])),
                                            reason: "declared")], blocked: [], drift: [])
        _ = try db.apply(promote, holder: holder, context: AuditContext(revision: promote.revision, author: nil, actor: "test"), now: { Self.t0 + 30 })
        let (old, new) = try db.rollback(target: "acme", model: nil, to: 1, actor: "oncall", holder: holder, at: Self.t0 + 40)
        #expect(old.version == 2 && new.version == 1)
        let target = try #require(try db.observedState().targets["acme"])
        #expect(target.routes.map(\.version) == [1])
        #expect(target.drift?.actor == "oncall")
        #expect(try db.history(RegistryDatabase.HistoryFilter(target: "acme", limit: 5)).map(\.actor) == ["oncall", "test"])
        #expect(try db.history(RegistryDatabase.HistoryFilter(model: "home-a", since: Self.t0 + 30, limit: 10)).count == 2)
        #expect(throws: CairnError.self) { _ = try db.rollback(target: "acme", model: nil, to: 9, actor: "oncall", holder: holder, at: Self.t0 + 41) }
        #expect(try db.verifyAudit() == nil)
    }

    /// Runs SQL beside Cairn, as someone with the database's password (or the file) could.
    func edit(_ backend: Backend, _ location: String, _ sql: String) throws {
        switch backend {
        case .sqlite: try DatabaseQueue(path: location).write { try $0.execute(sql: sql) }
        case .postgres:
            let raw = try PostgresExecutor(try PostgresLocation(parsing: location))
            defer { raw.close() }
            try raw.write { try $0.execute(sql: sql, arguments: []) }
        }
    }

    @Test(arguments: Backend.available) func editsBesideCairnAreRefusedOrFound(_ backend: Backend) throws {
        let (db, _, location) = try applied(backend)
        let run = try #require(try db.claimRun(holder: "w", now: Self.t0))
        _ = try TrainingWorker.record(store: db, run: run, holder: "w", artifacts: nil,
                                      success: RunSuccess(metrics: ["ndcg@10": 0.01], datasetHash: "d", trainerVersion: "t"), now: Self.t0)
        // The history is append-only in the database itself.
        #expect(throws: (any Error).self) { try edit(backend, location, "UPDATE audit_log SET reason = 'nothing happened'") }
        #expect(throws: (any Error).self) { try edit(backend, location, "DELETE FROM audit_log") }
        #expect(try db.verifyAudit() == nil)
        // A decision forged in the table keeps the chain intact, but not the state.
        try edit(backend, location, "UPDATE versions SET status = 'approved'")
        let mismatches = try db.verifyState().map(\.description)
        #expect(mismatches.count == 1)
        #expect(mismatches.first?.hasPrefix("versions \(run.model) v1: status is approved, the history says") == true)
        // A row slipped in before the chain's first (inserts are not refused by the triggers) breaks it.
        try edit(backend, location, """
            INSERT INTO audit_log(id, at, action, address, reason, actor, prev_hash, hash)
            VALUES (-1, 0, 'approve', 'Model/\(run.model)', 'forged', 'someone', 'x', 'y')
            """)
        #expect(try db.verifyAudit()?.id == -1)
    }

    /// A history longer than one page (10,000 rows) is verified across pages.
    @Test(arguments: Backend.available) func aLongHistoryIsVerifiedPageByPage(_ backend: Backend) throws {
        let db = try backend.fresh(in: dir)
        try db.appendSyntheticHistory(rows: 10_001, models: ["m1", "m2", "m3"], startingAt: Self.t0)
        #expect(try db.auditCount() == 10_001)
        #expect(try db.verifyAudit() == nil)
    }

    /// PostgreSQL: an applier on another host that dies (its connection ends) gives up the lease at
    /// once; one that comes back after the takeover cannot apply a single step.
    @Test(.enabled(if: TestPostgres.available, TestPostgres.skipMessage))
    func aDeadApplierOnAnotherHostIsTakenOverAtOnceAndCannotComeBack() throws {
        let location = try TestPostgres.freshDatabase()
        let first = try RegistryDatabase(location: location), second = try RegistryDatabase(location: location)
        let (a, b) = (Self.replicaA, Self.replicaB)
        try ReconcilePass.acquireLease(first, a, wait: 0, clock: ManualClock(at: Double(Self.t0)))
        #expect(throws: CairnError.self) {
            try ReconcilePass.acquireLease(second, b, wait: 0.3, clock: ManualClock(at: Double(Self.t0 + 1), advancesOnWait: true))
        }
        // replica-a's process ends: its connections close, and with them its session lock.
        first.close()
        try ReconcilePass.acquireLease(second, b, wait: 0, clock: ManualClock(at: Double(Self.t0 + 2)))
        // replica-a comes back with the plan it was applying: refused at its first step.
        let revived = try RegistryDatabase(location: location)
        let plan = try expectApplyRefused(revived, holder: a, at: Self.t0 + 3)
        _ = try second.apply(plan, holder: b, context: AuditContext(revision: plan.revision, author: nil, actor: "replica-b"), now: { Self.t0 + 4 })
        #expect(try second.auditCount() == 8)
    }

    /// The concurrency suite at full size saw a reconcile lose a live lease: an applier that had
    /// deleted its lease row but not yet let go of its session lock let another write a lease
    /// without the lock, and the next applier to find the lock free took that live lease over.
    /// Here four appliers, each with its own handle, take the lease, apply an empty plan (which
    /// renews it) and let it go, again and again: none ever loses a lease it took.
    @Test(.enabled(if: TestPostgres.available, TestPostgres.skipMessage))
    func appliersTakingTurnsNeverLoseALeaseTheyHold() throws {
        let location = try TestPostgres.freshDatabase()
        let handles = try (0..<4).map { _ in try RegistryDatabase(location: location) }
        let turnsEach = 25
        defer { handles.forEach { $0.close() } }
        var empty = try PlannerCase(name: "01-fresh-fleet").run()
        empty.changes = []
        let plan = empty
        let lost = Locked<[String]>([]), turns = Locked(0)
        DispatchQueue.concurrentPerform(iterations: handles.count) { i in
            for n in 0..<turnsEach {
                let holder = LeaseHolder(id: "applier-\(i)-\(n)", pid: Int32(10_000 + i), host: "host-\(i)")
                do {
                    try ReconcilePass.acquireLease(handles[i], holder, wait: 30, clock: SystemClock())
                    // Holding it a while, as a reconcile does while it plans.
                    Thread.sleep(forTimeInterval: 0.02)
                    _ = try handles[i].apply(plan, holder: holder, context: AuditContext(revision: plan.revision, author: nil, actor: holder.id),
                                             now: { Int64(Date().timeIntervalSince1970) })
                    try handles[i].releaseLease(holder)
                    turns.update { $0 += 1 }
                } catch {
                    lost.update { $0.append("\(holder.id): \(error)") }
                }
            }
        }
        #expect(lost.update { $0 }.isEmpty, "\(lost.update { $0 }.prefix(3))")
        #expect(turns.update { $0 } == handles.count * turnsEach)
    }

    static let replicaA = LeaseHolder(id: "replica-a", pid: 4242, host: "replica-a.example")
    static let replicaB = LeaseHolder(id: "replica-b", pid: 4343, host: "replica-b.example")

    /// `holder` no longer holds the lease: its apply of the fresh fleet is refused at the first
    /// step, and the registry holds no audit row of it. Returns the plan it tried.
    func expectApplyRefused(_ db: RegistryDatabase, holder: LeaseHolder, at: Int64) throws -> Plan {
        let plan = try PlannerCase(name: "01-fresh-fleet").run()
        #expect {
            _ = try db.apply(plan, holder: holder, context: AuditContext(revision: plan.revision, author: nil, actor: holder.id), now: { at })
        } throws: { error in
            (error as? CairnError)?.message.hasPrefix("lost the applier lease") == true
        }
        #expect(try db.auditCount() == 0)
        return plan
    }

    /// PostgreSQL: a change another process commits is announced to every listening process
    /// (LISTEN/NOTIFY); SQLite has no such channel (its processes poll the generation).
    @Test(arguments: Backend.available) func changesAreAnnouncedToListeningProcesses(_ backend: Backend) throws {
        let (db, _, location) = try applied(backend)
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var count = 0
            func add() { lock.withLock { count += 1 } }
            var value: Int { lock.withLock { count } }
        }
        let seen = Seen()
        guard let watch = db.watchChanges({ seen.add() }) else {
            #expect(backend == .sqlite)
            return
        }
        defer { watch.stop() }
        // Another process suspends and resumes applying until the watch has heard one (it starts
        // listening on its own thread); every committed generation bump is announced.
        let deadline = Date().addingTimeInterval(20)
        var suspended = false
        while seen.value == 0, Date() < deadline {
            suspended.toggle()
            let command = try cairn([suspended ? "suspend" : "resume", "--db", location])
            #expect(command.status == 0, "\(command.stdout)\(command.stderr)")
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(seen.value > 0, "no change was announced in 20 s")
        // A write that rolls back announces nothing.
        let before = seen.value
        #expect(throws: CairnError.self) { _ = try db.rollback(target: "nowhere", model: nil, to: 1, actor: "t", holder: LeaseHolder(), at: Self.t0) }
        Thread.sleep(forTimeInterval: 0.5)
        #expect(seen.value == before)
    }

    /// A worker without the signing key submits its result; the control plane reads the
    /// artifact again from the store, and signs and records the version only if it hashes to
    /// what the worker reported. Attack: the stored artifact is changed after the worker stored
    /// it (another host on the shared mount): nothing is signed, the run fails.
    @Test(arguments: Backend.available) func theControlPlaneSignsOnlyWhatTheStoreHolds(_ backend: Backend) throws {
        let (db, _, _) = try applied(backend)
        let store = ArtifactStore(root: dir.url.appendingPathComponent("artifacts-\(backend)"))
        let key = try SigningKey.parse(String(repeating: "ab", count: 32), source: "test")
        let control = SignedArtifactStore(store: store, key: key), worker = UnsignedArtifactStore(store: store)
        func staged(_ text: String) throws -> String {
            let folder = dir.url.appendingPathComponent("staging-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try text.write(to: folder.appendingPathComponent("model.json"), atomically: true, encoding: .utf8)
            return try worker.keep(staging: folder.path)
        }
        let first = try #require(try db.claimRun(holder: "gpu-1", leaseSeconds: 10, now: Self.t0))
        let second = try #require(try db.claimRun(holder: "gpu-2", leaseSeconds: 10, now: Self.t0))
        let good = try staged("{\"weights\": [1, 2, 3]}"), bad = try staged("{\"weights\": [4, 5, 6]}")
        for (run, holder, hash) in [(first, "gpu-1", good), (second, "gpu-2", bad)] {
            try db.submitResult(run: run.id, holder: holder,
                                success: RunSuccess(metrics: ["ndcg@10": 0.3], datasetHash: "d", trainerVersion: "t", artifactHash: hash), now: Self.t0 + 1)
        }
        // The workers are gone; their runs wait for the control plane, not for a retry.
        #expect(try db.requeueExpiredRuns(now: Self.t0 + 60, baseDelay: 1) == [])
        #expect(try db.submittedResults().map(\.run.id) == [first.id, second.id])
        // Someone with the shared mount rewrites the second artifact before it is recorded.
        try "{\"weights\": [6, 6, 6]}".write(to: store.folder(bad).appendingPathComponent("model.json"), atomically: true, encoding: .utf8)
        var lines: [String] = []
        #expect(TrainingWorker.recordSubmitted(store: db, artifacts: control, now: { Self.t0 + 2 }) { lines.append($0) } == 2)
        #expect(try db.submittedResults().isEmpty)
        let recorded = try #require(try db.versions(of: first.model)?.first)
        #expect(recorded.artifactHash == good)
        #expect(recorded.artifactSignature.map {
            key.verify($0, contentHash: good, identity: VersionIdentity(model: recorded.model, version: recorded.number, fingerprint: recorded.fingerprint))
        } == true)
        #expect(try db.versions(of: second.model)?.isEmpty == true)
        let failed = try #require(try db.runLog(second.id)?.0)
        #expect(failed.state == "failed")
        #expect(failed.reason?.contains("its artifact is not in the store as the worker reported it") == true, "\(lines)")
        #expect(try db.verifyState().isEmpty)
        #expect(try db.verifyAudit() == nil)
    }

    /// Discovery, tuning and deletion on both databases: recorded, audited, and the state still
    /// matches its history; a deleted version's number is never given again.
    @Test(arguments: Backend.available) func discoveryTuningAndDeletionAreRecordedAndVerified(_ backend: Backend) throws {
        let (db, holder, location) = try applied(backend)
        let tuning = TuningResult(metric: "ndcg@10", goal: .maximize, trials: [TuningTrial(trial: 1, params: ["neighbors": .int(5)], metrics: ["ndcg@10": 0.2], seconds: 0.5),
                                                                              TuningTrial(trial: 2, params: ["neighbors": .int(20)], metrics: ["ndcg@10": 0.3], seconds: 0.7)],
                                  chosen: 2, refit: true)
        while let run = try db.claimRun(holder: "w", now: Self.t0) {
            try TrainingWorker.record(store: db, run: run, holder: "w", artifacts: nil,
                                      success: RunSuccess(metrics: ["ndcg@10": 0.3], datasetHash: "d", trainerVersion: "t", tuning: tuning), now: Self.t0 + 1)
        }
        let observed = try db.observedState()
        #expect(observed.models["home-a"]?.versions.first?.tuning == tuning)
        // A discovered draft: create it, then record its traits.
        var draft = try #require(observed.models["home-b"]?.spec)
        draft.metadata.name = "lab-draft"
        draft.lifecycle = .draft
        draft.stage = .none
        draft.family = nil
        let traits = try DiscoveredTraits.measure(Array("user_id,item_id,event,timestamp\nu1,i1,click,1\n".utf8), events: ["click"], datasetHash: "h", commit: "c")
        let address = ManifestAddress(.model, "lab-draft")
        var plan = Plan(revision: String(repeating: "d", count: 40), revisionName: "main", manifestRoot: "", manifestCount: 1,
                        observedGeneration: observed.generation, lastAppliedRevision: nil,
                        changes: [Change(action: .create, address: address, after: .from(draft), reason: "lifecycle draft"),
                                  Change(action: .discover, address: address, after: .from(traits), reason: traits.summary),
                                  Change(action: .delete, address: ManifestAddress(.model, "home-b"), version: 1, before: nil, reason: "listed in decisions.delete")],
                        blocked: [], drift: [], candidates: [], skipped: [])
        let context = AuditContext(revision: plan.revision, author: "t", actor: "test")
        _ = try db.apply(plan, holder: holder, context: context, now: { Self.t0 + 2 })
        let after = try db.observedState()
        #expect(after.models["lab-draft"]?.discovered == traits && after.models["lab-draft"]?.spec.lifecycle == .draft)
        #expect(after.models["home-b"]?.versions.isEmpty == true)
        #expect(try db.verifyState().isEmpty && db.verifyAudit() == nil)
        #expect(try db.nextVersionNumber("home-b") == 2, "v1 was deleted; its number is not given again")
        // Deleting a whole model takes its versions and runs; the history keeps the record.
        plan.observedGeneration = after.generation
        plan.changes = [Change(action: .delete, address: ManifestAddress(.model, "home-a"), before: .from(after.models["home-a"]!), reason: "lifecycle deleted")]
        _ = try db.apply(plan, holder: holder, context: context, now: { Self.t0 + 3 })
        let gone = try db.observedState()
        #expect(gone.models["home-a"] == nil && !gone.runs.contains { $0.model == "home-a" })
        #expect(try db.verifyState().isEmpty && db.verifyAudit() == nil)
        // Editing the discovered traits beside Cairn is found.
        try edit(backend, location, "UPDATE models SET discovered = '{}' WHERE name = 'lab-draft'")
        #expect(try db.verifyState().map(\.row) == ["models lab-draft"])
    }

    /// The rollback guard's reading when traffic and the promotion fall in the same second
    /// (`promoted_at` has seconds, traces milliseconds): the replaced version's requests count.
    @Test(arguments: Backend.available) func theGuardReadsTheReplacedVersionsRequestsOfThePromotionsSecond(_ backend: Backend) throws {
        let (db, holder, _) = try applied(backend)
        while let run = try db.claimRun(holder: "w", now: Self.t0) {
            try TrainingWorker.record(store: db, run: run, holder: "w", artifacts: nil,
                                      success: RunSuccess(metrics: ["ndcg@10": 0.3], datasetHash: "d", trainerVersion: "t"), now: Self.t0)
        }
        let context = AuditContext(revision: String(repeating: "e", count: 40), author: "t", actor: "test")
        func apply(_ changes: [Change]) throws {
            let plan = Plan(revision: context.revision!, revisionName: "main", manifestRoot: "", manifestCount: 1, observedGeneration: try db.generation(),
                            lastAppliedRevision: nil, changes: changes, blocked: [], drift: [], candidates: [], skipped: [])
            _ = try db.apply(plan, holder: holder, context: context, now: { Self.t0 + 10 })
        }
        let a = LiveRoute(model: "home-a", version: 1, weight: 100), b = LiveRoute(model: "home-b", version: 1, weight: 100)
        let address = ManifestAddress(.servingTarget, "g")
        try apply(["home-a", "home-b"].map { Change(action: .approve, address: ManifestAddress(.model, $0), version: 1,
                                                     after: .from(Decision(model: $0, version: 1, status: .approved)), reason: "test") }
                  + [Change(action: .promote, address: address, after: .from(Assignment(tenant: "t", surface: "s", routes: [a], shadow: [])), reason: "first")])
        // Requests to home-a in the second of the next promotion, then to home-b after it.
        let ms = (Self.t0 + 10) * 1000
        func trace(_ n: Int, _ route: LiveRoute, at: Int64) -> DecisionTrace {
            DecisionTrace(requestId: "\(route.model)-\(n)", at: at, target: "g", user: "u\(n)", model: route.model, version: 1, k: 1,
                          items: [DecisionTrace.Scored(item: "i", score: 1)], latencyMicros: 100, shadows: [])
        }
        try db.recordTraces((0..<5).map { trace($0, a, at: ms + 100 + Int64($0)) } + (0..<5).map { trace($0, b, at: ms + 900 + Int64($0)) })
        try apply([Change(action: .promote, address: address, before: .from(Assignment(tenant: "t", surface: "s", routes: [a], shadow: [])),
                          after: .from(Assignment(tenant: "t", surface: "s", routes: [b], shadow: [])), reason: "second")])
        let reading = try #require(try db.evidence(EvidenceRequest(guardTargets: ["g"])).guards["g"])
        #expect(reading.previousRoutes == [a] && reading.comparisons.count == 1)
        #expect(reading.comparisons.first?.current.requests == 5 && reading.comparisons.first?.previous?.requests == 5, "\(reading)")
    }

    /// A leader cut off from the database (a partition: its connection, and so its session lock,
    /// still look alive to the server) is taken over when its lease expires, not before; when it
    /// comes back it cannot apply a step.
    @Test(arguments: Backend.available) func aCutOffApplierIsTakenOverWhenItsLeaseExpires(_ backend: Backend) throws {
        let location = try backend.location(in: dir)
        let leader = try RegistryDatabase(location: location), follower = try RegistryDatabase(location: location)
        let (a, b) = (Self.replicaA, Self.replicaB)
        try ReconcilePass.acquireLease(leader, a, wait: 0, clock: ManualClock(at: Double(Self.t0)))
        #expect(throws: CairnError.self) {
            try ReconcilePass.acquireLease(follower, b, wait: 0, clock: ManualClock(at: Double(Self.t0 + 119)))
        }
        try ReconcilePass.acquireLease(follower, b, wait: 0, clock: ManualClock(at: Double(Self.t0 + 121)))
        _ = try expectApplyRefused(leader, holder: a, at: Self.t0 + 122)
        leader.close()
    }
}
