import CairnCore
import CairnReconcile
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
    /// Which `file://` datasets may be read.
    public var datasets: DatasetPolicy
    /// How an exec trainer is kept from the worker.
    public var isolation: TrainerIsolation
    /// Outcome samples appended to the dataset.
    public var feedback = FeedbackSnapshot(through: 0, rows: [])
}

/// What a finished trainer hands back.
public struct TrainerOutput: Sendable {
    public var metrics: [String: Double]
    /// A folder holding the artifact's files, to be moved into the artifact store.
    public var staging: URL
    public var datasetHash: String
    public var trainerVersion: String
    public var log: String
    public var learned: LearnedFrom?
    public var tuning: TuningResult? = nil
}

/// Where `file://` datasets may be read from: only under folders the operator lists
/// (`--dataset-root`, `CAIRN_DATASET_ROOTS`), and never inside Cairn's own state (the database,
/// the signing key, artifacts). A manifest is reviewed as a one-line change; the operator's list
/// is what decides which files on this host a commit may make a trainer read.
public struct DatasetPolicy: Sendable {
    /// Allowed folders, resolved (symlinks followed).
    public var roots: [String]
    /// Folders no dataset may be read from, whatever `roots` says (the state directory).
    public var forbidden: [String]

    public init(roots: [String], forbidden: [String]) {
        self.roots = roots.map(Self.resolved)
        self.forbidden = forbidden.map(Self.resolved)
    }

    /// The roots named by `CAIRN_DATASET_ROOTS` (`:`-separated) and `--dataset-root`.
    public static func roots(flags: [String], environment: [String: String]) -> [String] {
        flags + (environment["CAIRN_DATASET_ROOTS"] ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
    }

    static func resolved(_ path: String) -> String {
        guard let real = realpath(path, nil) else { return (path as NSString).standardizingPath }
        defer { free(real) }
        return String(cString: real)
    }

    static func inside(_ path: String, _ folder: String) -> Bool {
        folder == "/" || path == folder || path.hasPrefix(folder + "/")
    }

    /// The local path of a `file://` URI, if reading it is allowed; otherwise an error that says
    /// which rule refused it (and never anything of the file).
    public func path(of uri: String) throws -> String {
        let path = Self.resolved(String(uri.dropFirst("file://".count)))
        if let state = forbidden.first(where: { Self.inside(path, $0) }) {
            throw CairnError("dataset \(uri) is inside Cairn's state directory \(state); datasets are never read from there")
        }
        guard roots.contains(where: { Self.inside(path, $0) }) else {
            throw CairnError("dataset \(uri) is outside the folders this worker may read datasets from ("
                                + (roots.isEmpty ? "none are listed" : roots.joined(separator: ", "))
                                + "); the operator lists them with --dataset-root or CAIRN_DATASET_ROOTS")
        }
        return path
    }
}

enum Dataset {
    /// The dataset's bytes at the run's commit (or from its file:/// URI, where allowed).
    static func read(_ job: TrainingJob) throws -> [UInt8] {
        if let path = job.request.datasetPath {
            do {
                return try GitRepository(path: job.repositoryPath).readFile(revision: job.request.commit, path: path)
            } catch {
                throw CairnError("cannot read the dataset \(path) at \(job.request.commit.prefix(7)): \(error.message)")
            }
        }
        guard case let .uri(uri) = job.request.template.dataset else { throw CairnError("the template names no dataset") }
        let path = try job.datasets.path(of: uri)
        guard let data = FileManager.default.contents(atPath: path) else { throw CairnError("cannot read the dataset \(uri)") }
        return [UInt8](data)
    }

    /// What the run trains on: the dataset, then the outcome samples received since it was
    /// committed (`FeedbackSnapshot.appended`); the bytes its dataset hash is taken of.
    static func snapshot(_ job: TrainingJob) throws -> [UInt8] {
        job.feedback.appended(to: try read(job))
    }

    /// The rows of `bytes` (lines after the header) and the feedback among them.
    static func learned(_ bytes: [UInt8], _ feedback: FeedbackSnapshot) -> LearnedFrom {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).count
        if lines > 0 { lines -= 1 }
        return LearnedFrom(samples: lines, feedbackSamples: feedback.rows.count, feedbackThrough: feedback.through)
    }
}

/// The builtin trainers: popularity and item-knn, evaluated on a seeded per-user holdout, then
/// refit on the full data for the served artifact.
public enum BuiltinTrainer {
    public static let version = "builtin-1"

