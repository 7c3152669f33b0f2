import CairnCore
import CairnReconcile
import CairnRender
import CairnStore
import CairnTesting
import Foundation
import GRDB
import Testing

/// The store contract: every test runs against SQLite and, when the test server is there, PostgreSQL.
@Suite struct StoreTests {
    /// A database in a temporary folder that lives as long as the suite instance.
    let dir = TempDir("cairn-db")

    /// A fresh registry on `backend`: the store contract runs on SQLite and on PostgreSQL.
    func freshDatabase(_ backend: Backend) throws -> RegistryDatabase {
        try backend.fresh(in: dir)
    }

    func applyCase(_ name: String, to db: RegistryDatabase, holder: LeaseHolder) throws -> (Plan, ApplyResult) {
        let plan = try PlannerCase(name: name).run()
        let result = try db.apply(plan, holder: holder, context: AuditContext(revision: plan.revision, author: "t", actor: "test"),
                                  now: { 1_800_000_000 })
        return (plan, result)
    }

    @Test(arguments: Backend.available) func championSwapCommitsAsOneStep(_ backend: Backend) throws {
        let db = try freshDatabase(backend)
        let holder = LeaseHolder()
        try ReconcilePass.acquireLease(db, holder, wait: 0, clock: ManualClock(at: Double(1_800_000_000)))
        // Build the observed side of the case for real: apply the base fleet, train, approve.
        let base = PlannerCase(name: "03-steady-state")
        let (loaded, tree) = try PlannerCase.load(base.folder.appendingPathComponent("desired"))
        let desired = try PlannerCase.desiredState(loaded, tree)
        var plan = Planner.plan(desired: desired, observed: try db.observedState(), now: 1_800_000_000)
        _ = try db.apply(plan, holder: holder, context: AuditContext(revision: plan.revision, author: nil, actor: "test"), now: { 1_800_000_000 })
        while let run = try db.claimRun(holder: "w", now: 1_800_000_000) {
            try TrainingWorker.record(store: db, run: run, holder: "w", artifacts: nil, success: RunSuccess(metrics: ["ndcg@10": 0.3], datasetHash: "d", trainerVersion: "t"), now: 1_800_000_000)
        }
        // home-b is manual: approve it through git, then swap the champion.
        let swap = PlannerCase(name: "05-champion-swap")
        let read = try PlannerCase.load(swap.folder.appendingPathComponent("desired"))
        var swapLoaded = read.0
        swapLoaded.manifests.models = swapLoaded.manifests.models.map { m in
            var m = m
            if m.metadata.name == "home-b" { m.decisions = Model.Decisions(approve: [1]) }
            return m
        }
        plan = Planner.plan(desired: try PlannerCase.desiredState(swapLoaded, read.1), observed: try db.observedState(), now: 1_800_000_000)
        let stage = try #require(plan.changes.firstIndex { $0.action == .stage && $0.address.description == "Model/home-b" })
        let demote = try #require(plan.changes.firstIndex { $0.action == .demote && $0.address.description == "Model/home-a" })
        #expect(stage < demote)
        let steps = RegistryDatabase.steps(of: plan)
        let swapStep = try #require(steps.first { step in step.contains { $0.action == .stage && $0.address.description == "Model/home-b" } })
        let demoteAt = try #require(swapStep.firstIndex { $0.action == .demote && $0.address.description == "Model/home-a" })
        let stageAt = try #require(swapStep.firstIndex { $0.action == .stage && $0.address.description == "Model/home-b" })
        #expect(demoteAt < stageAt)
        let result = try db.apply(plan, holder: holder, context: AuditContext(revision: plan.revision, author: nil, actor: "test"), now: { 1_800_000_001 })
        #expect(result.steps == steps.count)
        let models = try db.observedState().models
        #expect(models["home-a"]?.stage == .challenger)
        #expect(models["home-b"]?.stage == .champion)
    }

