import CairnCore
import CairnReconcile
import CairnTesting
import Foundation
import Testing

/// The reconcile core on its in-memory twins and a manual clock: a whole model lifecycle and
/// the daemon's scheduling, in process, with no sleeps and no wall time.
@Suite struct ReconcileCoreTests {
    static let metrics: [String: Double] = ["ndcg@10": 0.3, "recall@20": 0.4, "coverage": 0.5, "precision@5": 0.2]

    /// The example fleet as committed in `examples/fleet`, as revision `sha` (one hex digit, repeated).
    static func fleet(_ digit: Character, time: Int64 = 1_800_000_000, edit: (inout ManifestSet) -> Void = { _ in }) throws -> DesiredState {
        let (loaded, tree) = try PlannerCase.load(packageRoot.appendingPathComponent("examples/fleet"))
        var desired = try PlannerCase.desiredState(loaded, tree, commit: CommitInfo(sha: String(repeating: digit, count: 40), authorName: "Ada Operator",
                                                                                   authorEmail: "ada@example.com", time: time, summary: "fleet"))
        // homepage-recs learns every 24h from data outside git (only a run can tell whether it
        // changed); with its data in git, a due schedule on unchanged data trains nothing.
        for t in desired.manifests.templates.indices where desired.manifests.templates[t].metadata.name == "engagement-booster" {
            desired.manifests.templates[t].dataset = .uri("file:///srv/data/interactions.csv")
        }
        edit(&desired.manifests)
        return desired
    }

    /// Everything a test drives: the twins, the clock, one worker.
    struct Rig {
        let clock = ManualClock(at: 1_800_000_000)
        let store = InMemoryRegistry()
        let source: InMemorySource
        let trainer: ScriptedTrainer
        let worker: TrainingWorker

        /// `cached: false` plays a remote source never fetched yet.
        init(cached: Bool = true, metrics: @escaping @Sendable (ClaimedRun) -> [String: Double] = { _ in ReconcileCoreTests.metrics },
             staging: @escaping @Sendable (ClaimedRun) -> String = { "memory://run-\($0.id)" }) {
            source = InMemorySource(cached: cached)
            trainer = ScriptedTrainer(metrics: metrics, staging: staging)
            worker = TrainingWorker(store: store, trainer: trainer, artifacts: InMemoryArtifacts(), clock: clock) { _ in }
        }

        /// One applying pass over the published revision, as `cairn reconcile` runs it.
        @discardableResult
        func pass() throws -> ReconcilePass.Outcome {
            let desired = try ReconcilePass.read(source, recordingIn: store, recording: .failures(limit: nil, sourceErrors: true), clock: clock)
            return try ReconcilePass.run(desired, source: source, store: store, options: PlannerOptions(), actor: "test", lockWait: 0, clock: clock)
        }

        /// Runs every queued run; returns the outcomes.
        func trainAll() throws -> [TrainingWorker.Outcome] {
            var outcomes: [TrainingWorker.Outcome] = []
            while let outcome = try worker.runOne(stop: StopFlag()) { outcomes.append(outcome) }
            return outcomes
        }

        func routes(_ target: String) throws -> [String] {
            try store.observedState().targets[target]?.routes.map { "\($0.model) v\($0.version) \($0.weight)%" } ?? []
        }
    }

