import Foundation

/// Online evidence the planner reads beside the observed state: what shadows showed, how what a
/// promotion put live is doing, and the A/B readouts of splits a change touches. Read from the
/// decision traces and feedback just before planning (`EvidenceRequest` says which).
public struct Evidence: Sendable, Equatable, Codable {
    /// "model@version" → its answers as a shadow, over every target.
    public var shadows: [String: ShadowSummary]
    /// Target → the reading its rollback guard judges.
    public var guards: [String: GuardReading]
    /// Target → the readout of its live split.
    public var readouts: [String: ABReadout]

    public init(shadows: [String: ShadowSummary] = [:], guards: [String: GuardReading] = [:], readouts: [String: ABReadout] = [:]) {
        self.shadows = shadows
        self.guards = guards
        self.readouts = readouts
    }

    public static let none = Evidence()

    static func key(_ model: String, _ version: Int) -> String { "\(model)@\(version)" }
}

extension DesiredState {
    /// True when a plan of this revision decides on online evidence (shadow evidence, rollback
    /// guards), which moves without the registry's generation.
    public var decidesOnEvidence: Bool {
        manifests.models.contains { $0.approval.shadowEvidence != nil } || manifests.servingTargets.contains { $0.rollbackGuard != nil }
            || manifests.families.contains { $0.ladder.contains { $0.shadowEvidence != nil } }
    }
}

/// Which evidence a plan needs (`Planner.evidenceNeeded`).
public struct EvidenceRequest: Sendable, Equatable {
    /// Versions whose shadow answers are summarised.
    public var shadowVersions: [LiveRoute]
    /// Targets whose rollback guard is judged.
    public var guardTargets: [String]
    /// Targets whose live split's readout a change touches.
    public var readoutTargets: [String]

    public init(shadowVersions: [LiveRoute] = [], guardTargets: [String] = [], readoutTargets: [String] = []) {
        self.shadowVersions = shadowVersions
        self.guardTargets = guardTargets
        self.readoutTargets = readoutTargets
    }

    public var isEmpty: Bool { shadowVersions.isEmpty && guardTargets.isEmpty && readoutTargets.isEmpty }
}

/// What a rollback guard judges: each route the target's last promotion from git changed, against
/// the route it replaced, on this target.
public struct GuardReading: Sendable, Equatable, Codable {
    /// One version's requests since (or, for the one replaced, before) the promotion.
    public struct Side: Sendable, Equatable, Codable {
        public var model: String
        public var version: Int
        public var requests: Int
        public var rewardPerRequest: Double
        public var p95LatencyMicros: Int

        public init(model: String, version: Int, requests: Int, rewardPerRequest: Double, p95LatencyMicros: Int) {
            self.model = model
            self.version = version
            self.requests = requests
            self.rewardPerRequest = rewardPerRequest
            self.p95LatencyMicros = p95LatencyMicros
        }
    }

    /// A changed route and what it replaced.
    public struct Comparison: Sendable, Equatable, Codable {
        public var current: Side
        public var previous: Side?

        public init(current: Side, previous: Side?) {
            self.current = current
            self.previous = previous
        }
    }

    /// The routes before the last promotion from git: what a trip returns the target to.
    public var previousRoutes: [LiveRoute]
    /// Unix seconds.
    public var promotedAt: Int64
    public var comparisons: [Comparison]

    public init(previousRoutes: [LiveRoute], promotedAt: Int64, comparisons: [Comparison]) {
        self.previousRoutes = previousRoutes
        self.promotedAt = promotedAt
        self.comparisons = comparisons
    }
}

/// The evidence rules: pure judgements the planner calls.
public enum EvidenceRules {
    /// Nil when `summary` meets `requirement`; otherwise what is missing, in words.
    public static func unmet(_ requirement: ShadowEvidenceRequirement, _ summary: ShadowSummary?) -> String? {
        guard let s = summary, s.requests > 0 else {
            return "no shadow answers traced yet (needs \(requirement.minRequests)): put it on a target's `shadow:` with its version number"
        }
        var missing: [String] = []
        if s.requests < requirement.minRequests { missing.append("\(s.requests) of \(requirement.minRequests) traced requests") }
        if let min = requirement.minOverlap, s.meanOverlap < min {
            missing.append("mean overlap@k \(format(s.meanOverlap)) < \(format(min))")
        }
        if let min = requirement.minRankCorrelation, (s.meanRankCorrelation ?? -1) < min {
            missing.append("mean rank correlation \(s.meanRankCorrelation.map(format) ?? "-") < \(format(min))")
        }
        if let max = requirement.maxLatencyP95Ms, Double(s.p95LatencyMicros) / 1000 > max {
            missing.append("p95 latency \(format(Double(s.p95LatencyMicros) / 1000)) ms > \(format(max)) ms")
        }
        return missing.isEmpty ? nil : missing.joined(separator: "; ")
    }

    /// What the evidence shows, for reasons and audit rows.
    public static func describe(_ s: ShadowSummary) -> String {
        "\(s.requests) traced requests, mean overlap@k \(format(s.meanOverlap)), rank correlation \(s.meanRankCorrelation.map(format) ?? "-"), "
            + "p95 \(format(Double(s.p95LatencyMicros) / 1000)) ms"
    }

    /// Why the guard trips, or nil while it holds (or has too few requests to judge).
    public static func trip(_ rule: RollbackGuard, _ reading: GuardReading) -> String? {
        for c in reading.comparisons where c.current.requests >= rule.minRequests {
            let name = "\(c.current.model) v\(c.current.version)"
            if let max = rule.maxLatencyP95Ms, Double(c.current.p95LatencyMicros) / 1000 > max {
                return "\(name) served p95 \(format(Double(c.current.p95LatencyMicros) / 1000)) ms > \(format(max)) ms over \(c.current.requests) requests"
            }
            if let drop = rule.maxRewardDrop, let previous = c.previous, previous.requests >= rule.minRequests,
               c.current.rewardPerRequest < previous.rewardPerRequest - drop {
                return "\(name) reward \(format(c.current.rewardPerRequest))/request over \(c.current.requests) requests fell more than "
                    + "\(format(drop)) below \(previous.model) v\(previous.version)'s \(format(previous.rewardPerRequest)) over \(previous.requests)"
            }
        }
        return nil
    }

    static func format(_ x: Double) -> String { String(format: "%.4g", x) }
}
