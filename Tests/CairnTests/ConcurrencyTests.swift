import CairnStore
import Foundation
import GRDB
import Testing

/// Two reconcilers and two workers on one database, each a loop of real `cairn` processes,
/// through every commit of the fleet: applies never interleave, every run is executed once,
/// and the final state is the one a single reconciler and worker reach.
/// CI runs one round; `make concurrency` runs more (CAIRN_CONCURRENCY_ROUNDS, CAIRN_CONCURRENCY_PADDING).
@Suite(.serialized) struct ConcurrencyTests {
    /// When each process ran, by which loop.
    final class LockedSpans: @unchecked Sendable {
        struct Span {
            var kind: String
            var name: String
            var start: Date
            var end: Date
        }
        private let lock = NSLock()
        private var spans: [Span] = []
        func append(_ run: Invocation, name: String = Thread.current.description) {
            lock.withLock { spans.append(Span(kind: run.kind, name: name, start: run.started, end: run.started.addingTimeInterval(run.seconds))) }
        }
        var all: [Span] { lock.withLock { spans } }
    }

    /// Runs `body` on its own thread until `stop` is set; returns a way to wait for it.
    final class Loop: @unchecked Sendable {
        private let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var _stop = false
        var failure: String?
        var passes = 0

        var stop: Bool {
            get { lock.withLock { _stop } }
            set { lock.withLock { _stop = newValue } }
        }

        init(_ body: @escaping @Sendable (Loop) throws -> Void) {
            Thread.detachNewThread { [self] in
                do {
                    while !stop {
                        try body(self)
                        passes += 1
                    }
                } catch {
                    failure = "\(error)"
                }
                done.signal()
            }
        }

        func finish() -> String? {
            stop = true
            done.wait()
            return failure
        }
    }

