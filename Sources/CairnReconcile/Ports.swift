import CairnCore
import Foundation

// The ports of the reconcile core: everything it needs from the world. The binary plugs in git
// (CairnSource), SQLite (CairnStore), trainers and the artifact folder (CairnTraining) and the
// system clock; tests plug in the in-memory twins of CairnTesting and a manual clock.

/// A revision read and validated: what the planner needs, or the diagnostics that stop it.
public struct SourceRead: Sendable {
    /// The commit read; nil for a working tree.
    public var commit: CommitInfo?
    /// Repository-relative manifest folder ("" for the root).
    public var manifestRoot: String
    public var fileCount: Int
    public var documentCount: Int
    public var diagnostics: [Diagnostic]
    /// Nil when the revision is invalid (or read from a working tree).
    public var desired: DesiredState?

    public init(commit: CommitInfo?, manifestRoot: String, fileCount: Int, documentCount: Int, diagnostics: [Diagnostic], desired: DesiredState?) {
        self.commit = commit
        self.manifestRoot = manifestRoot
        self.fileCount = fileCount
        self.documentCount = documentCount
        self.diagnostics = diagnostics
        self.desired = desired
    }
}

/// Port: where manifests come from (a git revision of a local or fetched repository).
public protocol ManifestSource: Sendable {
    /// Where the manifests come from, for messages; credentials are never part of it.
    var location: String { get }
    /// The revision as the operator named it (`main`, `HEAD~1`).
    var revisionName: String { get }
    /// True when `read` needs a `refresh` first (a remote source never fetched).
    var needsRefresh: Bool { get }
    /// Brings a remote source up to date (a fetch); a local source has nothing to do.
    func refresh() throws
    /// The full commit id the revision names now.
    func resolve() throws -> String
    /// Reads the revision's manifests, validates them and hashes their datasets.
    func read() throws -> SourceRead
    /// The first commit of the history `commit` belongs to (what a registry is bound to).
    func rootCommit(of commit: String) throws -> String
    /// Whether `commit` descends from `root`.
    func descends(_ commit: String, from root: String) -> Bool
    /// A shallow clone lacks the first commit: descent cannot be checked.
    var isShallow: Bool { get }
    /// When the source verifies commit signatures: checks `commit` (and, as its policy says,
    /// every commit since `base`) and returns who signed `commit`; throws `.untrustedRevision`
    /// when one is unsigned or not trusted. Nil when signatures are not verified.
    func verifySignatures(of commit: String, since base: String?) throws -> String?
}

extension ManifestSource {
    public func verifySignatures(of commit: String, since base: String?) throws -> String? { nil }
}

/// Who holds (or wants) the applier lease.
public struct LeaseHolder: Sendable {
    public var id: String
    public var pid: Int32
    public var host: String

    public init(id: String = UUID().uuidString, pid: Int32 = ProcessInfo.processInfo.processIdentifier,
                host: String = LeaseHolder.localHostName) {
        self.id = id
        self.pid = pid
        self.host = host
    }

    /// This machine's name from gethostname(2) (no name lookup, which could hang without DNS).
    public static var localHostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown-host" }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// Another process holds the applier lease.
public struct LeaseConflict: Sendable, Equatable {
    public var pid: Int
    public var host: String
    public var since: Int64

    public init(pid: Int, host: String, since: Int64) {
        self.pid = pid
        self.host = host
        self.since = since
    }
}

/// Provenance shared by the audit rows of one apply.
public struct AuditContext: Sendable {
    public var revision: String?
    public var author: String?
    public var actor: String
    /// Who signed the revision (`ssh SHA256:… (principal)`), when signatures are verified.
    public var signer: String?

    public init(revision: String?, author: String?, actor: String, signer: String? = nil) {
        self.revision = revision
        self.author = author
        self.actor = actor
        self.signer = signer
    }
}

/// What an apply wrote.
public struct ApplyResult: Sendable, Equatable {
    /// Changes written.
    public var applied: Int
    /// Transactions committed.
    public var steps: Int
    /// Training runs enqueued, by model.
    public var enqueuedRuns: [String: Int]

