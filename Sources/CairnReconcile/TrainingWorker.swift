import CairnCore
import Foundation

/// The worker loop: claims queued training runs and executes them through the trainer port:
/// trainer → artifact kept under its content hash → signed version, decided by the model's
/// approval policy (or a failed run with its reason). Runs whose worker died are re-queued.
public struct TrainingWorker: Sendable {
    /// How one claimed run ended.
    public enum Outcome: Sendable, Equatable {
        case succeeded(run: Int, model: String, version: Int, status: ModelVersion.Status)
        /// The artifact is identical to an existing version's: no new version was made.
        case matched(run: Int, model: String, version: Int)
        case failed(run: Int, model: String, reason: String)
        case handedBack(run: Int)
        /// The run was superseded (or taken over) while it trained: its trainer was stopped, its job cancelled.
        case cancelled(run: Int, model: String)
        /// Trained by a worker without the signing key: the result waits for the control plane.
        case submitted(run: Int, model: String)
    }

    /// Leases, retries and how often an idle worker looks for work.
    public struct Configuration: Sendable {
        /// How long a claimed run stays this worker's without a heartbeat (heartbeats every third of it).
        public var leaseSeconds: Int64
        /// First retry delay after a worker died; doubles with each attempt.
        public var retryDelay: Int64
        /// How often an idle worker looks for runs queued by another process (runs queued in
        /// this process wake it at once, through `queued`).
        public var pollInterval: Double
        /// The worker holds no signing key: it submits each result, and the control plane
        /// verifies the artifact in the store, signs and records the version (`recordSubmitted`).
        public var submitsResults: Bool

        public init(leaseSeconds: Int64 = 60, retryDelay: Int64 = 30, pollInterval: Double = 2, submitsResults: Bool = false) {
            self.leaseSeconds = leaseSeconds
            self.retryDelay = retryDelay
            self.pollInterval = pollInterval
            self.submitsResults = submitsResults
        }
    }

    public let store: RegistryStore
    public let trainer: TrainerRunner
    public let artifacts: ArtifactKeeper
    public let clock: Clock
    public let configuration: Configuration
    /// Identifies this worker in run leases.
    public let holder: String
    /// Signalled when this process queues runs (an apply): an idle worker looks at once.
    public let queued: Wakeup
    /// Called after every run this worker finished or handed back (the daemon wakes its loop).
    let finished: @Sendable () -> Void
    let log: @Sendable (String) -> Void
    /// Runs whose ended job could not be cancelled, already said in the log.
    let cancelFailures = Locked<Set<Int>>([])

    public init(store: RegistryStore, trainer: TrainerRunner, artifacts: ArtifactKeeper, clock: Clock, configuration: Configuration = .init(),
                holder: String = "worker-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))", queued: Wakeup = Wakeup(),
                finished: @escaping @Sendable () -> Void = {}, log: @escaping @Sendable (String) -> Void) {
        self.store = store
        self.trainer = trainer
        self.artifacts = artifacts
        self.clock = clock
        self.configuration = configuration
        self.holder = holder
        self.queued = queued
        self.finished = finished
        self.log = log
    }