    @Test(arguments: Backend.available) func promotionOfAnUnapprovedVersionIsRefusedAtApply(_ backend: Backend) throws {
        let db = try freshDatabase(backend)
        let holder = LeaseHolder()
        try ReconcilePass.acquireLease(db, holder, wait: 0, clock: ManualClock(at: Double(1_800_000_000)))
        _ = try applyCase("01-fresh-fleet", to: db, holder: holder)
        let forged = Plan(revision: String(repeating: "c", count: 40), revisionName: "main", manifestRoot: "", manifestCount: 0,
                          observedGeneration: 0, lastAppliedRevision: nil,
                          changes: [Change(action: .promote, address: ManifestAddress(parsing: "ServingTarget/acme")!,
                                           after: .from(Assignment(tenant: "acme", surface: "home", routes: [LiveRoute(model: "home-a", version: 1, weight: 100)], shadow: [])),
                                           reason: "forged")],
                          blocked: [], drift: [])
        let before = try db.auditCount()
        #expect {
            _ = try db.apply(forged, holder: holder, context: AuditContext(revision: nil, author: nil, actor: "test"), now: { 1_800_000_000 })
        } throws: { error in
            (error as? CairnError)?.message == "refusing to promote ServingTarget/acme: home-a v1 does not exist"
        }
        #expect(try db.auditCount() == before)
        #expect(try db.observedState().targets.isEmpty)
    }

    /// The observed state is kept per handle and read again only when the registry moved: a
    /// write through another handle (another process) is seen at once, because every write to
    /// what the state holds bumps the generation in its transaction.
    @Test(arguments: Backend.available) func theObservedStateIsKeptUntilTheRegistryMoves(_ backend: Backend) throws {
        let location = try backend.location(in: dir)
        let db = try RegistryDatabase(location: location), other = try RegistryDatabase(location: location)
        defer { db.close(); other.close() }
        let holder = LeaseHolder()
        try ReconcilePass.acquireLease(other, holder, wait: 0, clock: ManualClock(at: Double(1_800_000_000)))
        let empty = try db.observedState()
        #expect(empty.models.isEmpty)
        _ = try applyCase("01-fresh-fleet", to: other, holder: holder)
        let applied = try db.observedState()
        #expect(applied.generation > empty.generation)
        #expect(applied == (try other.observedState()))
        #expect(!applied.models.isEmpty && !applied.runs.isEmpty)
        // A worker elsewhere claims a run: the run's state changes with the generation.
        let run = try #require(try other.claimRun(holder: "w", now: 1_800_000_000))
        let claimed = try db.observedState()
        #expect(claimed.runs.first { $0.id == run.id }?.state == .running)
        // Each write elsewhere, and the kept state advanced by what the history names (and the
        // runs) is what a fresh handle reads whole.
        try TrainingWorker.record(store: other, run: run, holder: "w", artifacts: nil,
                                  success: RunSuccess(metrics: ["ndcg@10": 0.3], datasetHash: "d", trainerVersion: "t"), now: 1_800_000_000)
        #expect(try db.observedState() == (try RegistryDatabase(location: location).observedState()))
        #expect(try db.observedState().models[run.model]?.versions.count == 1)
        if let failing = try other.claimRun(holder: "w", now: 1_800_000_000) {
            try other.failRun(failing.id, holder: "w", reason: "boom", now: 1_800_000_000)
            #expect(try db.observedState() == (try RegistryDatabase(location: location).observedState()))
        }
        if let handedBack = try other.claimRun(holder: "w", now: 1_800_000_000) {
            try other.releaseRun(handedBack.id, holder: "w")
            #expect(try db.observedState() == (try RegistryDatabase(location: location).observedState()))
        }
        // Suspending and an empty plan's new revision are seen too.
        _ = try other.setSuspended(true, actor: "op", at: 1_800_000_001)
        #expect(try db.observedState().suspended)
        _ = try other.setSuspended(false, actor: "op", at: 1_800_000_002)
        var moved = try PlannerCase(name: "01-fresh-fleet").run()
        moved.changes = []
        moved.revision = String(repeating: "d", count: 40)
        _ = try other.apply(moved, holder: holder, context: AuditContext(revision: moved.revision, author: nil, actor: "test"), now: { 1_800_000_003 })
        #expect(try db.observedState().lastAppliedRevision == moved.revision)
        #expect(try db.observedState() == (try other.observedState()))
        // An edit beside Cairn moves no generation: the kept state does not see it (a fresh
        // handle does), and it is the state check against the history, which reads the tables
        // before every apply, that refuses such a registry (RedTeamTests).
        if backend == .sqlite {
            try DatabaseQueue(path: location).write { try $0.execute(sql: "UPDATE models SET stage = 'shadow'") }
            #expect(try db.observedState().models.values.allSatisfy { $0.stage != .shadow })
            #expect(try RegistryDatabase(location: location).observedState().models.values.allSatisfy { $0.stage == .shadow })
            #expect(!(try db.verifyState().isEmpty))
        }
    }

    /// The state check keeps what it established (the replayed history, the rows that matched)
    /// and is still complete: an edit beside Cairn made after a clean check is found by the next
    /// check on the same handle, whether it edits a row, a run's request, or the history and a
    /// row together.
    @Test func theStateCheckKeepsItsWorkAndStillFindsEveryEdit() throws {
        let location = try Backend.sqlite.location(in: dir)
        var db = try RegistryDatabase(location: location)
        db.keepsStateCheck = true
        let holder = LeaseHolder()
        try ReconcilePass.acquireLease(db, holder, wait: 0, clock: ManualClock(at: Double(1_800_000_000)))
        _ = try applyCase("01-fresh-fleet", to: db, holder: holder)
        let raw = try DatabaseQueue(path: location)
        func edit(_ sql: String) throws { try raw.write { try $0.execute(sql: sql) } }
        #expect(try db.verifyState().isEmpty)
        #expect(try db.verifyState().isEmpty, "the kept check agrees with itself")
        let model = try #require(try raw.read { try String.fetchOne($0, sql: "SELECT name FROM models ORDER BY name LIMIT 1") })
        // A spec edited after a clean check.
        let spec = try #require(try raw.read { try String.fetchOne($0, sql: "SELECT spec FROM models WHERE name = ?", arguments: [model]) })
        try raw.write { try $0.execute(sql: "UPDATE models SET spec = ? WHERE name = ?", arguments: [spec.replacingOccurrences(of: "\"template\":\"", with: "\"template\":\"forged-"), model]) }
        #expect(try db.verifyState().map(\.row).contains("models \(model)"))
        try raw.write { try $0.execute(sql: "UPDATE models SET spec = ? WHERE name = ?", arguments: [spec, model]) }
        #expect(try db.verifyState().isEmpty)
        // A queued run's request edited (another trainer command).
        try edit("UPDATE training_runs SET request = replace(request, '\"model\":\"', '\"model\":\"forged-') WHERE id = (SELECT MIN(id) FROM training_runs)")
        #expect(try db.verifyState().contains { $0.row.hasPrefix("training_runs ") })
        try edit("UPDATE training_runs SET request = replace(request, '\"model\":\"forged-', '\"model\":\"') WHERE id = (SELECT MIN(id) FROM training_runs)")
        #expect(try db.verifyState().isEmpty)
        // The newest audit row's hash rewritten: the kept replay no longer starts from it, the
        // whole history is replayed again (the tables still agree with it), and the chain check
        // names the edit.
        for trigger in try raw.read({ try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'") }) {
            try edit("DROP TRIGGER \(trigger)")
        }
        try edit("UPDATE audit_log SET hash = 'forged' WHERE id = (SELECT MAX(id) FROM audit_log)")
        #expect(try db.verifyState().isEmpty)
        #expect(try db.verifyAudit() != nil)
    }

    @Test func stepsArePhasesCutIntoBatches() {
        let changes = (0..<1200).map { Change(action: .create, address: ManifestAddress(parsing: "Model/m\($0)")!, reason: "") }
            + (0..<3).map { Change(action: .train, address: ManifestAddress(parsing: "Model/m\($0)")!, reason: "") }
        let plan = Plan(revision: "", revisionName: "", manifestRoot: "", manifestCount: 0, observedGeneration: 0, lastAppliedRevision: nil,
                        changes: changes, blocked: [], drift: [])
        #expect(RegistryDatabase.steps(of: plan).map(\.count) == [500, 500, 200, 3])
    }

    @Test(arguments: Backend.available) func secondApplierIsToldWhoHoldsTheLease(_ backend: Backend) throws {
        let db = try freshDatabase(backend)
        try ReconcilePass.acquireLease(db, LeaseHolder(id: "first", pid: 4242, host: "ops-1"), wait: 0, clock: ManualClock(at: Double(1_800_000_000)))
        #expect {
            try ReconcilePass.acquireLease(db, LeaseHolder(id: "second"), wait: 0.3, clock: ManualClock(at: Double(1_800_000_010), advancesOnWait: true))
        } throws: { error in
            (error as? CairnError)?.message == "reconcile already running: pid 4242 on ops-1 since 2027-01-15T08:00:00Z"
        }
        // An expired lease (its holder died) is taken over.
        try ReconcilePass.acquireLease(db, LeaseHolder(id: "third"), wait: 0, clock: ManualClock(at: Double(1_800_000_000 + 121)))
    }

    @Test(arguments: Backend.available) func aLeaseWhoseHolderDiedOnThisHostIsTakenOverAtOnce(_ backend: Backend) throws {
        let db = try freshDatabase(backend)
        // A real process that has exited (and been reaped): its pid names nothing now.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        try ReconcilePass.acquireLease(db, LeaseHolder(id: "killed", pid: gone.processIdentifier), wait: 0, clock: ManualClock(at: Double(1_800_000_000)))
        try ReconcilePass.acquireLease(db, LeaseHolder(id: "next"), wait: 0, clock: ManualClock(at: Double(1_800_000_001), advancesOnWait: true))
        try db.releaseLease(LeaseHolder(id: "next"))
        // A live holder on this host (this test process), or any holder on another host, is waited for.
        try ReconcilePass.acquireLease(db, LeaseHolder(id: "alive", pid: getppid()), wait: 0, clock: ManualClock(at: Double(1_800_000_002)))
        #expect(throws: CairnError.self) { try ReconcilePass.acquireLease(db, LeaseHolder(id: "later"), wait: 0, clock: ManualClock(at: Double(1_800_000_003), advancesOnWait: true)) }
        try db.releaseLease(LeaseHolder(id: "alive"))
        try ReconcilePass.acquireLease(db, LeaseHolder(id: "remote", pid: gone.processIdentifier, host: "ops-elsewhere"), wait: 0, clock: ManualClock(at: Double(1_800_000_200)))
        #expect(throws: CairnError.self) { try ReconcilePass.acquireLease(db, LeaseHolder(id: "later"), wait: 0, clock: ManualClock(at: Double(1_800_000_201), advancesOnWait: true)) }
    }

    @Test(arguments: Backend.available) func appliesAreRefusedWhileSuspended(_ backend: Backend) throws {
        let db = try freshDatabase(backend)
        let holder = LeaseHolder()
        try ReconcilePass.acquireLease(db, holder, wait: 0, clock: ManualClock(at: Double(1_800_000_000)))
        #expect(try db.setSuspended(true, actor: "ops", at: 1_800_000_000))
        #expect(throws: CairnError.self) { _ = try applyCase("01-fresh-fleet", to: db, holder: holder) }
        #expect(try db.setSuspended(false, actor: "ops", at: 1_800_000_001))
        let (_, result) = try applyCase("01-fresh-fleet", to: db, holder: holder)
        #expect(result.applied == 8)
        #expect(try db.verifyAudit() == nil)
    }

    /// A run matching an existing version's artifact succeeds naming it, with no new version;
    /// the registry still agrees with its history.
    @Test(arguments: Backend.available) func aMatchingArtifactIsRecordedWithoutANewVersion(_ backend: Backend) throws {
        let db = try freshDatabase(backend)
        let holder = LeaseHolder()
        try ReconcilePass.acquireLease(db, holder, wait: 0, clock: ManualClock(at: Double(1_800_000_000)))
        _ = try applyCase("01-fresh-fleet", to: db, holder: holder)
        let first = try #require(try db.claimRun(holder: "w", now: 1_800_000_000))
        _ = try TrainingWorker.record(store: db, run: first, holder: "w", artifacts: InMemoryArtifacts(),
                                      success: RunSuccess(metrics: ["ndcg@10": 0.3], datasetHash: "d", trainerVersion: "t", artifactHash: "same"),
                                      now: 1_800_000_000)
        // The same request again (a schedule), and a run that produced the same bytes.
        let again = Plan(revision: first.request.commit, revisionName: "main", manifestRoot: "", manifestCount: 0,
                         observedGeneration: try db.generation(), lastAppliedRevision: nil,
                         changes: [Change(action: .train, address: ManifestAddress(.model, first.model), version: 2, after: .from(first.request),
                                          reason: "learning schedule")], blocked: [], drift: [])
        _ = try db.apply(again, holder: holder, context: AuditContext(revision: again.revision, author: nil, actor: "test"), now: { 1_800_000_100 })
        var second: ClaimedRun?
        while let run = try db.claimRun(holder: "w", now: 1_800_000_100) {
            if run.model == first.model { second = run } else { try db.failRun(run.id, holder: "w", reason: "not this test's", log: "", now: 1_800_000_100) }
        }
        let run = try #require(second)
        let inputs = try db.versionInputs(model: run.model)
        #expect(inputs.artifacts == [VersionInputs.artifactKey(fingerprint: run.request.fingerprint, hash: "same"): 1])
        try db.recordMatch(run: run.id, holder: "w", matches: 1, inputs: inputs, log: "", now: 1_800_000_200)
        #expect(try db.versions(of: run.model)?.map(\.number) == [1])
        #expect(try db.observedState().runs.first { $0.id == run.id }?.version == 1)
        #expect(try db.verifyState().isEmpty)
        #expect(try db.verifyAudit() == nil)
        #expect(try db.history(RegistryDatabase.HistoryFilter(model: run.model, limit: 1)).first?.action == .unchanged)
    }

    @Test(arguments: Backend.available) func gatedVersionsAreDecidedWhenCreated(_ backend: Backend) throws {
        let db = try freshDatabase(backend)
        let holder = LeaseHolder()
        try ReconcilePass.acquireLease(db, holder, wait: 0, clock: ManualClock(at: Double(1_800_000_000)))
        _ = try applyCase("01-fresh-fleet", to: db, holder: holder)
        var decided: [String: ModelVersion] = [:]
        while let run = try db.claimRun(holder: "w", now: 1_800_000_000) {
            // home-a is gated (ndcg@10 ≥ 0.2); home-b is manual.
            decided[run.model] = try TrainingWorker.record(store: db, run: run, holder: "w", artifacts: nil,
                                                  success: RunSuccess(metrics: ["ndcg@10": 0.1], datasetHash: "d", trainerVersion: "t"), now: 1_800_000_000)
        }
        #expect(decided["home-a"]?.status == .rejected)
        #expect(decided["home-a"]?.statusReason == "gates: ndcg@10 0.1 < min 0.2; ndcg@10 0.1: no approved version to regress from")
        #expect(decided["home-b"]?.status == .pending)
        #expect(decided["home-a"]?.systemName.hasPrefix("t · train-1-1800000000") == true)
    }

    @Test func markdownIsCappedWithANote() throws {
        let changes = (0..<3000).map { i in
            Change(action: .train, address: ManifestAddress(parsing: "Model/model-\(i)")!, version: 1, reason: "fingerprint 0123abcd…: no version yet")
        }
        let plan = Plan(revision: String(repeating: "a", count: 40), revisionName: "main", manifestRoot: "", manifestCount: 3000,
                        observedGeneration: 0, lastAppliedRevision: nil, changes: changes, blocked: [], drift: [])
        let md = MarkdownPlan.render(plan)
        #expect(md.count <= MarkdownPlan.defaultLimit)
        #expect(md.contains("**Plan: 3000 train.**"))
        #expect(md.hasSuffix("Run `cairn plan --format json` for the whole plan.\n"))
        #expect(md.contains("more rows are not shown"))
        let small = MarkdownPlan.render(Plan(revision: plan.revision, revisionName: "main", manifestRoot: "", manifestCount: 1, observedGeneration: 0,
                                             lastAppliedRevision: nil, changes: Array(changes.prefix(2)), blocked: [], drift: []))
        #expect(!small.contains("not shown"))
    }
}