    /// On PostgreSQL too: the four processes share a PostgreSQL database; the reference is SQLite.
    @Test(arguments: Backend.available) func twoReconcilersAndTwoWorkersReachTheSingleProcessState(_ backend: Backend) throws {
        let rounds = Reliability.setting("CAIRN_CONCURRENCY_ROUNDS", 1)
        let padding = Reliability.setting("CAIRN_CONCURRENCY_PADDING", 40)
        let fleet = try ReliabilityFleet(padding: padding)
        let reference = try Registry("cairn-concurrency-reference")
        _ = try drive(fleet, into: reference)
        let expected = try reference.dump()

        var reconcilePasses = 0, workerPasses = 0, runsExecuted = 0, applyingProcesses = 0, overlaps = ["reconcile": 0, "worker": 0]
        var converged = 0
        for round in 0..<rounds {
            let registry = try Registry("cairn-concurrency-\(round)", backend: backend)
            let outputs = LockedList()
            let spans = LockedSpans()
            for commit in fleet.commits {
                let reconcilers = ["a", "b"].map { name in
                    Loop { loop in
                        let run = try invoke("reconcile", ["reconcile", "--repo", fleet.repo.path, "--revision", commit, "--db", registry.db,
                                                           "--lock-timeout", "60"],
                                             env: ["USER": "reconciler-\(name)-\(round)-\(commit.prefix(7))-\(loop.passes)"], scratch: registry.dir)
                        spans.append(run)
                        if run.status != 0, run.status != 3 { throw FixtureError("reconciler \(name): exit \(run.status): \(run.output)") }
                    }
                }
                let workers = ["a", "b"].map { name in
                    Loop { _ in
                        let run = try invoke("worker", ["worker", "--once", "--lease", "10s", "--retry-delay", "1s", "--repo", fleet.repo.path,
                                                        "--db", registry.db], scratch: registry.dir)
                        spans.append(run)
                        if run.status != 0 { throw FixtureError("worker \(name): exit \(run.status): \(run.output)") }
                        outputs.append(run.output)
                        if !run.output.contains("started") { Thread.sleep(forTimeInterval: 0.2) }
                    }
                }
                let deadline = Date().addingTimeInterval(300)
                var done = false
                while !done, Date() < deadline {
                    Thread.sleep(forTimeInterval: 0.5)
                    let plan = try cairn(["plan", "--repo", fleet.repo.path, "--revision", commit, "--db", registry.db, "--detailed-exitcode"],
                                         env: Registry.env)
                    done = try plan.status == 0 && registry.activeRuns() == 0
                }
                #expect(done, "round \(round): \(commit.prefix(7)) did not converge in 300 s")
                if done { converged += 1 }
                for loop in reconcilers + workers {
                    if let failure = loop.finish() { Issue.record("round \(round): \(failure)") }
                }
                reconcilePasses += reconcilers.map(\.passes).reduce(0, +)
                workerPasses += workers.map(\.passes).reduce(0, +)
            }

            // Each run was started exactly once, by one worker, and needed one attempt.
            let started = outputs.all.flatMap { $0.split(separator: "\n") }.filter { $0.hasPrefix("training run ") && $0.hasSuffix(" started") }
            let ids = started.map { $0.split(separator: " ")[2] }
            #expect(Set(ids).count == ids.count, "a run was started twice: \(started)")
            let runs = try registry.rows("SELECT id, state, attempts FROM training_runs")
            #expect(runs.count == ids.count, "\(runs.count) runs, \(ids.count) started")
            #expect(runs.allSatisfy { ($0["state"] as String) == "succeeded" && ($0["attempts"] as Int) == 1 }, "\(runs.map { ($0["id"] as Int, $0["state"] as String) })")
            runsExecuted += ids.count

            // The processes contended: two reconcilers, and two workers, ran at the same time.
            for kind in ["reconcile", "worker"] {
                let mine = spans.all.filter { $0.kind == kind }
                let overlapping = mine.enumerated().filter { i, a in
                    mine.dropFirst(i + 1).contains { b in a.start < b.end && b.start < a.end && a.name != b.name }
                }.count
                #expect(overlapping > 0, "round \(round): no two \(kind) processes ever ran at once")
                overlaps[kind, default: 0] += overlapping
            }

            // Applies never interleave: the rows of one reconcile process are consecutive among the reconcilers' rows.
            let actors: [String] = try registry.rows("SELECT actor FROM audit_log WHERE actor LIKE 'reconciler-%' ORDER BY id").map { $0["actor"] }
            #expect(!actors.isEmpty, "round \(round): no reconciler applied anything, so nothing could interleave")
            var seen = Set<String>()
            var previous: String?
            for actor in actors where actor != previous {
                #expect(!seen.contains(actor), "the apply of \(actor) was interleaved with another")
                seen.insert(actor)
                previous = actor
            }
            applyingProcesses += seen.count
            #expect(seen.count >= fleet.commits.count, "round \(round): \(seen.count) reconcile processes applied, for \(fleet.commits.count) commits")

            #expect(try registry.violations() == [])
            let state = try registry.dump()
            if state != expected {
                let a = Set(expected.split(separator: "\n")), b = Set(state.split(separator: "\n"))
                Issue.record("round \(round) ended elsewhere.\nonly in reference:\n\(a.subtracting(b).sorted().joined(separator: "\n"))\nonly here:\n\(b.subtracting(a).sorted().joined(separator: "\n"))")
            }
        }
        try Reliability.report(backend == .sqlite ? "concurrency" : "concurrency-postgres", [
            "rounds": rounds, "paddingModels": padding, "reconcilePasses": reconcilePasses, "workerPasses": workerPasses,
            "runsExecuted": runsExecuted, "reconcileProcessesThatApplied": applyingProcesses,
            "overlappingReconciles": overlaps["reconcile"] ?? 0, "overlappingWorkers": overlaps["worker"] ?? 0,
            "commitsConverged": converged, "commits": rounds * fleet.commits.count,
        ])
    }
}