    @Test func aWholeLifecycleRunsInProcess() throws {
        let rig = Rig()
        rig.source.publish(try Self.fleet("a"))

        // Read → plan → apply: definitions created, training queued, nothing to promote yet.
        let first = try rig.pass()
        #expect(first.applied != nil)
        let trains = first.plan.changes.filter { $0.action == .train }.map(\.address.name)
        #expect(trains == ["homepage-recs", "homepage-recs-b", "homepage-recs-c", "search-knn", "search-popular"])
        #expect(first.plan.changes.contains { $0.action == .promote } == false)
        #expect(first.plan.blocked.contains { $0.address.description == "ServingTarget/acme-homepage" })

        // Train: every run makes v1; gated models are decided by their gates as the version is recorded.
        let outcomes = try rig.trainAll()
        #expect(outcomes.count == 5)
        let decided = try rig.store.observedState().models.mapValues { $0.versions.map(\.status) }
        #expect(decided["homepage-recs"] == [.approved])
        #expect(decided["homepage-recs-b"] == [.approved])
        #expect(decided["homepage-recs-c"] == [.pending], "manual approval: decided in git, not by gates")
        #expect(rig.store.audit.contains { $0.action == .approve && $0.address == .model("homepage-recs") && $0.reason.hasPrefix("gates: ") })

        // Promote: the next pass puts the approved versions live.
        let second = try rig.pass()
        #expect(second.plan.changes.contains { $0.action == .promote && $0.address.description == "ServingTarget/acme-homepage" })
        #expect(try rig.routes("acme-homepage") == ["homepage-recs v1 90%", "homepage-recs-b v1 10%"])
        #expect(try rig.pass().plan.changes.isEmpty, "converged")

        // Retrain on schedule: homepage-recs learns every 24h; nothing is due a minute before.
        rig.clock.advance(by: 86_400 - 60)
        #expect(try rig.pass().plan.changes.isEmpty)
        rig.clock.advance(by: 120)
        let due = try rig.pass()
        #expect(due.plan.changes.filter { $0.action == .train }.map(\.address.name) == ["homepage-recs"])
        #expect(try rig.trainAll().count == 1)
        try rig.pass()
        #expect(try rig.routes("acme-homepage") == ["homepage-recs v2 90%", "homepage-recs-b v1 10%"])

        // Roll back through git: a commit pins homepage-recs to v1 on acme-homepage.
        rig.source.publish(try Self.fleet("b") { manifests in
            for t in manifests.servingTargets.indices where manifests.servingTargets[t].metadata.name == "acme-homepage" {
                for r in manifests.servingTargets[t].routes.indices where manifests.servingTargets[t].routes[r].subject == .model("homepage-recs") {
                    manifests.servingTargets[t].routes[r].version = .number(1)
                }
            }
        })
        let rollback = try rig.pass()
        #expect(rollback.plan.changes.map { "\($0.action.rawValue) \($0.address)" } == ["promote ServingTarget/acme-homepage"])
        #expect(try rig.routes("acme-homepage") == ["homepage-recs v1 90%", "homepage-recs-b v1 10%"])
        #expect(try rig.store.observedState().lastAppliedRevision == String(repeating: "b", count: 40))
    }

    /// A scheduled run whose artifact is byte-identical to an existing version's (data outside
    /// git that did not change) makes no new version: the run says which version it matches.
    @Test func anIdenticalArtifactMakesNoNewVersion() throws {
        let rig = Rig(staging: { run in run.model == "homepage-recs" ? "memory://the-same-bytes" : "memory://run-\(run.id)" })
        rig.source.publish(try Self.fleet("a"))
        try rig.pass()
        _ = try rig.trainAll()
        try rig.pass()
        #expect(try rig.routes("acme-homepage") == ["homepage-recs v1 90%", "homepage-recs-b v1 10%"])
        rig.clock.advance(by: 86_400 + 60)
        let due = try rig.pass()
        #expect(due.plan.changes.filter { $0.action == .train }.map(\.address.name) == ["homepage-recs"])
        let outcomes = try rig.trainAll()
        #expect(outcomes.count == 1)
        guard case let .matched(_, model, version)? = outcomes.first else {
            Issue.record("expected a match, got \(outcomes)")
            return
        }
        #expect(model == "homepage-recs" && version == 1)
        let observed = try rig.store.observedState()
        #expect(observed.models["homepage-recs"]?.versions.map(\.number) == [1], "no v2")
        #expect(observed.runs.last?.state == .succeeded && observed.runs.last?.version == 1)
        #expect(rig.store.audit.last?.action == .unchanged)
        #expect(try rig.pass().plan.changes.isEmpty, "nothing new to promote")
        // New inputs that happen to give the same bytes are a new version: it records the inputs
        // (matching it to v1 left no version of the new fingerprint, and the plan trained forever).
        rig.source.publish(try Self.fleet("c") { manifests in
            for m in manifests.models.indices where manifests.models[m].metadata.name == "homepage-recs" { manifests.models[m].retrainToken = "again" }
        })
        #expect(try rig.pass().plan.changes.contains { $0.action == .train })
        guard case .succeeded(_, _, 2, _)? = try rig.trainAll().first else {
            Issue.record("new inputs made no new version")
            return
        }
        #expect(try rig.pass().plan.changes.allSatisfy { $0.action != .train }, "converged: no training left")
    }