    public init(applied: Int = 0, steps: Int = 0, enqueuedRuns: [String: Int] = [:]) {
        self.applied = applied
        self.steps = steps
        self.enqueuedRuns = enqueuedRuns
    }
}

/// The repository and folder a registry follows, bound by its first applying pass.
public struct BoundSource: Sendable, Equatable {
    public var rootCommit: String
    public var manifestRoot: String

    public init(rootCommit: String, manifestRoot: String) {
        self.rootCommit = rootCommit
        self.manifestRoot = manifestRoot
    }
}

/// A training run handed to a worker.
public struct ClaimedRun: Sendable {
    public var id: Int
    public var model: String
    public var request: TrainRequest
    public var attempt: Int
    /// The scheduler job an earlier attempt handed the run to, if it may still be running:
    /// the trainer re-attaches to it instead of submitting another.
    public var job: RunJob?
    /// The outcome samples this run learns from besides its dataset (read when it was claimed).
    public var feedback = FeedbackSnapshot(through: 0, rows: [])

    public init(id: Int, model: String, request: TrainRequest, attempt: Int, job: RunJob? = nil) {
        self.id = id
        self.model = model
        self.request = request
        self.attempt = attempt
        self.job = job
    }
}

/// A batch job a run was handed to (Slurm): recorded on the run as soon as it is submitted.
public struct RunJob: Sendable, Codable, Equatable {
    /// `slurm`.
    public var scheduler: String
    /// The scheduler's job id.
    public var id: String
    /// The run folder the job reads and writes (`run-<id>-<attempt>` of the attempt that submitted it).
    public var folder: String

    public init(scheduler: String, id: String, folder: String) {
        self.scheduler = scheduler
        self.id = id
        self.folder = folder
    }

    public var description: String { "\(scheduler) job \(id)" }
}

/// What a trainer tells its worker while it runs: the job it submitted (recorded on the run at
/// once, so a restarted worker re-attaches to it) and the output so far (`cairn logs`).
public protocol RunReporter: Sendable {
    /// Records the job on the run; throws when this worker no longer holds the run (the trainer
    /// then cancels the job it just submitted).
    func submitted(_ job: RunJob) throws
    /// The job recorded with `submitted` (or re-attached to) has ended: it no longer needs
    /// cancelling, and its folder may go.
    func jobEnded()
    /// The run's log so far.
    func progress(log: String)
    /// True when the run is no longer this worker's to finish: superseded (cancelled by an
    /// apply) or handed to another worker. The trainer stops and cancels its job.
    var isCancelled: Bool { get }
}

/// A reporter that records nothing (tests, builtin trainers).
public struct SilentReporter: RunReporter {
    public init() {}
    public func submitted(_ job: RunJob) throws {}
    public func jobEnded() {}
    public func progress(log: String) {}
    public var isCancelled: Bool { false }
}

/// What a trainer produced, as the registry records it.
public struct RunSuccess: Sendable, Codable, Equatable {
    public var metrics: [String: Double]
    public var datasetHash: String
    public var trainerVersion: String
    public var artifactHash: String?
    public var artifactSignature: String?
    public var log: String
    public var learned: LearnedFrom?
    /// The tuning run's trials and the chosen one, when the template tunes.
    public var tuning: TuningResult?

    public init(metrics: [String: Double], datasetHash: String, trainerVersion: String, artifactHash: String? = nil,
                artifactSignature: String? = nil, log: String = "", learned: LearnedFrom? = nil, tuning: TuningResult? = nil) {
        self.learned = learned
        self.tuning = tuning
        self.metrics = metrics
        self.datasetHash = datasetHash
        self.trainerVersion = trainerVersion
        self.artifactHash = artifactHash
        self.artifactSignature = artifactSignature
        self.log = log
    }
}

/// What deciding a new version depends on, read before the version is recorded and checked
/// again inside the transaction that records it (so a decision is never made on stale inputs).
public struct VersionInputs: Sendable, Equatable {
    /// The number the version gets.
    public var number: Int
    /// The model's approval policy as applied (nil when the model has no row).
    public var approval: Model.Approval?
    /// The metrics of the model's approved versions (for `maxRegression`).
    public var approvedMetrics: [[String: Double]]
    /// The model's versions by `"<fingerprint> <artifact hash>"`: a run of the same inputs that
    /// produces one of these artifacts makes no new version. (Another fingerprint with the same
    /// bytes is still a new version: it is what records the new inputs.)
    public var artifacts: [String: Int]

