import CairnCore
import CairnReconcile
import Foundation

/// The trainer port of the binary: builtin trainers in process, exec trainers as isolated
/// child processes, each run in a private folder under `workRoot`.
public struct LocalTrainerRunner: TrainerRunner {
    /// The repository the runs' commits are read from.
    public var repositoryPath: String
    /// Where runs keep their private files.
    public var workRoot: URL
    public var environment: [String: String]
    /// Which `file://` datasets may be read.
    public var datasets: DatasetPolicy
    /// How exec trainers are kept from this worker.
    public var isolation: TrainerIsolation

    public init(repositoryPath: String, workRoot: URL, environment: [String: String] = ProcessInfo.processInfo.environment,
                datasets: DatasetPolicy = DatasetPolicy(roots: [], forbidden: []), isolation: TrainerIsolation = .none) {
        self.repositoryPath = repositoryPath
        self.workRoot = workRoot
        self.environment = environment
        self.datasets = datasets
        self.isolation = isolation
    }

    /// The run's folder: the one its job writes to when it re-attaches to one, else its attempt's own.
    func workDir(_ run: ClaimedRun) -> URL {
        workRoot.appendingPathComponent(run.job?.folder ?? "run-\(run.id)-\(run.attempt)")
    }

    /// How Slurm jobs are submitted and followed (the worker's environment names the cluster).
    var slurm: SlurmTrainer {
        SlurmTrainer(client: SlurmClient(environment: environment), pollInterval: environment["CAIRN_SLURM_POLL"].flatMap(Double.init) ?? 2)
    }

    public func train(_ run: ClaimedRun, expectedVersion: Int, stop: StopFlag, reporter: RunReporter) throws -> TrainedOutput {
        let job = TrainingJob(runID: run.id, attempt: run.attempt, model: run.model, expectedVersion: expectedVersion, request: run.request,
                              workDir: workDir(run), repositoryPath: repositoryPath, environment: environment,
                              datasets: datasets, isolation: isolation, feedback: run.feedback)
        let output: TrainerOutput
        switch run.request.template.trainer {
        case let .builtin(algorithm, params):
            output = try BuiltinTrainer.train(job, algorithm: algorithm, params: params, stop: stop)
        case let .exec(command, timeout, env, params):
            output = try ExecTrainer.train(job, command: command, timeout: timeout, env: env, params: params, stop: stop, reporter: reporter)
        case let .slurm(spec):
            output = try slurm.train(job, spec: spec, existing: run.job, workRoot: workRoot, stop: stop, reporter: reporter)
        }
        return TrainedOutput(metrics: output.metrics, datasetHash: output.datasetHash, trainerVersion: output.trainerVersion, log: output.log,
                             staging: output.staging.path, learned: output.learned, tuning: output.tuning)
    }

    public func cleanUp(_ run: ClaimedRun) { Self.remove(workDir(run)) }

    public func cancelJob(_ job: RunJob) throws {
        guard job.scheduler == "slurm" else { throw CairnError("unknown scheduler '\(job.scheduler)' of \(job.description)") }
        try slurm.client.cancel(job.id)
    }

    public func sweep(keeping live: Set<String>) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: workRoot.path) else { return [] }
        let stale = names.filter { $0.hasPrefix("run-") && !live.contains($0) }.sorted()
        for name in stale { Self.remove(workRoot.appendingPathComponent(name)) }
        return stale
    }

    static func remove(_ dir: URL) {
        try? ExecTrainer.makeWritable(dir)
        try? FileManager.default.removeItem(at: dir)
    }
}

/// The artifact port of the binary: the content-addressed folder, and the key that signs.
public struct SignedArtifactStore: ArtifactKeeper {
    public var store: ArtifactStore
    public var key: SigningKey

    public init(store: ArtifactStore, key: SigningKey) {
        self.store = store
        self.key = key
    }

    public func keep(staging: String) throws -> String { try store.store(staging: URL(fileURLWithPath: staging)) }

    public func sign(contentHash: String, model: String, version: Int, fingerprint: String) -> String {
        key.sign(contentHash: contentHash, identity: VersionIdentity(model: model, version: version, fingerprint: fingerprint))
    }

    public func verify(contentHash: String) throws { try store.verifyDigest(contentHash) }
}

/// The artifact store of a worker without the signing key (`cairn worker --unsigned`): it keeps
/// artifacts; the control plane verifies, signs and records them.
public struct UnsignedArtifactStore: ArtifactKeeper {
    public var store: ArtifactStore

    public init(store: ArtifactStore) { self.store = store }

    public func keep(staging: String) throws -> String { try store.store(staging: URL(fileURLWithPath: staging)) }

    public func sign(contentHash: String, model: String, version: Int, fingerprint: String) -> String {
        preconditionFailure("a worker without the signing key submits its results; it never signs")
    }

    public func verify(contentHash: String) throws { try store.verifyDigest(contentHash) }
}
