import CairnCore
import Foundation

/// A status condition, as in Kubernetes and Flux: `Ready`, `Reconciling`, `Stalled`.
public struct Condition: Sendable, Codable, Equatable {
    public var type: String
    public var status: String
    public var reason: String
    public var message: String
    public var lastTransitionTime: String
}

/// What the daemon's loop knows between passes; read by the HTTP API from any thread.
public final class ReconcileStatus: @unchecked Sendable {
    private let lock = NSLock()
    private let clock: Clock
    private var _lastAppliedRevision: String?
    private var _lastAttemptedRevision: String?
    private var _lastGeneration: Int?
    private var _desired: DesiredState?
    private var _conditions: [String: Condition] = [:]
    private var _lastPassAt: Double?
    private var _nextScheduleDue: Int64?
    private var _failures = 0
    private var _invalidRevision: String?
    private var _keyProblem: String?
    private var _passes = 0
    private var _skipped = 0
    private var _sourceProblem: String?
    private var _blocked = 0

    public init(clock: Clock) { self.clock = clock }

    private func read<T>(_ body: () -> T) -> T { lock.withLock(body) }

    public var lastAppliedRevision: String? { read { _lastAppliedRevision } }
    public var lastAttemptedRevision: String? { read { _lastAttemptedRevision } }
    /// The observed-state generation the last pass saw (nil before one could read it).
    public var lastGeneration: Int? { read { _lastGeneration } }
    /// The desired state of the last successful pass.
    public var desired: DesiredState? { read { _desired } }
    public var conditions: [String: Condition] { read { _conditions } }
    public var lastPassAt: Double? { read { _lastPassAt } }
    /// When the next learning schedule falls due (seconds since 1970).
    public var nextScheduleDue: Int64? { read { _nextScheduleDue } }
    /// Failed passes in a row.
    public var failures: Int { read { _failures } }
    /// The revision last found invalid: it stays invalid whatever the observed state does.
    public var invalidRevision: String? { read { _invalidRevision } }
    /// Why the signing key cannot serve what is live (checked at start); the daemon is not ready.
    public var keyProblem: String? { read { _keyProblem } }
    /// Passes run (failed ones included) and passes skipped because nothing was new.
    public var passCounts: (run: Int, skipped: Int) { read { (_passes, _skipped) } }
    public var isStalled: Bool { read { _conditions["Stalled"]?.status == "True" } }
    /// Why the source could not be refreshed while passes go on from its cache (nil when it was).
    public var sourceProblem: String? { read { _sourceProblem } }

    /// `Ready`, from what is known now: a stalled pass, the signing key, a stale source, blocked changes.
    private func updateReady() {
        let applied = _lastAppliedRevision.map { String($0.prefix(7)) } ?? "none"
        if _conditions["Stalled"]?.status == "True" {
            let stalled = _conditions["Stalled"]!
            set("Ready", false, reason: stalled.reason, message: "last applied revision \(applied) keeps serving")
        } else if let keyProblem = _keyProblem {
            set("Ready", false, reason: "SigningKeyMismatch", message: keyProblem)
        } else if _lastPassAt == nil {
            return
        } else if let problem = _sourceProblem {
            set("Ready", true, reason: "SourceStale", message: "applied \(applied) from the cached source, which could not be refreshed: \(problem)")
        } else {
            set("Ready", true, reason: _blocked == 0 ? "Succeeded" : "Blocked",
                message: "applied \(applied)" + (_blocked == 0 ? "" : "; \(_blocked) changes blocked"))
        }
    }

    /// The source could not be refreshed, but it has a cache that passes go on from.
    func sourceStale(_ problem: String) {
        lock.withLock {
            _sourceProblem = problem
            updateReady()
        }
    }

    /// The source was refreshed.
    func sourceRefreshed() {
        lock.withLock {
            guard _sourceProblem != nil else { return }
            _sourceProblem = nil
            updateReady()
        }
    }

    private func set(_ type: String, _ status: Bool, reason: String, message: String) {
        let value = status ? "True" : "False"
        let now = Describe.time(clock.unixNow())
        let since = _conditions[type].flatMap { $0.status == value ? $0.lastTransitionTime : nil } ?? now
        _conditions[type] = Condition(type: type, status: value, reason: reason, message: message, lastTransitionTime: since)
    }

    func passStarted(revision: String) {
        lock.withLock {
            _lastAttemptedRevision = revision
            set("Reconciling", true, reason: "Progressing", message: "reconciling \(revision.prefix(7))")
        }
    }

    func passSucceeded(desired: DesiredState, generation: Int, plan: Plan, nextScheduleDue: Int64?) {
        lock.withLock {
            _desired = desired
            _invalidRevision = nil
            _lastAppliedRevision = desired.commit.sha
            _lastGeneration = generation
            _lastPassAt = clock.now()
            _failures = 0
            _nextScheduleDue = nextScheduleDue
            _blocked = plan.blocked.count
            set("Reconciling", false, reason: "Succeeded", message: "last pass applied \(plan.changes.count) changes")
            set("Stalled", false, reason: "Succeeded", message: "")
            updateReady()
        }
    }

    /// Unchanged revision and observed state: nothing ran, only the time moved.
    func passSkipped() {
        lock.withLock {
            _skipped += 1
            _lastPassAt = clock.now()
        }
    }

    /// A pass that ran (succeeded or failed).
    func passRan() { lock.withLock { _passes += 1 } }

    func passFailed(revision: String?, generation: Int?, reason: String, message: String, invalid: Bool = false) {
        lock.withLock {
            if let revision { _lastAttemptedRevision = revision }
            if invalid { _invalidRevision = revision }
            // A failed pass remembers the state it saw, so an unchanged registry does not wake the loop again.
            if let generation { _lastGeneration = generation }
            _lastPassAt = clock.now()
            _failures += 1
            set("Reconciling", false, reason: reason, message: message)
            set("Stalled", true, reason: reason, message: message)
            updateReady()
        }
    }

    /// The signing key cannot verify what is live: not ready until a pass with the right key.
    public func setKeyProblem(_ problem: String) {
        lock.withLock {
            _keyProblem = problem
            set("Ready", false, reason: "SigningKeyMismatch", message: problem)
            updateReady()
        }
    }
}
