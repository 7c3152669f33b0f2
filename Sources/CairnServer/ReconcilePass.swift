import CairnCore
import CairnGit
import CairnStore
import Foundation

/// One plan-and-apply under the applier lease: the pass `cairn reconcile` and `cairn serve`
/// both run. Nothing is applied while applying is suspended.
public enum ReconcilePass {
    public struct Outcome: Sendable {
        public var plan: Plan
        /// The observed state the plan was made against.
        public var observed: ObservedState
        /// Nil when applying is suspended.
        public var applied: ApplyResult?
    }

    /// `beforeApply` sees the plan once it is made (the command line prints it there).
    /// `expected`: a saved plan (`cairn apply FILE`). It is applied only if the revision and the
    /// observed state give exactly that plan, under the same lease; otherwise nothing is applied
    /// and the error names the first difference. A plan file is data in transit, not an order.
    public static func run(db: RegistryDatabase, desired: DesiredState, options: PlannerOptions, actor: String, lockWait: Double,
                           expected: Plan? = nil, repository: GitRepository? = nil, beforeApply: (Plan) -> Void = { _ in }) throws -> Outcome {
        let now = { Int64(Date().timeIntervalSince1970) }
        let holder = LeaseHolder()
        try db.acquireLease(holder, wait: lockWait, now: now)
        defer { try? db.releaseLease(holder) }
        if let repository { try SourceCheck.check(db, desired: desired, repository: repository, bind: true) }
        // A registry edited beside its history is not applied to: what it holds can no longer be trusted.
        let mismatches = try db.verifyState()
        if let first = mismatches.first {
            throw CairnError("the registry does not match its audit history: \(first)"
                                   + (mismatches.count > 1 ? " (and \(mismatches.count - 1) more)" : "") + "; nothing was applied",
                                   hint: "`cairn audit verify` names every row; restore the database from a backup taken before the edit",
                             reason: .registryTampered)
        }
        let observed = try db.observedState()
        let plan = Planner.plan(desired: desired, observed: observed, now: now(), options: options)
        if let expected {
            // Said before the comparison, whose first difference would otherwise be the generation.
            if observed.generation != expected.observedGeneration {
                throw RegistryDatabase.stalePlan(current: observed.generation, expected: expected.observedGeneration)
            }
            if let difference = expected.firstDifference(from: plan) {
                throw CairnError("saved plan does not match what revision \(desired.commit.shortSHA) gives against the registry: \(difference); nothing was applied",
                                 hint: "a saved plan is applied only when its revision gives exactly that plan: make a new one with `cairn plan --out FILE` (with the same --exclude and bulk options)")
            }
        }
        beforeApply(plan)
        guard !observed.suspended else { return Outcome(plan: plan, observed: observed, applied: nil) }
        let context = AuditContext(revision: desired.commit.sha, author: "\(desired.commit.authorName) <\(desired.commit.authorEmail)>", actor: actor)
        // A saved plan is also refused if a worker moved the registry after the comparison.
        let result = try db.apply(plan, holder: holder, context: context, expectedGeneration: expected?.observedGeneration, now: now)
        return Outcome(plan: plan, observed: observed, applied: result)
    }
}
