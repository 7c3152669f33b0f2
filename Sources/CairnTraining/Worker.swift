import CairnCore
import CairnStore
import Foundation

/// Claims queued training runs and executes them: trainer → content-addressed artifact →
/// signed version (or a failed run with its reason). Runs whose worker died are re-queued.
public struct Worker: Sendable {
    public struct Configuration: Sendable {
        public var repositoryPath: String
        public var artifacts: ArtifactStore
        public var key: SigningKey
        /// Where runs keep their private files.
        public var workRoot: URL
        public var leaseSeconds: Int64
        /// First retry delay after a worker died; doubles with each attempt.
        public var retryDelay: Int64
        public var environment: [String: String]
        /// Which `file://` datasets may be read.
        public var datasets: DatasetPolicy
        /// How exec trainers are kept from this worker.
        public var isolation: TrainerIsolation

        public init(repositoryPath: String, artifacts: ArtifactStore, key: SigningKey, workRoot: URL, leaseSeconds: Int64 = 60,
                    retryDelay: Int64 = 30, environment: [String: String] = ProcessInfo.processInfo.environment,
                    datasets: DatasetPolicy = DatasetPolicy(roots: [], forbidden: []), isolation: TrainerIsolation = .none) {
            self.datasets = datasets
            self.isolation = isolation
            self.retryDelay = retryDelay
            self.repositoryPath = repositoryPath
            self.artifacts = artifacts
            self.key = key
            self.workRoot = workRoot
            self.leaseSeconds = leaseSeconds
            self.environment = environment
        }
    }

    public enum Outcome: Sendable, Equatable {
        case succeeded(run: Int, model: String, version: Int, status: ModelVersion.Status)
        case failed(run: Int, model: String, reason: String)
        case handedBack(run: Int)
    }

    public let db: RegistryDatabase
    public let configuration: Configuration
    /// Identifies this worker in leases.
    public let holder: String
    let log: @Sendable (String) -> Void

