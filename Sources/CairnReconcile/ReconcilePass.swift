import CairnCore
import Foundation

/// The reconcile pass, the one place it is built: read a revision → validate → record a
/// failure → check the source and the registry → plan → apply under the applier lease.
/// `cairn plan`, `reconcile`, `apply` and `cairn serve` all run it.
public enum ReconcilePass {
    /// What one applying pass did.
    public struct Outcome: Sendable {
        public var plan: Plan
        /// The observed state the plan was made against.
        public var observed: ObservedState
        /// Nil when applying is suspended.
        public var applied: ApplyResult?
    }

    /// A revision that failed validation: nothing is planned or applied (rule 8).
    public struct InvalidRevision: Error, Sendable {
        public var read: SourceRead
    }

    /// How a failed read is recorded in the registry's pass history.
    public enum Recording: Sendable {
        /// Not at all (a plan writes nothing).
        case none
        /// Invalid revisions, with at most `limit` errors in the message; source errors too when `sourceErrors`.
        case failures(limit: Int?, sourceErrors: Bool)
    }

    /// Reads and validates the revision. An unreadable source throws its error, an invalid
    /// revision `InvalidRevision`; both are recorded in `store` as `recording` says.
    public static func read(_ source: ManifestSource, recordingIn store: RegistryStore? = nil, recording: Recording = .none,
                            clock: Clock) throws -> DesiredState {
        let read: SourceRead
        do {
            read = try source.read()
        } catch {
            // Rule 9: when the source cannot be read nothing is planned, so nothing is pruned.
            if let store, case .failures(_, true) = recording {
                try store.recordFailedPass(revision: nil, revisionName: source.revisionName, result: "source_error", message: "\(error)",
                                           at: clock.unixNow())
            }
            throw error
        }
        guard let desired = read.desired else {
            // Rule 8: an invalid revision blocks as a whole; the last applied revision stays.
            if let store, case let .failures(limit, _) = recording {
                try? store.recordFailedPass(revision: read.commit?.sha, revisionName: source.revisionName, result: "invalid",
                                            message: invalidMessage(read.diagnostics.errors, limit: limit), at: clock.unixNow())
            }
            throw InvalidRevision(read: read)
        }
        return desired
    }

    /// The errors of an invalid revision in one message: every one on its own line, or with a
    /// `limit`, the first few joined by `; `.
    public static func invalidMessage(_ errors: [Diagnostic], limit: Int?) -> String {
        guard let limit else { return errors.map(\.oneLine).joined(separator: "\n") }
        return errors.prefix(limit).map(\.oneLine).joined(separator: "; ") + (errors.count > limit ? "; … \(errors.count - limit) more" : "")
    }

    /// The plan for `desired` against `store` (nil: an empty registry), writing nothing.
    public static func plan(_ desired: DesiredState, source: ManifestSource, store: RegistryStore?, options: PlannerOptions, clock: Clock) throws -> Plan {
        if let store { try checkSource(store, desired: desired, source: source, bind: false) }
        let observed = try store?.observedState() ?? .empty
        // An untrusted revision is not planned either: the plan says why, as the apply would.
        _ = try source.verifySignatures(of: desired.commit.sha, since: observed.lastAppliedRevision)
        let evidence = try store?.evidence(Planner.evidenceNeeded(desired: desired, observed: observed)) ?? .none
        var plan = Planner.plan(desired: desired, observed: observed, evidence: evidence, now: clock.unixNow(), options: options)
        plan.registryMissing = store == nil
        return plan
    }