    /// The key of `artifacts`.
    public static func artifactKey(fingerprint: String, hash: String) -> String { "\(fingerprint) \(hash)" }

    public init(number: Int, approval: Model.Approval?, approvedMetrics: [[String: Double]], artifacts: [String: Int] = [:]) {
        self.number = number
        self.approval = approval
        self.approvedMetrics = approvedMetrics
        self.artifacts = artifacts
    }
}

/// Port: the registry (observed state, queue, audit history). One transaction per call that
/// writes; every write is audited by the store.
public protocol RegistryStore: Sendable {
    /// Where the registry is, for messages.
    var location: String { get }

    /// Takes the applier lease unless another live holder has it (then says who).
    func tryAcquireLease(_ holder: LeaseHolder, ttl: Int64, now: Int64) throws -> LeaseConflict?
    func releaseLease(_ holder: LeaseHolder) throws

    func boundSource() throws -> BoundSource?
    /// Binds a registry not yet bound; a bound one keeps its binding.
    func bindSource(_ source: BoundSource) throws
    /// Rows the audit history does not explain, described; empty when the registry matches it.
    func stateMismatches() throws -> [String]

    /// Bumped by every change to the observed state.
    func generation() throws -> Int
    func observedState() throws -> ObservedState
    /// The online evidence a plan needs (decision traces and feedback), read now.
    func evidence(_ request: EvidenceRequest) throws -> Evidence
    /// Applies `plan` (the caller holds the lease), one transaction per step with its audit rows.
    func apply(_ plan: Plan, holder: LeaseHolder, context: AuditContext, expectedGeneration: Int?, now: @escaping () -> Int64) throws -> ApplyResult
    /// Records a pass that could not be applied; the last applied revision stays in force.
    func recordFailedPass(revision: String?, revisionName: String?, result: String, message: String, at: Int64) throws

    func activeRunCounts() throws -> (queued: Int, running: Int)
    /// Training runs by state (`queued`, `running`, `succeeded`, `failed`, `cancelled`), in one read.
    func runStateCounts() throws -> [String: Int]
    /// Re-queues runs whose worker died (lease expired); returns their ids.
    @discardableResult
    func requeueExpiredRuns(now: Int64, baseDelay: Int64) throws -> [Int]
    func claimRun(holder: String, leaseSeconds: Int64, now: Int64) throws -> ClaimedRun?
    /// Extends a running run's lease; false when this worker no longer holds it.
    func heartbeat(_ id: Int, holder: String, leaseSeconds: Int64, now: Int64) throws -> Bool
    /// Hands a running run back to the queue, its attempt not counted.
    func releaseRun(_ id: Int, holder: String) throws
    func failRun(_ id: Int, holder: String, reason: String, log: String, now: Int64) throws
    /// Keeps a finished run's result for the control plane to record (a worker without the
    /// signing key). The run stays `running`, held by `holder`, and is never re-queued.
    func submitResult(run id: Int, holder: String, success: RunSuccess, now: Int64) throws
    /// Results submitted and not recorded yet, oldest run first.
    func submittedResults() throws -> [SubmittedResult]
    /// What deciding the next version of `model` depends on now.
    func versionInputs(model: String) throws -> VersionInputs
    /// Records a successful run as version `inputs.number` with `decision` (nil: pending). Throws
    /// `CairnError` with reason `.inputsMoved` when the inputs changed since they were read.
    func recordVersion(run id: Int, holder: String, success: RunSuccess, inputs: VersionInputs, decision: ApprovalPolicy.Decision?,
                       now: Int64) throws -> ModelVersion
    /// Records a successful run whose artifact is identical to version `matches`: the run
    /// succeeds and names that version; no new version is made. Refused with `.inputsMoved`
    /// like `recordVersion`.
    func recordMatch(run id: Int, holder: String, matches version: Int, inputs: VersionInputs, log: String, now: Int64) throws
    /// `run-<id>-<attempt>` of every run running under a live lease, and the folder of every
    /// job that may still be running for a run not ended.
    func liveRunFolders(now: Int64) throws -> Set<String>
    /// Records the job a run was handed to, while `holder` holds the run.
    func recordRunJob(_ id: Int, holder: String, job: RunJob) throws
    /// The run's job has ended (followed to its end, or cancelled because its run ended).
    func closeRunJob(_ id: Int) throws
    /// Runs that ended (succeeded, failed, cancelled) whose job may still be running.
    func openJobsOfEndedRuns() throws -> [(run: Int, job: RunJob)]
    /// The log of a run still running, as its trainer has it so far.
    func updateRunLog(_ id: Int, holder: String, log: String) throws
    /// The state of a run (`queued`, `running`, …) and its lease holder; nil if it does not exist.
    func runState(_ id: Int) throws -> (state: String, holder: String?)?
}

/// What a trainer hands back.
public struct TrainedOutput: Sendable {
    public var metrics: [String: Double]
    public var datasetHash: String
    public var trainerVersion: String
    public var log: String
    /// Where the artifact's files wait to be kept (a staging folder); nil when there are none.
    public var staging: String?
    public var learned: LearnedFrom?
    public var tuning: TuningResult?