    @Test func aVersionThatFailsItsGatesIsRejectedAndNeverServed() throws {
        let rig = Rig { run in run.model == "homepage-recs" ? ["ndcg@10": 0.01, "recall@20": 0.4, "coverage": 0.5, "precision@5": 0.2] : Self.metrics }
        rig.source.publish(try Self.fleet("a"))
        try rig.pass()
        _ = try rig.trainAll()
        let v1 = try #require(try rig.store.observedState().models["homepage-recs"]?.versions.first)
        #expect(v1.status == .rejected)
        #expect(v1.statusReason == "gates: ndcg@10 0.01 < min 0.05; ndcg@10 0.01: no approved version to regress from")
        let next = try rig.pass()
        #expect(next.plan.changes.contains { $0.action == .promote && $0.address.description == "ServingTarget/acme-homepage" } == false)
        #expect(try rig.routes("acme-homepage").isEmpty)
    }

    @Test func anInvalidRevisionIsRecordedAndNothingIsApplied() throws {
        let rig = Rig()
        rig.source.publish(try Self.fleet("a"))
        try rig.pass()
        let before = try rig.store.generation()
        rig.source.publishInvalid(commit: CommitInfo(sha: String(repeating: "d", count: 40), authorName: "x", authorEmail: "x@example.com", time: 0, summary: "bad"),
                                  errors: [.error("unknown field 'stagee'", at: SourceLocation(file: "models/homepage.yaml", line: 12, column: 3))])
        #expect(throws: ReconcilePass.InvalidRevision.self) { try rig.pass() }
        #expect(rig.store.failedPasses == ["invalid"])
        #expect(try rig.store.generation() == before)
    }

    @Test func aSuspendedRegistryIsPlannedButNotApplied() throws {
        let rig = Rig()
        rig.source.publish(try Self.fleet("a"))
        rig.store.setSuspended(true)
        let outcome = try rig.pass()
        #expect(outcome.applied == nil)
        #expect(!outcome.plan.changes.isEmpty)
        #expect(try rig.store.observedState().models.isEmpty)
    }

    @Test func aVersionIsDecidedAgainWhenItsInputsMoveWhileItIsRecorded() throws {
        // Inputs read before another worker recorded a version are refused by the store;
        // `record` reads them again, signs for the number it gets and records.
        let rig = Rig()
        rig.source.publish(try Self.fleet("a"))
        try rig.pass()
        let claimed = try #require(try rig.store.claimRun(holder: "w", leaseSeconds: 60, now: rig.clock.unixNow()))
        var inputs = try rig.store.versionInputs(model: claimed.model)
        inputs.number += 1
        #expect {
            try rig.store.recordVersion(run: claimed.id, holder: "w", success: RunSuccess(metrics: Self.metrics, datasetHash: "d", trainerVersion: "t"),
                                        inputs: inputs, decision: nil, now: rig.clock.unixNow())
        } throws: { ($0 as? CairnError)?.reason == .inputsMoved }
        let version = try TrainingWorker.record(store: rig.store, run: claimed, holder: "w", artifacts: InMemoryArtifacts(),
                                                success: RunSuccess(metrics: Self.metrics, datasetHash: "d", trainerVersion: "t", artifactHash: "h"),
                                                now: rig.clock.unixNow())
        #expect(version.number == 1)
        #expect(version.artifactSignature == InMemoryArtifacts().sign(contentHash: "h", model: claimed.model, version: 1, fingerprint: claimed.request.fingerprint))
    }
}

/// `reconcile --wait` on the twins: it converges without waiting when work moves, and waits
/// on events with backoff (never spinning) when nothing can move.
@Suite struct ConvergenceTests {
    func convergence(_ rig: ReconcileCoreTests.Rig, worker: Bool, passes: Locked<Int>, shown: Locked<Int>,
                     lines: Locked<[String]> = Locked([])) -> Convergence {
        Convergence(store: rig.store, clock: rig.clock, worker: worker ? rig.worker : nil,
                    pass: {
                        passes.update { $0 += 1 }
                        return try rig.pass().plan
                    },
                    showPlan: { _ in shown.update { $0 += 1 } }, progress: { p in lines.update { $0.append(p.line) } })
    }

