import CairnCore
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
    public static func run(db: RegistryDatabase, desired: DesiredState, options: PlannerOptions, actor: String, lockWait: Double,
                           beforeApply: (Plan) -> Void = { _ in }) throws -> Outcome {
        let now = { Int64(Date().timeIntervalSince1970) }
        let holder = LeaseHolder()
        try db.acquireLease(holder, wait: lockWait, now: now)
        defer { try? db.releaseLease(holder) }
        let observed = try db.observedState()
        let plan = Planner.plan(desired: desired, observed: observed, now: now(), options: options)
        beforeApply(plan)
        guard !observed.suspended else { return Outcome(plan: plan, observed: observed, applied: nil) }
        let context = AuditContext(revision: desired.commit.sha, author: "\(desired.commit.authorName) <\(desired.commit.authorEmail)>", actor: actor)
        let result = try db.apply(plan, holder: holder, context: context, now: now)
        return Outcome(plan: plan, observed: observed, applied: result)
    }
}