    /// Claims and runs one due run; nil when the queue has none.
    public func runOne(stop: StopFlag) throws -> Outcome? {
        try store.requeueExpiredRuns(now: clock.unixNow(), baseDelay: configuration.retryDelay)
        cancelOrphanedJobs()
        guard !stop.isSet, let claimed = try store.claimRun(holder: holder, leaseSeconds: configuration.leaseSeconds, now: clock.unixNow()) else {
            return nil
        }
        defer { finished() }
        log("training run \(claimed.id) (\(claimed.model), attempt \(claimed.attempt)) started"
            + (claimed.job.map { ": re-attaching to its \($0.description)" } ?? ""))
        let reporter = WorkerReporter(store: store, run: claimed.id, holder: holder, job: claimed.job, clock: clock, log: log)
        let heartbeat = Heartbeat(store: store, run: claimed.id, holder: holder, leaseSeconds: configuration.leaseSeconds, clock: clock,
                                  lost: { reporter.lose() })
        heartbeat.start()
        defer { heartbeat.stop() }
        // A run folder its job may still write to is kept (the next worker re-attaches).
        let cleanUp = { if !reporter.jobOpen { self.trainer.cleanUp(claimed) } }
        do {
            let expected = (try? store.versionInputs(model: claimed.model).number) ?? 1
            let output = try trainer.train(claimed, expectedVersion: expected, stop: stop, reporter: reporter)
            let hash = try output.staging.map { try artifacts.keep(staging: $0) }
            if let hash, let same = try Self.recordIfIdentical(store: store, run: claimed, holder: holder, artifactHash: hash, log: output.log,
                                                                now: clock.unixNow()) {
                cleanUp()
                log("training run \(claimed.id) produced the artifact of v\(same): no new version")
                return .matched(run: claimed.id, model: claimed.model, version: same)
            }
            if configuration.submitsResults {
                try store.submitResult(run: claimed.id, holder: holder,
                                       success: RunSuccess(metrics: output.metrics, datasetHash: output.datasetHash, trainerVersion: output.trainerVersion,
                                                           artifactHash: hash, log: output.log, learned: output.learned, tuning: output.tuning),
                                       now: clock.unixNow())
                cleanUp()
                log("training run \(claimed.id) trained: the control plane verifies, signs and records it")
                return .submitted(run: claimed.id, model: claimed.model)
            }
            let version = try record(claimed, output: output, artifactHash: hash)
            cleanUp()
            log("training run \(claimed.id) succeeded: \(version.systemName), \(version.status.rawValue)")
            return .succeeded(run: claimed.id, model: claimed.model, version: version.number, status: version.status)
        } catch is TrainingInterrupted {
            try store.releaseRun(claimed.id, holder: holder)
            cleanUp()
            log("training run \(claimed.id) handed back to the queue")
            return .handedBack(run: claimed.id)
        } catch {
            if reporter.checkCancelled() {
                // Superseded by an apply, or taken over: nothing of it is recorded here.
                cleanUp()
                log("training run \(claimed.id) was cancelled while it trained (superseded, or no longer this worker's); its trainer stopped"
                    + (reporter.recordedJob.map { " and its \($0.description) was cancelled" } ?? ""))
                return .cancelled(run: claimed.id, model: claimed.model)
            }
            let (reason, output): (String, String)
            switch error {
            case let e as TrainerFailure: (reason, output) = (e.message, e.log)
            default: (reason, output) = ("\(error)", "")
            }
            if stop.isSet {
                // A trainer killed because we are stopping did not fail: hand it back.
                try store.releaseRun(claimed.id, holder: holder)
                return .handedBack(run: claimed.id)
            }
            try store.failRun(claimed.id, holder: holder, reason: reason, log: output, now: clock.unixNow())
            cleanUp()
            log("training run \(claimed.id) failed: \(reason)")
            return .failed(run: claimed.id, model: claimed.model, reason: reason)
        }
    }

    /// Cancels the jobs of runs that ended while no worker followed them (a queued run whose
    /// worker died was superseded, or ran out of attempts): no job outlives its run.
    public func cancelOrphanedJobs() {
        guard let orphans = try? store.openJobsOfEndedRuns(), !orphans.isEmpty else { return }
        for (run, job) in orphans {
            do {
                try trainer.cancelJob(job)
                try store.closeRunJob(run)
                log("training run \(run) has ended: its \(job.description) was cancelled")
            } catch {
                // Tried again at every look for work; said once.
                if cancelFailures.update({ $0.insert(run).inserted }) {
                    log("training run \(run) has ended, but its \(job.description) could not be cancelled yet (tried again while the worker runs): \(error)")
                }
            }
        }
    }

    /// Records a finished run as a version: its number, signature and gated decision are
    /// worked out here (`ApprovalPolicy`) and recorded by the store in one transaction, which
    /// refuses them if what they were based on moved meanwhile; then they are worked out again.
    public func record(_ claimed: ClaimedRun, output: TrainedOutput, artifactHash: String?) throws -> ModelVersion {
        try Self.record(store: store, run: claimed, holder: holder, artifacts: artifacts,
                        success: RunSuccess(metrics: output.metrics, datasetHash: output.datasetHash, trainerVersion: output.trainerVersion,
                                            artifactHash: artifactHash, log: output.log, learned: output.learned, tuning: output.tuning),
                        now: clock.unixNow())
    }