    @Test func convergesWithTrainingInProcessWithoutWaiting() throws {
        let rig = ReconcileCoreTests.Rig()
        rig.source.publish(try ReconcileCoreTests.fleet("a"))
        let before = try rig.store.generation()
        let first = try rig.pass().plan
        let passes = Locked(0), shown = Locked(0), lines = Locked<[String]>([])
        let queued = try rig.store.activeRunCounts().queued
        let (plan, count) = try convergence(rig, worker: true, passes: passes, shown: shown, lines: lines)
            .run(first: first, generationBefore: before, timeout: 60, timeoutText: "1m", stop: StopFlag())
        #expect(plan.changes.isEmpty)
        // Progress counts runs done out of the runs seen: it starts at 0/N and ends at N/N.
        #expect(queued > 1)
        #expect(lines.value.first == "pass 1 · training: 0/\(queued) runs done, 0 running, \(queued) queued", "\(lines.value)")
        #expect(lines.value.contains("pass 1 · training: 1/\(queued) runs done, 0 running, \(queued - 1) queued"), "\(lines.value)")
        #expect(lines.value.contains("pass 1 · training: \(queued)/\(queued) runs done, 0 running, 0 queued"), "\(lines.value)")
        #expect(count == passes.value + 1)
        #expect(rig.clock.now() == 1_800_000_000, "no time passed: nothing waited")
        #expect(try rig.routes("acme-homepage") == ["homepage-recs v1 90%", "homepage-recs-b v1 10%"])
    }

    @Test func whileSuspendedItWaitsWithBackoffAndSaysWhyItTimedOut() throws {
        let rig = ReconcileCoreTests.Rig()
        rig.source.publish(try ReconcileCoreTests.fleet("a"))
        rig.store.setSuspended(true)
        let before = try rig.store.generation()
        let first = try rig.pass().plan
        let passes = Locked(0), shown = Locked(0)
        let run = convergence(rig, worker: true, passes: passes, shown: shown)
        let failure = Locked<CairnError?>(nil)
        let done = Locked(false)
        Thread.detachNewThread {
            do {
                _ = try run.run(first: first, generationBefore: before, timeout: 60, timeoutText: "1m", stop: StopFlag())
            } catch {
                failure.update { $0 = error as? CairnError }
            }
            done.update { $0 = true }
        }
        var waits = 0
        while true {
            #expect(rig.clock.settle(unless: { done.value }), "waiting, not spinning")
            if done.value { break }
            guard let deadline = rig.clock.nextDeadline else { continue }
            rig.clock.advance(by: deadline - rig.clock.now())
            waits += 1
        }
        // 1 + 2 + 4 + 8 + 10 + 10 + 10 + 10 + the rest: nine waits in a minute, and not one pass,
        // since nothing moved (today's loop ran hundreds of passes a second here).
        #expect(waits == 9)
        #expect(passes.value == 0)
        #expect(shown.value == 0)
        #expect(failure.value?.message == "timed out after 1m before converging: applying is suspended, \(first.changes.count) changes wait")
        #expect(failure.value?.hint == "run `cairn resume` to apply again")
    }
}

/// Phases as the lifecycle documents them (`draft` is "not yet trained").
@Suite struct PhaseTests {
    @Test func phasesFollowTheLifecycle() throws {
        let rig = ReconcileCoreTests.Rig { run in
            run.model == "homepage-recs" ? ["ndcg@10": 0.01, "recall@20": 0.4, "coverage": 0.5, "precision@5": 0.2] : ReconcileCoreTests.metrics
        }
        rig.source.publish(try ReconcileCoreTests.fleet("a"))
        func phases() throws -> [String: String] {
            let observed = try rig.store.observedState()
            return observed.models.mapValues { model in
                let (phase, detail) = ModelPhase.of(model, runs: observed.runs)
                return phase.rawValue + (detail.map { ": \($0)" } ?? "")
            }
        }
        try rig.pass()
        #expect(try phases()["search-knn"] == "busy: training run 4 is queued")
        _ = try rig.trainAll()
        let after = try phases()
        #expect(after["search-knn"] == "ready: v1 approved")
        #expect(after["homepage-recs-c"] == "pending: v1 awaits approval", "trained, not yet decided: not draft")
        #expect(after["homepage-recs"] == "rejected: v1 rejected (gates: ndcg@10 0.01 < min 0.05; ndcg@10 0.01: no approved version to regress from)")
    }
}
