/// Gated approval, the one place it is decided: the planner uses it for pending versions, the
/// worker loop for a version as it is recorded. The registry records decisions; it never makes them.
public enum ApprovalPolicy {
    /// A version decided by its model's gates, and why in words (`gates: ndcg@10 0.31 ≥ min 0.2`).
    public struct Decision: Sendable, Equatable {
        public var status: ModelVersion.Status
        public var reason: String

        public init(status: ModelVersion.Status, reason: String) {
            self.status = status
            self.reason = reason
        }
    }

    /// The decision for a version with `metrics` under `approval`, given the best value of each
    /// metric among the approved versions so far; nil under manual approval (the version stays
    /// pending), and nil for a version that passes its gates but must first show shadow evidence
    /// for its approval (`evidenceRequired`, as when a worker records a new version: the planner
    /// approves it once the evidence is there).
    public static func decide(_ approval: Model.Approval, metrics: [String: Double], best: [String: Double],
                              evidenceRequired: Bool = true) -> Decision? {
        guard approval.mode == .gated else { return nil }
        let (passed, why) = Gates.evaluate(approval.gates, metrics: metrics, best: best)
        if passed, evidenceRequired, approval.shadowEvidence?.requiredFor == .approval { return nil }
        return Decision(status: passed ? .approved : .rejected, reason: "gates: " + why)
    }

    /// `best` with `metrics` of one more approved version folded in.
    public static func including(_ metrics: [String: Double], in best: [String: Double]) -> [String: Double] {
        var out = best
        for (metric, value) in metrics { out[metric] = max(out[metric] ?? value, value) }
        return out
    }

    /// The best value of each metric among approved versions' metrics (`maxRegression`'s reference).
    public static func best(of approved: [[String: Double]]) -> [String: Double] {
        approved.reduce([:]) { including($1, in: $0) }
    }
}
