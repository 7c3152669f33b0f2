import CairnCore
import CairnManifests
import CairnGit
import CairnStore
import CairnTraining
import Foundation
import Logging
import Metrics
import ServiceLifecycle

/// The scheduled reconcile loop: polls the source every interval (with jitter), and runs a
/// pass on a new revision, a changed observed state (a finished training run), a due learning
/// schedule, a webhook, and at least every `resync`. A pass with nothing new returns at once:
/// no parsing, no database writes.
public struct Reconciler: Service {
    let configuration: ServeConfiguration
    let db: RegistryDatabase
    let state: ServeState
    let serving: ServingCache
    let metrics: CairnMetrics
    let logger: Logger
    /// Decoded manifests by blob id: a pass re-reads only the files its revision changed.
    let parseCache = ParseCache()

    public init(configuration: ServeConfiguration, db: RegistryDatabase, state: ServeState, serving: ServingCache, metrics: CairnMetrics, logger: Logger) {
        self.configuration = configuration
        self.db = db
        self.state = state
        self.serving = serving
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        var nextPoll = Date()
        var nextResync = Date().addingTimeInterval(Double(configuration.resync))
        // A due schedule triggers one pass; if that pass cannot train (a failed fingerprint),
        // the same due time does not trigger again.
        var handledDue: Int64?
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            let now = Date()
            let triggered = await state.takeTrigger()
            let scheduleDue = await state.nextScheduleDue
            let due = scheduleDue.map { Int64(now.timeIntervalSince1970) >= $0 && $0 != handledDue } ?? false
            // An unreadable database is not "moved": the failing pass then backs off like any other.
            let generation = try? await blocking { [db] in try db.generation() }
            let lastGeneration = await state.lastGeneration
            let generationMoved = generation.map { $0 != lastGeneration } ?? false
            if triggered || due || generationMoved || now >= nextPoll || now >= nextResync {
                if due { handledDue = scheduleDue }
                let force = triggered || due || now >= nextResync
                let ok = await pass(fetch: triggered || now >= nextPoll, force: force)
                if now >= nextResync { nextResync = now.addingTimeInterval(Double(configuration.resync)) }
                if now >= nextPoll || triggered {
                    // Failed passes back off exponentially, never beyond the interval.
                    let failures = await state.failures
                    let base = ok ? Double(configuration.interval) : min(Double(configuration.interval), pow(2, Double(min(failures, 16))))
                    nextPoll = Date().addingTimeInterval(base * Double.random(in: 0.9...1.1))
                }
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    /// One pass. Returns false when it failed (stalled).
    func pass(fetch: Bool, force: Bool) async -> Bool {
        let started = Date()
        let config = configuration
        let repositoryPath: String
        if RemoteMirror.isURL(config.repository) {
            let cache = RemoteMirror.cachePath(url: config.repository, cacheRoot: config.gitCachePath)
            if fetch || !FileManager.default.fileExists(atPath: cache) {
                do {
                    _ = try await blocking { try RemoteMirror.fetch(url: config.repository, cacheRoot: config.gitCachePath) }
                } catch {
                    // Rule 9: a source that cannot be read prunes nothing; the last applied state keeps serving.
                    await fail(revision: nil, reason: "SourceUnavailable", message: "\(error)", result: "source_error", started: started)
                    return false
                }
            }
            repositoryPath = cache
        } else {
            repositoryPath = config.repository
        }
        do {
            let (revision, generation) = try await blocking { [db] in
                (try GitRepository(path: repositoryPath).commit(config.revision).sha, try db.generation())
            }
            let (attempted, seenGeneration, invalid) = (await state.lastAttemptedRevision, await state.lastGeneration, await state.invalidRevision)
            if !force, (revision == attempted && generation == seenGeneration) || revision == invalid {
                await state.passSkipped()
                return !(await state.isStalled)
            }
            await state.passStarted(revision: revision)
            let loaded = try await blocking {
                try RevisionReader.read(repository: try GitRepository(path: repositoryPath), revision: config.revision,
                                        root: config.manifestRoot, exclude: config.exclude, cache: parseCache)
            }
            guard let desired = loaded.desired else {
                // Rule 8: an invalid revision is applied not at all.
                let errors = loaded.loaded.diagnostics.errors
                let message = errors.prefix(5).map(\.oneLine).joined(separator: "; ") + (errors.count > 5 ? "; … \(errors.count - 5) more" : "")
                try? await blocking { [db] in
                    try db.recordFailedPass(revision: revision, revisionName: config.revision, result: "invalid", message: message,
                                            at: Int64(Date().timeIntervalSince1970))
                }
                await fail(revision: revision, reason: "ValidationFailed", message: message, result: "invalid", started: started,
                           generation: try? await blocking { [db] in try db.generation() }, invalid: true)
                return false
            }
            let (outcome, after) = try await blocking { [db] in
                let outcome = try ReconcilePass.run(db: db, desired: desired, options: config.planner, actor: "reconciler", lockWait: 10,
                                                    repository: loaded.repository)
                return (outcome, try db.observedState())
            }
            let (plan, observed) = (outcome.plan, outcome.observed)
            await serving.refresh(after.targets)
            await state.passSucceeded(desired: desired, generation: after.generation, plan: plan,
                                      nextScheduleDue: Planner.nextScheduledTraining(desired: desired, observed: after))
            metrics.recordPass(plan: plan, observed: after, result: plan.changes.isEmpty ? "noop" : (observed.suspended ? "suspended" : "applied"),
                               duration: Date().timeIntervalSince(started))
            logger.info("pass", metadata: [
                "revision": "\(desired.commit.sha)", "duration_ms": "\(Int(Date().timeIntervalSince(started) * 1000))",
                "changes": "\(plan.changes.count)", "blocked": "\(plan.blocked.count)", "drift": "\(plan.drift.count)",
                "suspended": "\(observed.suspended)",
            ])
            return true
        } catch let error as CairnError where error.reason == .registryTampered {
            await fail(revision: nil, reason: "RegistryTampered", message: error.message, result: "failed", started: started)
            return false
        } catch {
            await fail(revision: nil, reason: "PassFailed", message: "\(error)", result: "failed", started: started)
            return false
        }
    }

    func fail(revision: String?, reason: String, message: String, result: String, started: Date, generation: Int? = nil,
              invalid: Bool = false) async {
        await state.passFailed(revision: revision, generation: generation, reason: reason, message: message, invalid: invalid)
        metrics.recordFailure(result: result, duration: Date().timeIntervalSince(started))
        logger.error("pass failed", metadata: ["reason": "\(reason)", "message": "\(message)", "revision": "\(revision ?? "-")"])
    }
}

/// Runs training in the daemon: `workers` runs at a time. On shutdown, running exec trainers
/// are stopped and their runs handed back to the queue.
public struct WorkerService: Service {
    let worker: Worker
    let concurrency: Int

    public init(worker: Worker, concurrency: Int) {
        self.worker = worker
        self.concurrency = concurrency
    }

    public func run() async throws {
        guard concurrency > 0 else {
            // A service that returns ends the whole group, so wait for shutdown like the others.
            try? await gracefulShutdown()
            return
        }
        let stop = StopFlag()
        let worker = self.worker
        let concurrency = self.concurrency
        // Hummingbird hands its extra services either a graceful shutdown or a cancellation;
        // both must stop the trainers and hand their runs back.
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                // A finished run bumps the observed generation, which the reconcile loop notices
                // within a tick; no forced pass is needed (and an invalid revision stays unread).
                _ = try await blocking { worker.run(concurrency: concurrency, once: false, stop: stop, pollInterval: 0.5) }
            } onGracefulShutdown: {
                stop.set()
            }
        } onCancel: {
            stop.set()
        }
    }
}