    /// One plan-and-apply under the applier lease. Nothing is applied while applying is suspended.
    /// `beforeApply` sees the plan once it is made (the command line prints it there).
    /// `expected`: a saved plan (`cairn apply FILE`). It is applied only if the revision and the
    /// observed state give exactly that plan, under the same lease; otherwise nothing is applied
    /// and the error names the first difference. A plan file is data in transit, not an order.
    public static func run(_ desired: DesiredState, source: ManifestSource, store: RegistryStore, options: PlannerOptions, actor: String,
                           lockWait: Double, clock: Clock, expected: Plan? = nil, beforeApply: (Plan) -> Void = { _ in }) throws -> Outcome {
        let now = { clock.unixNow() }
        let holder = LeaseHolder()
        try acquireLease(store, holder, wait: lockWait, clock: clock)
        defer { try? store.releaseLease(holder) }
        try checkSource(store, desired: desired, source: source, bind: true)
        // A registry edited beside its history is not applied to: what it holds can no longer be trusted.
        let mismatches = try store.stateMismatches()
        if let first = mismatches.first {
            throw CairnError("the registry does not match its audit history: \(first)"
                             + (mismatches.count > 1 ? " (and \(mismatches.count - 1) more)" : "") + "; nothing was applied",
                             hint: "`cairn audit verify` names every row; restore the database from a backup taken before the edit",
                             reason: .registryTampered)
        }
        let observed = try store.observedState()
        // Only a revision signed by a trusted key is applied; who signed it goes on every row it writes.
        let signer = try source.verifySignatures(of: desired.commit.sha, since: observed.lastAppliedRevision)
        let evidence = try store.evidence(Planner.evidenceNeeded(desired: desired, observed: observed))
        let plan = Planner.plan(desired: desired, observed: observed, evidence: evidence, now: now(), options: options)
        if let expected {
            // Said before the comparison, whose first difference would otherwise be the generation.
            if observed.generation != expected.observedGeneration {
                throw stalePlan(current: observed.generation, expected: expected.observedGeneration)
            }
            if let difference = expected.firstDifference(from: plan) {
                throw CairnError("saved plan does not match what revision \(desired.commit.shortSHA) gives against the registry: \(difference); nothing was applied",
                                 hint: "a saved plan is applied only when its revision gives exactly that plan: make a new one with `cairn plan --out FILE` (with the same --exclude and bulk options)")
            }
        }
        beforeApply(plan)
        guard !observed.suspended else { return Outcome(plan: plan, observed: observed, applied: nil) }
        let context = AuditContext(revision: desired.commit.sha, author: "\(desired.commit.authorName) <\(desired.commit.authorEmail)>", actor: actor,
                                   signer: signer)
        // A saved plan is also refused if a worker moved the registry after the comparison.
        let result = try store.apply(plan, holder: holder, context: context, expectedGeneration: expected?.observedGeneration, now: now)
        return Outcome(plan: plan, observed: observed, applied: result)
    }

    /// A saved plan made against another observed-state generation than the registry's.
    public static func stalePlan(current: Int, expected: Int) -> CairnError {
        CairnError("saved plan is stale: the observed state moved (generation \(current), plan made at \(expected))", hint: "make a new plan")
    }

    /// Takes the single-applier lease, waiting up to `wait` seconds for a live holder to let go.
    public static func acquireLease(_ store: RegistryStore, _ holder: LeaseHolder, wait: Double, clock: Clock, ttl: Int64 = 120) throws {
        let deadline = clock.now() + wait
        while let other = try store.tryAcquireLease(holder, ttl: ttl, now: clock.unixNow()) {
            if clock.now() >= deadline { throw leaseBusy(other) }
            clock.sleep(0.1)
        }
    }

    /// Another applier holds the lease.
    public static func leaseBusy(_ other: LeaseConflict) -> CairnError {
        CairnError("reconcile already running: pid \(other.pid) on \(other.host) since \(Describe.time(other.since))",
                   hint: "wait for it to finish, or pass --lock-timeout to wait longer")
    }

    /// A registry follows one repository and one manifest folder. The first pass that applies
    /// binds it (`bind`); every later pass (and every plan) checks that the revision comes from
    /// the same history and folder, so pointing a registry at another repository, or at the same
    /// repository with another `--path`, is refused instead of archiving and re-training the fleet.
    public static func checkSource(_ store: RegistryStore, desired: DesiredState, source: ManifestSource, bind: Bool) throws {
        guard let bound = try store.boundSource() else {
            if bind {
                try store.bindSource(BoundSource(rootCommit: try source.rootCommit(of: desired.commit.sha), manifestRoot: desired.manifestRoot))
            }
            return
        }
        if bound.manifestRoot != desired.manifestRoot {
            throw CairnError("the registry at \(store.location) follows the manifest folder '\(bound.manifestRoot.isEmpty ? "(repository root)" : bound.manifestRoot)', "
                             + "not '\(desired.manifestRoot.isEmpty ? "(repository root)" : desired.manifestRoot)'; nothing was planned or applied",
                             hint: "pass --path \(bound.manifestRoot.isEmpty ? "''" : bound.manifestRoot), or give this folder its own registry with --db")
        }
        // A shallow clone (a CI checkout) does not have the first commit: it cannot be checked.
        if !source.isShallow, !source.descends(desired.commit.sha, from: bound.rootCommit) {
            throw CairnError("the registry at \(store.location) follows another repository (first commit \(bound.rootCommit.prefix(12))); "
                             + "\(desired.commit.shortSHA) of \(source.location) does not descend from it; nothing was planned or applied",
                             hint: "pass the --repo this registry follows, or give this repository its own registry with --db")
        }
    }
}
