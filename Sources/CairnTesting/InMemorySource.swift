import CairnCore
import CairnReconcile
import Foundation

/// The manifest-source twin: serves whatever revision the test publishes.
public final class InMemorySource: ManifestSource, @unchecked Sendable {
    private let lock = NSLock()
    private var current: SourceRead?
    private var refreshError: CairnError?
    private var _refreshes = 0
    private var _reads = 0
    private var cached: Bool

    public let location = "memory"
    public let revisionName: String
    /// A remote source with no cache yet needs a refresh before it can be read.
    public var needsRefresh: Bool { lock.withLock { !cached } }
    public var isShallow: Bool { false }

    /// `cached`: false plays a remote never fetched (its first refresh must succeed before a read).
    public init(revisionName: String = "main", cached: Bool = true) {
        self.revisionName = revisionName
        self.cached = cached
    }

    /// Makes `desired` the revision (valid).
    public func publish(_ desired: DesiredState) {
        lock.withLock {
            current = SourceRead(commit: desired.commit, manifestRoot: desired.manifestRoot, fileCount: desired.manifests.count,
                                 documentCount: desired.manifests.count, diagnostics: [], desired: desired)
        }
    }

    /// Makes an invalid revision current.
    public func publishInvalid(commit: CommitInfo, errors: [Diagnostic]) {
        lock.withLock {
            current = SourceRead(commit: commit, manifestRoot: "", fileCount: 1, documentCount: 0, diagnostics: errors, desired: nil)
        }
    }

    /// Makes every refresh fail (an unreachable remote), or succeed again with nil.
    public func failRefresh(_ error: CairnError?) { lock.withLock { refreshError = error } }

    public var refreshes: Int { lock.withLock { _refreshes } }
    public var reads: Int { lock.withLock { _reads } }

    public func refresh() throws {
        try lock.withLock {
            _refreshes += 1
            if let refreshError { throw refreshError }
            cached = true
        }
    }

    public func resolve() throws -> String {
        try lock.withLock {
            guard let current, let commit = current.commit else { throw CairnError("revision '\(revisionName)' not found in memory") }
            return commit.sha
        }
    }

    public func read() throws -> SourceRead {
        try lock.withLock {
            _reads += 1
            guard let current else { throw CairnError("revision '\(revisionName)' not found in memory") }
            return current
        }
    }

    public func rootCommit(of commit: String) throws -> String { "root" }

    public func descends(_ commit: String, from root: String) -> Bool { root == "root" }
}

/// The trainer twin: answers each run with the metrics the test gives for its model.
public struct ScriptedTrainer: TrainerRunner {
    let metrics: @Sendable (ClaimedRun) throws -> [String: Double]
    let staging: @Sendable (ClaimedRun) -> String
    let trained: Locked<[Int]>

    /// `staging` names each run's artifact (its content, for `InMemoryArtifacts`): by default
    /// one of its own per run; give two runs the same name to play a byte-identical artifact.
    public init(metrics: @escaping @Sendable (ClaimedRun) throws -> [String: Double],
                staging: @escaping @Sendable (ClaimedRun) -> String = { "memory://run-\($0.id)" }) {
        self.metrics = metrics
        self.staging = staging
        trained = Locked([])
    }

    /// Run ids trained, in order.
    public var runs: [Int] { trained.value }

    public func train(_ run: ClaimedRun, expectedVersion: Int, stop: StopFlag, reporter: RunReporter) throws -> TrainedOutput {
        if stop.isSet { throw TrainingInterrupted() }
        trained.update { $0.append(run.id) }
        return TrainedOutput(metrics: try metrics(run), datasetHash: run.request.inputs.dataset, trainerVersion: "scripted",
                             log: "trained \(run.model)", staging: staging(run))
    }

    public func cleanUp(_ run: ClaimedRun) {}

    public func cancelJob(_ job: RunJob) throws {}

    public func sweep(keeping live: Set<String>) -> [String] { [] }
}

/// The artifact-store twin: a content hash of the staging name, a signature naming what it binds.
public struct InMemoryArtifacts: ArtifactKeeper {
    public init() {}

    public func keep(staging: String) throws -> String { sha256Hex(staging) }

    public func sign(contentHash: String, model: String, version: Int, fingerprint: String) -> String {
        sha256Hex("\(contentHash) \(model) \(version) \(fingerprint)")
    }

    /// Every hash is "held" (nothing is stored), but for the ones a test marks as tampered.
    public func verify(contentHash: String) throws {
        if contentHash.hasPrefix("tampered") { throw CairnError("the store holds other content under \(contentHash)") }
    }
}