    /// When the artifact is byte-identical to an existing version's (a scheduled run on
    /// unchanged data outside git), records the run as matching that version and returns its
    /// number; nil otherwise. `holder` is the run's worker; the caller may be another process recording on its behalf
    /// (the control plane, for a submitted result).
    static func recordIfIdentical(store: RegistryStore, run claimed: ClaimedRun, holder: String, artifactHash: String, log: String,
                                  now: Int64) throws -> Int? {
        try withCurrentInputs(store: store, model: claimed.model) { inputs -> Int? in
            guard let same = inputs.artifacts[VersionInputs.artifactKey(fingerprint: claimed.request.fingerprint, hash: artifactHash)] else { return nil }
            try store.recordMatch(run: claimed.id, holder: holder, matches: same, inputs: inputs, log: log, now: now)
            return same
        }
    }

    /// Runs `body` with the model's version inputs as they are now, again with fresh ones while
    /// the store refuses them as moved (another worker recorded a version meanwhile).
    static func withCurrentInputs<T>(store: RegistryStore, model: String, _ body: (VersionInputs) throws -> T) throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try body(try store.versionInputs(model: model))
            } catch let error as CairnError where error.reason == .inputsMoved && attempt < 10 {
                continue
            }
        }
    }

    /// The control plane's half of runs trained by workers without the signing key: each
    /// submitted result's artifact is read again from the store and must hash to what the worker
    /// reported; then the version is numbered, decided, signed and recorded here, where the key
    /// is. A result whose artifact is missing or changed fails its run; nothing is signed.
    /// Returns how many results were recorded or failed.
    @discardableResult
    public static func recordSubmitted(store: RegistryStore, artifacts: ArtifactKeeper, now: () -> Int64, log: (String) -> Void) -> Int {
        guard let results = try? store.submittedResults() else { return 0 }
        var done = 0
        for result in results {
            let id = result.run.id
            do {
                if let hash = result.success.artifactHash {
                    do {
                        try artifacts.verify(contentHash: hash)
                    } catch {
                        let reason = "its artifact is not in the store as the worker reported it: \(error)"
                        try store.failRun(id, holder: result.holder, reason: reason, log: result.success.log, now: now())
                        log("training run \(id) failed: \(reason)")
                        done += 1
                        continue
                    }
                    // The same bytes as an existing version of this fingerprint: no new version.
                    if let matched = try recordIfIdentical(store: store, run: result.run, holder: result.holder, artifactHash: hash,
                                                           log: result.success.log, now: now()) {
                        log("training run \(id) produced the artifact of v\(matched): no new version")
                        done += 1
                        continue
                    }
                }
                let version = try record(store: store, run: result.run, holder: result.holder, artifacts: artifacts, success: result.success, now: now())
                log("training run \(id) recorded: \(version.systemName), \(version.status.rawValue)")
                done += 1
            } catch {
                // Another replica recorded it first, or the registry is busy: looked at again later.
                log("training run \(id) not recorded yet: \(error)")
            }
        }
        return done
    }

    /// `record` for a caller with no worker: what `finishRun` used to do in the store.
    public static func record(store: RegistryStore, run claimed: ClaimedRun, holder: String, artifacts: ArtifactKeeper?, success: RunSuccess,
                              now: Int64) throws -> ModelVersion {
        try withCurrentInputs(store: store, model: claimed.model) { inputs in
            var success = success
            if let artifacts, let hash = success.artifactHash {
                success.artifactSignature = artifacts.sign(contentHash: hash, model: claimed.model, version: inputs.number,
                                                           fingerprint: claimed.request.fingerprint)
            }
            let decision = inputs.approval.flatMap {
                ApprovalPolicy.decide($0, metrics: success.metrics, best: ApprovalPolicy.best(of: inputs.approvedMetrics))
            }
            return try store.recordVersion(run: claimed.id, holder: holder, success: success, inputs: inputs, decision: decision, now: now)
        }
    }

    /// Runs `concurrency` loops until `stop` is set, or with `once` until no queued run is left
    /// (runs waiting out a retry delay count as queued; runs other workers hold do not). An idle
    /// loop waits for `queued`, `stop` or `pollInterval`, whichever comes first.
    public func run(concurrency: Int, once: Bool, stop: StopFlag) -> [Outcome] {
        let results = Locked<[Outcome]>([])
        let group = DispatchGroup()
        for _ in 0..<max(1, concurrency) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                let idle = Wakeup()
                stop.wakes(idle)
                self.queued.forward(to: idle)
                while !stop.isSet {
                    do {
                        if let outcome = try self.runOne(stop: stop) {
                            results.update { $0.append(outcome) }
                            continue
                        }
                    } catch {
                        self.log("worker error: \(error)")
                    }
                    if once, (try? self.store.activeRunCounts().queued) ?? 0 == 0 { return }
                    self.clock.wait(on: idle, until: self.clock.now() + (once ? min(self.configuration.pollInterval, 0.5) : self.configuration.pollInterval))
                }
            }
        }
        group.wait()
        return results.value
    }

    /// Removes run folders left by a worker that was killed (SIGKILL, a crash): every
    /// `run-<id>-<attempt>` folder whose run is not running under a live lease. Returns their names.
    @discardableResult
    public func sweepLeftovers() throws -> [String] {
        let stale = trainer.sweep(keeping: try store.liveRunFolders(now: clock.unixNow()))
        if !stale.isEmpty { log("removed \(stale.count) run folder\(stale.count == 1 ? "" : "s") left by a stopped worker: \(stale.joined(separator: ", "))") }
        return stale
    }
}

