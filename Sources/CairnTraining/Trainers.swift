import CairnCore
import CairnGit
import Foundation

/// Everything a trainer gets for one run.
public struct TrainingJob: Sendable {
    public var runID: Int
    public var attempt: Int
    public var model: String
    /// The number the version will most likely get (told to exec trainers as CAIRN_VERSION).
    public var expectedVersion: Int
    public var request: TrainRequest
    /// A private folder for this run's files.
    public var workDir: URL
    /// The repository to read the run's commit from.
    public var repositoryPath: String
    /// The worker's environment (secrets are removed before an exec trainer sees it).
    public var environment: [String: String]
}

/// What a finished trainer hands back.
public struct TrainerOutput: Sendable {
    public var metrics: [String: Double]
    /// A folder holding the artifact's files, to be moved into the artifact store.
    public var staging: URL
    public var datasetHash: String
    public var trainerVersion: String
    public var log: String
}

/// Raised when the worker was asked to stop mid-run: the run goes back to the queue.
public struct TrainingInterrupted: Error, Sendable {}

/// Answers "should I stop?" from any thread.
public final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false

    public init() {}

    public var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    public func set() {
        lock.lock()
        stopped = true
        lock.unlock()
    }
}

enum Dataset {
    /// The dataset's bytes at the run's commit (or from its file:/// URI).
    static func read(_ job: TrainingJob) throws -> [UInt8] {
        if let path = job.request.datasetPath {
            do {
                return try GitRepository(path: job.repositoryPath).readFile(revision: job.request.commit, path: path)
            } catch {
                throw TrainingError("cannot read the dataset \(path) at \(job.request.commit.prefix(7)): \(error.message)")
            }
        }
        guard case let .uri(uri) = job.request.template.dataset else { throw TrainingError("the template names no dataset") }
        let path = String(uri.dropFirst("file://".count))
        guard let data = FileManager.default.contents(atPath: path) else { throw TrainingError("cannot read the dataset \(uri)") }
        return [UInt8](data)
    }
}

/// The builtin trainers: popularity and item-knn, evaluated on a seeded per-user holdout, then
/// refit on the full data for the served artifact.
public enum BuiltinTrainer {
    public static let version = "builtin-1"

    public static func train(_ job: TrainingJob, algorithm: Template.BuiltinAlgorithm, params: [String: JSONValue], stop: StopFlag) throws -> TrainerOutput {
        var log: [String] = []
        let started = Date()
        let bytes = try Dataset.read(job)
        let evaluation = job.request.template.evaluation
        let data = try Interactions.load(bytes, events: job.request.template.events, weights: job.request.weights.weights)
        log.append("read \(data.rows) rows: \(data.users.count) users, \(data.items.count) items")
        guard !data.items.isEmpty else { throw TrainingError("the dataset has no interaction with a weighted event of this template") }
        if stop.isSet { throw TrainingInterrupted() }
        let (train, heldOut) = Evaluation.split(data, holdout: evaluation.holdout, seed: evaluation.seed)
        let evalModel = Fit.model(data, userPairs: train, algorithm: algorithm, params: params)
        let metrics = Evaluation.measure(evalModel, train: train, heldOut: heldOut, metrics: evaluation.metrics)
        log.append("evaluated on \(heldOut.count) users (holdout \(evaluation.holdout), seed \(evaluation.seed)): "
                   + metrics.keys.sorted().map { "\($0)=\(String(format: "%.4f", metrics[$0]!))" }.joined(separator: " "))
        if stop.isSet { throw TrainingInterrupted() }
        // The served model learns from everything; evaluation never saw the held-out data.
        let full = Fit.model(data, userPairs: data.pairs, algorithm: algorithm, params: params)
        let staging = job.workDir.appendingPathComponent("artifact")
        try? FileManager.default.removeItem(at: staging)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(full).write(to: staging.appendingPathComponent("model.json"))
        try encoder.encode(metrics).write(to: staging.appendingPathComponent("metrics.json"))
        log.append("refit \(algorithm.rawValue) on all \(data.users.count) users in \(String(format: "%.2f", Date().timeIntervalSince(started)))s")
        return TrainerOutput(metrics: metrics, staging: staging, datasetHash: sha256Hex(bytes), trainerVersion: "\(version) \(algorithm.rawValue)",
                             log: log.joined(separator: "\n") + "\n")
    }
}
