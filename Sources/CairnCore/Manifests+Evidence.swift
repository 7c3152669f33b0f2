// The manifests' online-evidence policy: shadow evidence, rollback guards, registry ladders.

/// Online evidence a version must have gathered as a shadow (its answers traced beside what was
/// served) before it is approved, or before it is promoted.
public struct ShadowEvidenceRequirement: Sendable, Hashable, Codable {
    /// The decision the evidence is required for.
    public enum Step: String, Sendable, Hashable, Codable, CaseIterable {
        case approval, promotion
    }

    /// Traced requests the version answered as a shadow.
    public var minRequests: Int
    /// Mean overlap@k with what was served, 0…1.
    public var minOverlap: Double?
    /// Mean Spearman rank correlation with what was served, -1…1.
    public var minRankCorrelation: Double?
    /// Its own p95 latency, in milliseconds.
    public var maxLatencyP95Ms: Double?
    public var requiredFor: Step

    public init(minRequests: Int, minOverlap: Double? = nil, minRankCorrelation: Double? = nil, maxLatencyP95Ms: Double? = nil,
                requiredFor: Step = .approval) {
        self.minRequests = minRequests
        self.minOverlap = minOverlap
        self.minRankCorrelation = minRankCorrelation
        self.maxLatencyP95Ms = maxLatencyP95Ms
        self.requiredFor = requiredFor
    }
}

/// A guard on what a promotion put live, judged on online evidence after at least `minRequests`
/// requests: the reward per request from feedback must not fall more than `maxRewardDrop` below
/// the previous version's on the same target, and the served p95 latency must stay within
/// `maxLatencyP95Ms`. When it trips, Cairn returns the target to its previous routes.
public struct RollbackGuard: Sendable, Hashable, Codable {
    public var minRequests: Int
    public var maxRewardDrop: Double?
    public var maxLatencyP95Ms: Double?

    public init(minRequests: Int, maxRewardDrop: Double? = nil, maxLatencyP95Ms: Double? = nil) {
        self.minRequests = minRequests
        self.maxRewardDrop = maxRewardDrop
        self.maxLatencyP95Ms = maxLatencyP95Ms
    }
}

/// A registry family's ladder: the stages its models climb, in order, and the shadow evidence
/// each step needs. A model moves up one step at a time (from `none` onto the first), and down
/// or off the ladder freely. Policy only: never stored, read with each revision.
public struct ModelFamily: Sendable, Hashable, Codable {
    /// One rung: a stage, and what a model's latest approved version must show as a shadow to reach it.
    public struct Step: Sendable, Hashable, Codable {
        public var stage: Model.Stage
        public var shadowEvidence: ShadowEvidenceRequirement?

        public init(stage: Model.Stage, shadowEvidence: ShadowEvidenceRequirement? = nil) {
            self.stage = stage
            self.shadowEvidence = shadowEvidence
        }
    }

    public var metadata: ManifestMetadata
    public var ladder: [Step]

    public init(metadata: ManifestMetadata, ladder: [Step]) {
        self.metadata = metadata
        self.ladder = ladder
    }

    /// True when `to` is above `from` on the ladder (a step up, which needs its evidence).
    public func climbs(from: Model.Stage, to: Model.Stage) -> Bool {
        let stages = ladder.map(\.stage)
        guard let target = stages.firstIndex(of: to) else { return false }
        return target > (stages.firstIndex(of: from) ?? -1)
    }

    /// Why `from` → `to` is not a step this ladder allows, or nil when it is.
    public func refuses(from: Model.Stage, to: Model.Stage) -> String? {
        let stages = ladder.map(\.stage)
        if to == .none { return nil }
        guard let target = stages.firstIndex(of: to) else {
            return "stage \(to.rawValue) is not on family \(metadata.name)'s ladder (\(stages.map(\.rawValue).joined(separator: " → ")))"
        }
        let current = stages.firstIndex(of: from) ?? -1
        if target > current + 1 {
            let next = stages[current + 1]
            return "family \(metadata.name) climbs \(stages.map(\.rawValue).joined(separator: " → ")): from \(from.rawValue) the next step is \(next.rawValue), not \(to.rawValue)"
        }
        return nil
    }
}
