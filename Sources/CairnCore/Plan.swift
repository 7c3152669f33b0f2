/// What a plan may do. Raw values are the stable wire names (never renamed).
public enum Action: String, Sendable, Codable, CaseIterable {
    case create, update, stage, train, approve, reject, promote, demote, archive
    /// Traits measured from a draft model's data and recorded on it.
    case discover
    /// A version or a model removed for good.
    case delete

    /// The symbol used in text plans.
    public var symbol: String {
        switch self {
        case .create: "+"
        case .update: "~"
        case .stage: "⇄"
        case .train: "»"
        case .approve: "✓"
        case .reject: "✗"
        case .promote: "⇡"
        case .demote: "⇣"
        case .archive: "-"
        case .discover: "◎"
        case .delete: "✖"
        }
    }

    /// Apply order: weights → templates → models (create/update/stage) → train →
    /// approve/reject → promote/demote → archive.
    public var phase: Int {
        switch self {
        case .create, .update, .stage, .discover: 0
        case .train: 1
        case .approve, .reject: 2
        case .promote, .demote: 3
        case .archive, .delete: 4
        }
    }
}

/// One planned change. `after` is the payload apply works from; `before` and `reason` explain it.
public struct Change: Sendable, Codable, Equatable {
    public var action: Action
    /// `Kind/name`.
    public var address: ManifestAddress
    /// The version a change is about (train: the number it will get is not known; approve/reject: the version).
    public var version: Int?
    public var before: JSONValue?
    public var after: JSONValue?
    public var reason: String
    /// The manifest file the change comes from, for the audit history.
    public var file: String?
    /// Another change this one is applied together with, in one transaction (a demote goes
    /// with the promotion of the new champion).
    public var appliedWith: ManifestAddress?

    public init(action: Action, address: ManifestAddress, version: Int? = nil, before: JSONValue? = nil, after: JSONValue? = nil,
                reason: String, file: String? = nil, appliedWith: ManifestAddress? = nil) {
        self.action = action
        self.address = address
        self.version = version
        self.before = before
        self.after = after
        self.reason = reason
        self.file = file
        self.appliedWith = appliedWith
    }

    public var kind: ManifestKind { address.kind }
    public var name: String { address.name }
}

/// A change that cannot happen yet, or is refused; the reason says why.
public struct BlockedChange: Sendable, Codable, Equatable {
    /// What would have happened.
    public var action: Action
    public var address: ManifestAddress
    public var version: Int?
    public var reason: String

    public init(action: Action, address: ManifestAddress, version: Int? = nil, reason: String) {
        self.action = action
        self.address = address
        self.version = version
        self.reason = reason
    }
}

/// Something the plan could have done and deliberately does not, with why (a scheduled run with
/// nothing new to learn). Not blocked: nothing is wrong, and nothing waits.
public struct SkippedChange: Sendable, Codable, Equatable {
    public var action: Action
    public var address: ManifestAddress
    public var reason: String

    public init(action: Action, address: ManifestAddress, reason: String) {
        self.action = action
        self.address = address
        self.reason = reason
    }
}

/// A difference made outside git (a break-glass rollback), shown with who and when.
public struct DriftItem: Sendable, Codable, Equatable {
    public var address: ManifestAddress
    public var live: String
    public var declared: String
    public var actor: String
    public var at: Int64
    public var how: String

    public init(address: ManifestAddress, live: String, declared: String, actor: String, at: Int64, how: String) {
        self.address = address
        self.live = live
        self.declared = declared
        self.actor = actor
        self.at = at
        self.how = how
    }
}

/// The plan: data that can be printed, saved and applied later.
public struct Plan: Sendable, Codable, Equatable {
    public var formatVersion: String
    /// Full 40-hex commit id of the desired revision.
    public var revision: String
    /// The revision as the user named it (`main`, `HEAD~1`).
    public var revisionName: String
    public var manifestRoot: String
    public var manifestCount: Int
    /// The observed-state generation the plan was made against.
    public var observedGeneration: Int
    public var lastAppliedRevision: String?
    public var changes: [Change]
    public var blocked: [BlockedChange]
    public var drift: [DriftItem]
    /// Candidate metrics beside the live version, for pull-request comments.
    public var candidates: [Candidate]
    /// What the plan deliberately does not do, and why (in the JSON only when there is some).
    public var skipped: [SkippedChange]
    /// True when there was no registry to plan against (every object would be created); in the
    /// JSON only when true. Not compared by `firstDifference`: it describes where the plan was made.
    public var registryMissing = false
    /// The A/B readouts of live splits this plan's promotions change (in the JSON only when there are some).
    public var readouts: [ABReadout] = []
    /// Why this commit would not be applied under the signature policy (a preview of an
    /// unsigned pull-request commit); in the JSON only when set.
    public var untrusted: String?