/// Renews a run's lease while its trainer works; calls `lost` when the run is no longer this
/// worker's (cancelled by an apply, or taken over after the lease expired).
final class Heartbeat: @unchecked Sendable {
    let store: RegistryStore
    let run: Int
    let holder: String
    let leaseSeconds: Int64
    let clock: Clock
    let lost: @Sendable () -> Void
    private let stopped = Wakeup()
    private let finished = DispatchSemaphore(value: 0)

    init(store: RegistryStore, run: Int, holder: String, leaseSeconds: Int64, clock: Clock, lost: @escaping @Sendable () -> Void = {}) {
        self.store = store
        self.run = run
        self.holder = holder
        self.leaseSeconds = leaseSeconds
        self.clock = clock
        self.lost = lost
    }

    func start() {
        Thread.detachNewThread { [self] in
            let interval = max(1.0, Double(leaseSeconds) / 3)
            while !clock.wait(on: stopped, until: clock.now() + interval) {
                if (try? store.heartbeat(run, holder: holder, leaseSeconds: leaseSeconds, now: clock.unixNow())) == false { lost() }
            }
            finished.signal()
        }
    }

    func stop() {
        stopped.signal()
        finished.wait()
    }
}

/// The worker's side of `RunReporter`: records the job and the log on the run, and tells the
/// trainer when the run stopped being this worker's (looked up at most every 2 seconds).
final class WorkerReporter: RunReporter, @unchecked Sendable {
    let store: RegistryStore
    let run: Int
    let holder: String
    let clock: Clock
    let log: @Sendable (String) -> Void
    private let state: Locked<(job: RunJob?, open: Bool, lost: Bool, checked: Double, log: String?, written: Double)>

    init(store: RegistryStore, run: Int, holder: String, job: RunJob?, clock: Clock, log: @escaping @Sendable (String) -> Void) {
        self.store = store
        self.run = run
        self.holder = holder
        self.clock = clock
        self.log = log
        state = Locked((job, job != nil, false, 0, nil, 0))
    }

    /// The job recorded on the run (submitted, or re-attached to).
    var recordedJob: RunJob? { state.value.job }
    /// Whether that job may still be running.
    var jobOpen: Bool { state.value.open }

    func lose() { state.update { $0.lost = true } }

    func submitted(_ job: RunJob) throws {
        state.update { $0.job = job; $0.open = true }
        try store.recordRunJob(run, holder: holder, job: job)
        log("training run \(run) handed to \(job.description)")
    }

    func jobEnded() {
        state.update { $0.open = false }
        try? store.closeRunJob(run)
    }

    func progress(log text: String) {
        // At most one write every 2 seconds (a chatty job's log is up to 1 MiB); the whole log
        // is recorded with the run's outcome anyway.
        let now = clock.now()
        let write = state.update { s -> Bool in
            guard s.log != text, now - s.written >= 2 else { return false }
            s.log = text
            s.written = now
            return true
        }
        if write { try? store.updateRunLog(run, holder: holder, log: text) }
    }

    var isCancelled: Bool {
        let (lost, checked) = state.update { ($0.lost, $0.checked) }
        if lost { return true }
        guard clock.now() - checked >= 2 else { return false }
        return checkCancelled()
    }

    /// Looks the run up now.
    func checkCancelled() -> Bool {
        state.update { $0.checked = clock.now() }
        if state.value.lost { return true }
        guard let (runState, owner) = try? store.runState(run) else { return false }
        let gone = runState != "running" || owner != holder
        if gone { lose() }
        return gone
    }
}

/// A value shared between threads.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    public init(_ value: Value) { stored = value }

    public var value: Value { lock.withLock { stored } }

    public func update<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&stored) } }
}