    public static func train(_ job: TrainingJob, algorithm: Template.BuiltinAlgorithm, params: [String: JSONValue], stop: StopFlag) throws -> TrainerOutput {
        var log: [String] = []
        let started = Date()
        let bytes = try Dataset.snapshot(job)
        let evaluation = job.request.template.evaluation
        let data = try Interactions.load(bytes, events: job.request.template.events, weights: job.request.weights.weights)
        log.append("read \(data.rows) rows: \(data.users.count) users, \(data.items.count) items"
                   + (job.feedback.rows.isEmpty ? "" : " (\(job.feedback.rows.count) of the rows are outcome feedback, through feedback id \(job.feedback.through))"))
        guard !data.items.isEmpty else { throw CairnError("the dataset has no interaction with a weighted event of this template") }
        if stop.isSet { throw TrainingInterrupted() }
        let (train, heldOut) = Evaluation.split(data, holdout: evaluation.holdout, seed: evaluation.seed)
        func formatted(_ m: [String: Double]) -> String { m.keys.sorted().map { "\($0)=\(String(format: "%.4f", m[$0]!))" }.joined(separator: " ") }
        // Tuning: each trial fits its configuration on the training part and is measured on the
        // held-out users; the best one's configuration trains the version.
        var params = params
        var tuning: TuningResult?
        var chosenModel: RecommenderModel?
        var chosenMetrics: [String: Double]?
        if let spec = job.request.template.tuning {
            var trials: [TuningTrial] = []
            for (i, configuration) in spec.configurations(seed: evaluation.seed).enumerated() {
                if stop.isSet { throw TrainingInterrupted() }
                let started = Date()
                let tried = params.merging(configuration) { _, new in new }
                let model = Fit.model(data, userPairs: train, algorithm: algorithm, params: tried)
                let measured = Evaluation.measure(model, train: train, heldOut: heldOut, metrics: evaluation.metrics)
                let trial = TuningTrial(trial: i + 1, params: configuration, metrics: measured,
                                        seconds: (Date().timeIntervalSince(started) * 1000).rounded() / 1000)
                trials.append(trial)
                // Without a refit the best trial's model is the artifact: keep the best so far only.
                if !spec.refit, spec.best(of: trials)?.trial == trial.trial { chosenModel = model }
                log.append("trial \(trial.trial): " + configuration.keys.sorted().map { "\($0)=\(configuration[$0]!.canonicalText)" }.joined(separator: " ")
                           + " → " + formatted(measured))
            }
            guard let best = spec.best(of: trials) else { throw CairnError("no tuning trial measured \(spec.metric)") }
            params = params.merging(best.params) { _, new in new }
            tuning = TuningResult(metric: spec.metric, goal: spec.goal, trials: trials, chosen: best.trial, refit: spec.refit)
            chosenMetrics = best.metrics
            log.append("chose trial \(best.trial) of \(trials.count) by \(spec.metric) (\(spec.goal.rawValue))")
        }
        let metrics: [String: Double]
        if let chosenMetrics {
            metrics = chosenMetrics
        } else {
            let evalModel = Fit.model(data, userPairs: train, algorithm: algorithm, params: params)
            metrics = Evaluation.measure(evalModel, train: train, heldOut: heldOut, metrics: evaluation.metrics)
        }
        log.append("evaluated on \(heldOut.count) users (holdout \(evaluation.holdout), seed \(evaluation.seed)): " + formatted(metrics))
        if stop.isSet { throw TrainingInterrupted() }
        // The served model learns from everything; evaluation never saw the held-out data.
        // (Unless tuning says `refit: false`: then it is the chosen trial's model as measured.)
        let full = chosenModel ?? Fit.model(data, userPairs: data.pairs, algorithm: algorithm, params: params)
        let staging = job.workDir.appendingPathComponent("artifact")
        try? FileManager.default.removeItem(at: staging)
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(full).write(to: staging.appendingPathComponent("model.json"))
        try encoder.encode(metrics).write(to: staging.appendingPathComponent("metrics.json"))
        log.append((chosenModel == nil ? "refit \(algorithm.rawValue) on all \(data.users.count) users" : "kept the chosen trial's model (tuning.refit false)")
                   + " in \(String(format: "%.2f", Date().timeIntervalSince(started)))s")
        return TrainerOutput(metrics: metrics, staging: staging, datasetHash: sha256Hex(bytes), trainerVersion: "\(version) \(algorithm.rawValue)",
                             log: log.joined(separator: "\n") + "\n",
                             learned: LearnedFrom(samples: data.rows, feedbackSamples: job.feedback.rows.count, feedbackThrough: job.feedback.through),
                             tuning: tuning)
    }
}