    public init(revision: String, revisionName: String, manifestRoot: String, manifestCount: Int, observedGeneration: Int,
                lastAppliedRevision: String?, changes: [Change], blocked: [BlockedChange], drift: [DriftItem],
                candidates: [Candidate] = [], skipped: [SkippedChange] = []) {
        self.formatVersion = "1"
        self.revision = revision
        self.revisionName = revisionName
        self.manifestRoot = manifestRoot
        self.manifestCount = manifestCount
        self.observedGeneration = observedGeneration
        self.lastAppliedRevision = lastAppliedRevision
        self.changes = changes
        self.blocked = blocked
        self.drift = drift
        self.candidates = candidates
        self.skipped = skipped
    }

    public var isEmpty: Bool { changes.isEmpty }

    /// Count per action name, plus `blocked`, always with every key (stable JSON).
    public var summary: [String: Int] {
        var out = Dictionary(uniqueKeysWithValues: Action.allCases.map { ($0.rawValue, 0) })
        for c in changes { out[c.action.rawValue, default: 0] += 1 }
        out["blocked"] = blocked.count
        out["drift"] = drift.count
        return out
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion, revision, revisionName, manifestRoot, manifestCount, observedGeneration, lastAppliedRevision
        case changes, blocked, drift, candidates, skipped, registryMissing, readouts, untrusted, summary
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(formatVersion, forKey: .formatVersion)
        try c.encode(revision, forKey: .revision)
        try c.encode(revisionName, forKey: .revisionName)
        try c.encode(manifestRoot, forKey: .manifestRoot)
        try c.encode(manifestCount, forKey: .manifestCount)
        try c.encode(observedGeneration, forKey: .observedGeneration)
        try c.encode(lastAppliedRevision, forKey: .lastAppliedRevision)
        try c.encode(changes, forKey: .changes)
        try c.encode(blocked, forKey: .blocked)
        try c.encode(drift, forKey: .drift)
        try c.encode(candidates, forKey: .candidates)
        if !skipped.isEmpty { try c.encode(skipped, forKey: .skipped) }
        if registryMissing { try c.encode(true, forKey: .registryMissing) }
        if !readouts.isEmpty { try c.encode(readouts, forKey: .readouts) }
        if let untrusted { try c.encode(untrusted, forKey: .untrusted) }
        try c.encode(summary, forKey: .summary)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        formatVersion = try c.decode(String.self, forKey: .formatVersion)
        revision = try c.decode(String.self, forKey: .revision)
        revisionName = try c.decode(String.self, forKey: .revisionName)
        manifestRoot = try c.decode(String.self, forKey: .manifestRoot)
        manifestCount = try c.decode(Int.self, forKey: .manifestCount)
        observedGeneration = try c.decode(Int.self, forKey: .observedGeneration)
        lastAppliedRevision = try c.decodeIfPresent(String.self, forKey: .lastAppliedRevision)
        changes = try c.decode([Change].self, forKey: .changes)
        blocked = try c.decode([BlockedChange].self, forKey: .blocked)
        drift = try c.decode([DriftItem].self, forKey: .drift)
        candidates = try c.decodeIfPresent([Candidate].self, forKey: .candidates) ?? []
        skipped = try c.decodeIfPresent([SkippedChange].self, forKey: .skipped) ?? []
        registryMissing = try c.decodeIfPresent(Bool.self, forKey: .registryMissing) ?? false
        readouts = try c.decodeIfPresent([ABReadout].self, forKey: .readouts) ?? []
        untrusted = try c.decodeIfPresent(String.self, forKey: .untrusted)
    }
}

/// A version a plan would approve, promote or shadow, with its metrics beside what is live where
/// it goes: on a target, the same model's live route, else the target's heaviest live route (a
/// champion swap compares the new champion with the old one); for an approval, the model's
/// latest approved version. Metrics are higher-is-better, as the approval gates treat them
/// (`maxRegression`): a candidate below the live value on a metric is a regression.
public struct Candidate: Sendable, Codable, Equatable {
    public var target: String?
    public var model: String
    public var version: Int
    public var metrics: [String: Double]
    /// The version's label as this revision sets it.
    public var label: String?
    /// True for a shadow (scored beside the live routes, never served); nil otherwise.
    public var shadow: Bool?
    /// What it is compared with; nil when nothing is live there yet.
    public var liveModel: String?
    public var liveVersion: Int?
    public var liveMetrics: [String: Double]?
    /// Candidate minus live, for each metric both have (to nine decimal places).
    public var deltas: [String: Double]?
    /// Metrics on which the candidate is below the live version, sorted.
    public var regressions: [String]?

    public init(target: String?, model: String, version: Int, metrics: [String: Double], label: String? = nil, shadow: Bool = false,
                live: (model: String, version: Int, metrics: [String: Double])?) {
        self.target = target
        self.model = model
        self.version = version
        self.metrics = metrics
        self.label = label
        self.shadow = shadow ? true : nil
        self.liveModel = live?.model
        self.liveVersion = live?.version
        self.liveMetrics = live?.metrics
        if let live {
            var deltas: [String: Double] = [:]
            for (metric, value) in metrics {
                if let old = live.metrics[metric] { deltas[metric] = ((value - old) * 1e9).rounded() / 1e9 }  // no 0.04999999999999999
            }
            self.deltas = deltas
            self.regressions = deltas.filter { $0.value < 0 }.keys.sorted()
        }
    }
}
