import CairnCore
import CairnReconcile
import CairnStore
import Foundation
import Logging
import ServiceLifecycle

/// Runs the reconcile core's loop as a service of the daemon; a graceful shutdown or a
/// cancellation stops it after the current pass.
public struct Reconciler: Service {
    let loop: ReconcileLoop

    public init(loop: ReconcileLoop) { self.loop = loop }

    public func run() async throws {
        let loop = self.loop
        try await runUntilShutdown { stop in loop.run(stop: stop) }
    }
}

/// What the daemon does with each pass: metrics, a log line, and the serving cache refreshed
/// with the live versions.
struct DaemonObserver: ReconcileObserver {
    let serving: ServingCache
    let metrics: CairnMetrics
    let logger: Logger
    /// Wakes the daemon's idle workers: a pass may have queued training.
    let queued: Wakeup

    func passSucceeded(plan: Plan, desired: DesiredState, observed: ObservedState, after: ObservedState, duration: Double) {
        // The serving cache is an actor: wait for it here, so the pass is over only once what it
        // made live is served.
        let done = DispatchSemaphore(value: 0)
        Task { [serving] in
            await serving.refresh(after.targets)
            done.signal()
        }
        done.wait()
        if !plan.changes.isEmpty { queued.signal() }
        metrics.recordPoll()
        metrics.recordPass(plan: plan, observed: after, result: plan.changes.isEmpty ? "noop" : (observed.suspended ? "suspended" : "applied"),
                           duration: duration)
        // A rollback guard that tripped is said loudly (the plan applied it unless suspended).
        for change in plan.changes where change.action == .promote && (try? change.after?.decode(Assignment.self))??.drift?.guarded != nil {
            metrics.recordGuardTrip()
            logger.warning("rollback guard tripped", metadata: ["target": "\(change.name)", "reason": "\(change.reason)",
                                                               "applied": "\(!observed.suspended)"])
        }
        logger.info("pass", metadata: [
            "revision": "\(desired.commit.sha)", "duration_ms": "\(Int(duration * 1000))",
            "changes": "\(plan.changes.count)", "blocked": "\(plan.blocked.count)", "drift": "\(plan.drift.count)",
            "suspended": "\(observed.suspended)",
        ])
    }

    func sourceChanged(stale: String?) {
        metrics.recordSourceStale(stale != nil)
        if let stale {
            logger.warning("source stale: passes go on from the cached source", metadata: ["error": "\(stale)"])
        } else {
            logger.info("source refreshed again")
        }
    }

    func passSkipped() { metrics.recordPoll() }

    func passFailed(reason: String, message: String, result: String, revision: String?, duration: Double) {
        metrics.recordPoll()
        metrics.recordFailure(result: result, duration: duration)
        logger.error("pass failed", metadata: ["reason": "\(reason)", "error": "\(message)", "revision": "\(revision ?? "-")"])
    }
}

/// Runs training in the daemon: `workers` runs at a time. On shutdown, running exec trainers
/// are stopped and their runs handed back to the queue.
public struct WorkerService: Service {
    let worker: TrainingWorker
    let concurrency: Int

    public init(worker: TrainingWorker, concurrency: Int) {
        self.worker = worker
        self.concurrency = concurrency
    }

    public func run() async throws {
        guard concurrency > 0 else {
            // A service that returns ends the whole group, so wait for shutdown like the others.
            try? await gracefulShutdown()
            return
        }
        let worker = self.worker
        let concurrency = self.concurrency
        try await runUntilShutdown { stop in _ = worker.run(concurrency: concurrency, once: false, stop: stop) }
    }
}

/// Records what workers without the signing key trained (`cairn worker --unsigned`): verifies
/// each artifact's digest in the store, signs and records the version, here where the key is.
/// Woken by changes other processes announce (PostgreSQL), else every 2 s when the registry's
/// generation moved. Several replicas may run it: a result is recorded once (the others find
/// the run finished).
public struct ResultRecorder: Service {
    let store: RegistryDatabase
    let artifacts: ArtifactKeeper
    let wake: Wakeup
    let logger: Logger

    public init(store: RegistryDatabase, artifacts: ArtifactKeeper, wake: Wakeup, logger: Logger) {
        self.store = store
        self.artifacts = artifacts
        self.wake = wake
        self.logger = logger
    }

    public func run() async throws {
        let (store, artifacts, wake, logger) = (self.store, self.artifacts, self.wake, self.logger)
        try await runUntilShutdown { stop in
            let clock = SystemClock()
            stop.wakes(wake)
            var seen: Int?
            while !stop.isSet {
                let generation = try? store.generation()
                if generation == nil || generation != seen {
                    seen = generation
                    TrainingWorker.recordSubmitted(store: store, artifacts: artifacts, now: { clock.unixNow() }) { line in
                        logger.info("\(line)")
                    }
                }
                _ = clock.wait(on: wake, until: clock.now() + 2)
            }
        }
    }
}
