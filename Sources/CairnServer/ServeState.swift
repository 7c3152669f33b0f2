import CairnCore
import CairnTraining
import Foundation

/// How `cairn serve` is configured.
public struct ServeConfiguration: Sendable {
    /// A local path or a remote URL.
    public var repository: String
    public var revision: String
    public var manifestRoot: String
    public var exclude: Set<String>
    public var databasePath: String
    public var host: String
    public var port: Int
    /// Seconds between polls of the source (±10% jitter).
    public var interval: Int
    /// Seconds after which a pass runs even with nothing new, to catch drift.
    public var resync: Int
    public var workers: Int
    public var planner: PlannerOptions
    public var artifactsPath: String
    public var signingKeyPath: String
    public var gitCachePath: String
    public var workRoot: String
    /// `CAIRN_WEBHOOK_SECRET`; webhooks are refused without it.
    public var webhookSecret: String?
    /// Which `file://` datasets trainers may read.
    public var datasets: DatasetPolicy = DatasetPolicy(roots: [], forbidden: [])
    /// How exec trainers are kept from the daemon.
    public var isolation: TrainerIsolation = .none
    /// `/metrics` without a token (`--public-metrics`), for scrapers that cannot send one.
    public var publicMetrics = false

    public init(repository: String, revision: String, manifestRoot: String, exclude: Set<String>, databasePath: String, host: String,
                port: Int, interval: Int, resync: Int, workers: Int, planner: PlannerOptions, artifactsPath: String, signingKeyPath: String,
                gitCachePath: String, workRoot: String, webhookSecret: String?) {
        self.repository = repository
        self.revision = revision
        self.manifestRoot = manifestRoot
        self.exclude = exclude
        self.databasePath = databasePath
        self.host = host
        self.port = port
        self.interval = interval
        self.resync = resync
        self.workers = workers
        self.planner = planner
        self.artifactsPath = artifactsPath
        self.signingKeyPath = signingKeyPath
        self.gitCachePath = gitCachePath
        self.workRoot = workRoot
        self.webhookSecret = webhookSecret
    }
}

/// A status condition, as in Kubernetes and Flux: `Ready`, `Reconciling`, `Stalled`.
public struct Condition: Sendable, Codable, Equatable {
    public var type: String
    public var status: String
    public var reason: String
    public var message: String
    public var lastTransitionTime: String
}

/// What the daemon knows between passes; shared by the loop and the HTTP handlers.
public actor ServeState {
    public private(set) var lastAppliedRevision: String?
    public private(set) var lastAttemptedRevision: String?
    public private(set) var lastGeneration: Int?
    public private(set) var desired: DesiredState?
    public private(set) var conditions: [String: Condition] = [:]
    public private(set) var lastPassAt: Date?
    public private(set) var nextScheduleDue: Int64?
    public private(set) var failures = 0
    /// The revision last found invalid: it stays invalid whatever the observed state does.
    public private(set) var invalidRevision: String?
    private var triggered = false
    /// Why the signing key cannot serve what is live (checked at start); the daemon is not ready.
    public private(set) var keyProblem: String?

    public init() {}

    /// Asks for a pass as soon as possible (webhook, finished training run).
    public func trigger() { triggered = true }

    func takeTrigger() -> Bool {
        defer { triggered = false }
        return triggered
    }

    func set(_ type: String, _ status: Bool, reason: String, message: String) {
        let value = status ? "True" : "False"
        let now = Describe.time(Int64(Date().timeIntervalSince1970))
        let since = conditions[type].flatMap { $0.status == value ? $0.lastTransitionTime : nil } ?? now
        conditions[type] = Condition(type: type, status: value, reason: reason, message: message, lastTransitionTime: since)
    }

    func passStarted(revision: String) {
        lastAttemptedRevision = revision
        set("Reconciling", true, reason: "Progressing", message: "reconciling \(revision.prefix(7))")
    }

    func passSucceeded(desired: DesiredState, generation: Int, plan: Plan, nextScheduleDue: Int64?) {
        self.desired = desired
        invalidRevision = nil
        lastAppliedRevision = desired.commit.sha
        lastGeneration = generation
        lastPassAt = Date()
        failures = 0
        self.nextScheduleDue = nextScheduleDue
        set("Reconciling", false, reason: "Succeeded", message: "last pass applied \(plan.changes.count) changes")
        set("Stalled", false, reason: "Succeeded", message: "")
        if let keyProblem {
            set("Ready", false, reason: "SigningKeyMismatch", message: keyProblem)
        } else {
            set("Ready", true, reason: plan.blocked.isEmpty ? "Succeeded" : "Blocked",
                message: "applied \(desired.commit.sha.prefix(7))" + (plan.blocked.isEmpty ? "" : "; \(plan.blocked.count) changes blocked"))
        }
    }

    /// Unchanged revision and observed state: nothing ran, only the time moved.
    func passSkipped() { lastPassAt = Date() }

    func passFailed(revision: String?, generation: Int?, reason: String, message: String, invalid: Bool = false) {
        if let revision { lastAttemptedRevision = revision }
        if invalid { invalidRevision = revision }
        lastGeneration = generation
        lastPassAt = Date()
        failures += 1
        set("Reconciling", false, reason: reason, message: message)
        set("Stalled", true, reason: reason, message: message)
        set("Ready", false, reason: reason, message: "last applied revision \(lastAppliedRevision.map { String($0.prefix(7)) } ?? "none") keeps serving")
    }

    func setApplied(_ revision: String?) {
        if lastAppliedRevision == nil { lastAppliedRevision = revision }
    }

    func setKeyProblem(_ problem: String) {
        keyProblem = problem
        set("Ready", false, reason: "SigningKeyMismatch", message: problem)
    }

    public var isStalled: Bool { conditions["Stalled"]?.status == "True" }
}