    public init(db: RegistryDatabase, configuration: Configuration, holder: String = "worker-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))",
                log: @escaping @Sendable (String) -> Void) {
        self.db = db
        self.configuration = configuration
        self.holder = holder
        self.log = log
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970) }

    /// Claims and runs one due run; nil when the queue has none.
    public func runOne(stop: StopFlag) throws -> Outcome? {
        try db.requeueExpiredRuns(now: Self.now(), baseDelay: configuration.retryDelay)
        guard !stop.isSet, let claimed = try db.claimRun(holder: holder, leaseSeconds: configuration.leaseSeconds, now: Self.now()) else { return nil }
        log("training run \(claimed.id) (\(claimed.model), attempt \(claimed.attempt)) started")
        let heartbeat = Heartbeat(db: db, run: claimed.id, holder: holder, leaseSeconds: configuration.leaseSeconds)
        heartbeat.start()
        defer { heartbeat.stop() }
        let job = TrainingJob(runID: claimed.id, attempt: claimed.attempt, model: claimed.model,
                              expectedVersion: (try? db.nextVersionNumber(claimed.model)) ?? 1, request: claimed.request,
                              workDir: configuration.workRoot.appendingPathComponent("run-\(claimed.id)-\(claimed.attempt)"),
                              repositoryPath: configuration.repositoryPath, environment: configuration.environment,
                              datasets: configuration.datasets, isolation: configuration.isolation)
        do {
            let output: TrainerOutput
            switch claimed.request.template.trainer {
            case let .builtin(algorithm, params):
                output = try BuiltinTrainer.train(job, algorithm: algorithm, params: params, stop: stop)
            case let .exec(command, timeout, env, params):
                output = try ExecTrainer.train(job, command: command, timeout: timeout, env: env, params: params, stop: stop)
            }
            let hash = try configuration.artifacts.store(staging: output.staging)
            let key = configuration.key
            let version = try db.finishRun(claimed.id, holder: holder,
                                           success: RunSuccess(metrics: output.metrics, datasetHash: output.datasetHash,
                                                               trainerVersion: output.trainerVersion, artifactHash: hash, log: output.log),
                                           now: Self.now()) { model, number, fingerprint in
                key.sign(contentHash: hash, identity: VersionIdentity(model: model, version: number, fingerprint: fingerprint))
            }
            cleanUp(job.workDir)
            log("training run \(claimed.id) succeeded: \(version.systemName), \(version.status.rawValue)")
            return .succeeded(run: claimed.id, model: claimed.model, version: version.number, status: version.status)
        } catch is TrainingInterrupted {
            try db.releaseRun(claimed.id, holder: holder)
            cleanUp(job.workDir)
            log("training run \(claimed.id) handed back to the queue")
            return .handedBack(run: claimed.id)
        } catch {
            let (reason, output): (String, String)
            switch error {
            case let e as TrainerFailure: (reason, output) = (e.message, e.log)
            default: (reason, output) = ("\(error)", "")
            }
            if stop.isSet {
                // A trainer killed because we are stopping did not fail: hand it back.
                try db.releaseRun(claimed.id, holder: holder)
                return .handedBack(run: claimed.id)
            }
            try db.failRun(claimed.id, holder: holder, reason: reason, log: output, now: Self.now())
            cleanUp(job.workDir)
            log("training run \(claimed.id) failed: \(reason)")
            return .failed(run: claimed.id, model: claimed.model, reason: reason)
        }
    }

    /// Runs `concurrency` loops until `stop` is set, or with `once` until no queued run is left
    /// (runs waiting out a retry delay count as queued; runs other workers hold do not).
    public func run(concurrency: Int, once: Bool, stop: StopFlag, pollInterval: Double = 2) -> [Outcome] {
        let results = OutcomeList()
        let group = DispatchGroup()
        for _ in 0..<max(1, concurrency) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                while !stop.isSet {
                    do {
                        if let outcome = try self.runOne(stop: stop) {
                            results.append(outcome)
                            continue
                        }
                    } catch {
                        self.log("worker error: \(error)")
                    }
                    if once, (try? self.db.activeRunCounts().queued) ?? 0 == 0 { return }
                    Thread.sleep(forTimeInterval: once ? min(pollInterval, 0.5) : pollInterval)
                }
            }
        }
        group.wait()
        return results.values
    }

    /// Removes run folders left by a worker that was killed (SIGKILL, a crash): every
    /// `run-<id>-<attempt>` folder whose run is not running under a live lease. Returns their names.
    @discardableResult
    public func sweepLeftovers() throws -> [String] {
        let root = configuration.workRoot
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { return [] }
        let live = try db.liveRunFolders(now: Self.now())
        let stale = names.filter { $0.hasPrefix("run-") && !live.contains($0) }.sorted()
        for name in stale { cleanUp(root.appendingPathComponent(name)) }
        if !stale.isEmpty { log("removed \(stale.count) run folder\(stale.count == 1 ? "" : "s") left by a stopped worker: \(stale.joined(separator: ", "))") }
        return stale
    }

    private func cleanUp(_ dir: URL) {
        try? ExecTrainer.makeWritable(dir)
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Renews a run's lease while its trainer works.
final class Heartbeat: @unchecked Sendable {
    let db: RegistryDatabase
    let run: Int
    let holder: String
    let leaseSeconds: Int64
    private let stopped = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(db: RegistryDatabase, run: Int, holder: String, leaseSeconds: Int64) {
        self.db = db
        self.run = run
        self.holder = holder
        self.leaseSeconds = leaseSeconds
    }

    func start() {
        Thread.detachNewThread { [self] in
            let interval = max(1.0, Double(leaseSeconds) / 3)
            while stopped.wait(timeout: .now() + interval) == .timedOut {
                _ = try? db.heartbeat(run, holder: holder, leaseSeconds: leaseSeconds, now: Int64(Date().timeIntervalSince1970))
            }
            finished.signal()
        }
    }

    func stop() {
        stopped.signal()
        finished.wait()
    }
}

final class OutcomeList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Worker.Outcome] = []

    func append(_ o: Worker.Outcome) {
        lock.lock()
        items.append(o)
        lock.unlock()
    }

    var values: [Worker.Outcome] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
}