    public init(metrics: [String: Double], datasetHash: String, trainerVersion: String, log: String, staging: String?, learned: LearnedFrom? = nil,
                tuning: TuningResult? = nil) {
        self.learned = learned
        self.tuning = tuning
        self.metrics = metrics
        self.datasetHash = datasetHash
        self.trainerVersion = trainerVersion
        self.log = log
        self.staging = staging
    }
}

/// Port: runs trainers (builtin, exec, and batch jobs on Slurm).
public protocol TrainerRunner: Sendable {
    /// Runs `run`'s trainer. Throws `TrainingInterrupted` when stopped, `RunCancelled` when the
    /// reporter says the run is no longer this worker's, `TrainerFailure` or `CairnError` when it failed.
    func train(_ run: ClaimedRun, expectedVersion: Int, stop: StopFlag, reporter: RunReporter) throws -> TrainedOutput
    /// Cancels a job whose run ended without its worker (superseded while queued, out of attempts).
    func cancelJob(_ job: RunJob) throws
    /// Removes a run's private files.
    func cleanUp(_ run: ClaimedRun)
    /// Removes run folders not in `live` (left by a killed worker); returns their names.
    func sweep(keeping live: Set<String>) -> [String]
}

/// Port: the artifact store: keeps an artifact under its content hash and signs it.
public protocol ArtifactKeeper: Sendable {
    /// Moves the staged files into the store; returns their content hash.
    func keep(staging: String) throws -> String
    /// The signature binding `contentHash` to one version.
    func sign(contentHash: String, model: String, version: Int, fingerprint: String) -> String
    /// Throws unless the store holds an artifact whose content hashes to `contentHash` (read again).
    func verify(contentHash: String) throws
}

/// A finished run a worker without the signing key left for the control plane to record.
public struct SubmittedResult: Sendable {
    public var run: ClaimedRun
    /// The worker that trained it (still the run's lease holder).
    public var holder: String
    public var success: RunSuccess

    public init(run: ClaimedRun, holder: String, success: RunSuccess) {
        self.run = run
        self.holder = holder
        self.success = success
    }
}

/// Raised when a worker was asked to stop mid-run: the run goes back to the queue.
public struct TrainingInterrupted: Error, Sendable {
    public init() {}
}

/// Raised when a run stopped being this worker's while it trained (superseded by an apply, or
/// its lease lost): its trainer was stopped and its job cancelled; nothing is recorded.
public struct RunCancelled: Error, Sendable {
    public init() {}
}

/// A trainer that ran and failed; its output is kept for `cairn logs`.
public struct TrainerFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var log: String

    public init(_ message: String, log: String) {
        self.message = message
        self.log = log
    }

    public var description: String { message }
}
