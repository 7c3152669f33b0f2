/// The registry database as the planner sees it: what has been applied, trained and served.
public struct ObservedState: Sendable, Codable, Equatable {
    /// Bumped by every change to the observed state; saved plans record it to detect staleness.
    public var generation: Int
    public var lastAppliedRevision: String?
    public var suspended: Bool
    public var weights: [String: ObservedWeights]
    public var templates: [String: ObservedTemplate]
    public var models: [String: ObservedModel]
    public var targets: [String: ObservedTarget]
    /// Training runs that matter for planning: every queued or running run, and each model's
    /// latest runs per fingerprint.
    public var runs: [TrainingRun]

    public init(generation: Int = 0, lastAppliedRevision: String? = nil, suspended: Bool = false,
                weights: [String: ObservedWeights] = [:], templates: [String: ObservedTemplate] = [:],
                models: [String: ObservedModel] = [:], targets: [String: ObservedTarget] = [:], runs: [TrainingRun] = []) {
        self.generation = generation
        self.lastAppliedRevision = lastAppliedRevision
        self.suspended = suspended
        self.weights = weights
        self.templates = templates
        self.models = models
        self.targets = targets
        self.runs = runs
    }

    public static let empty = ObservedState()
}

/// Outcome weights as last applied.
public struct ObservedWeights: Sendable, Codable, Equatable {
    public var spec: OutcomeWeights
    public var archived: Bool

    public init(spec: OutcomeWeights, archived: Bool = false) {
        self.spec = spec
        self.archived = archived
    }
}

/// A template as last applied.
public struct ObservedTemplate: Sendable, Codable, Equatable {
    public var spec: Template
    public var archived: Bool

    public init(spec: Template, archived: Bool = false) {
        self.spec = spec
        self.archived = archived
    }
}

/// A model as last applied, with its recorded stage and its versions.
public struct ObservedModel: Sendable, Codable, Equatable {
    /// The definition as last applied.
    public var spec: Model
    /// The registry stage as recorded (a demote can move it without a manifest change).
    public var stage: Model.Stage
    /// When a version of this model first became approved (the model first `ready`); after
    /// that, traits are frozen.
    public var firstReadyAt: Int64?
    public var versions: [ModelVersion]
    /// Traits measured by discovery while it was a draft (declared traits are in `spec.traits`).
    public var discovered: DiscoveredTraits?

    public init(spec: Model, stage: Model.Stage? = nil, firstReadyAt: Int64? = nil, versions: [ModelVersion] = [], discovered: DiscoveredTraits? = nil) {
        self.discovered = discovered
        self.spec = spec
        self.stage = stage ?? spec.stage
        self.firstReadyAt = firstReadyAt
        self.versions = Self.labelled(versions, by: spec)
    }

    /// `versions` with the label and description the applied spec gives each (git owns them:
    /// a version the spec does not list has none).
    public static func labelled(_ versions: [ModelVersion], by spec: Model) -> [ModelVersion] {
        let labels = spec.labelsByVersion
        return versions.map { v in
            var v = v
            v.label = labels[v.number]?.label
            v.description = labels[v.number]?.description
            return v
        }
    }

    public var archived: Bool { spec.lifecycle == .archived }

    public func version(_ number: Int) -> ModelVersion? { versions.first { $0.number == number } }

    public var latestApproved: ModelVersion? { versions.filter { $0.status == .approved }.max { $0.number < $1.number } }
}

/// A trained version: immutable identity, plus a decision that may change.
public struct ModelVersion: Sendable, Codable, Equatable {
    /// pending until decided; approved versions may be served.
    public enum Status: String, Sendable, Codable, CaseIterable {
        case pending, approved, rejected
    }

    public var model: String
    public var number: Int
    public var systemName: String
    public var status: Status
    public var statusReason: String?
    public var metrics: [String: Double]
    public var fingerprint: String
    public var fingerprintInputs: FingerprintInputs
    public var datasetHash: String
    public var commit: String
    public var trainerVersion: String
    public var runID: Int
    public var createdAt: Int64
    public var label: String?
    public var description: String?
    public var artifactHash: String?
    public var artifactSignature: String?
    /// What it was trained on (versions trained before Cairn recorded it have none).
    public var learned: LearnedFrom?
    /// The tuning run it came from: every trial and the chosen one (untuned versions have none).
    public var tuning: TuningResult?

    public init(model: String, number: Int, systemName: String, status: Status, statusReason: String? = nil,
                metrics: [String: Double], fingerprint: String, fingerprintInputs: FingerprintInputs, datasetHash: String,
                commit: String, trainerVersion: String, runID: Int, createdAt: Int64, label: String? = nil,
                description: String? = nil, artifactHash: String? = nil, artifactSignature: String? = nil, learned: LearnedFrom? = nil,
                tuning: TuningResult? = nil) {
        self.learned = learned
        self.tuning = tuning
        self.model = model
        self.number = number
        self.systemName = systemName
        self.status = status
        self.statusReason = statusReason
        self.metrics = metrics
        self.fingerprint = fingerprint
        self.fingerprintInputs = fingerprintInputs
        self.datasetHash = datasetHash
        self.commit = commit
        self.trainerVersion = trainerVersion
        self.runID = runID
        self.createdAt = createdAt
        self.label = label
        self.description = description
        self.artifactHash = artifactHash
        self.artifactSignature = artifactSignature
    }
}

/// What a version was trained on: the rows of its dataset snapshot, of them the outcome samples
/// received through feedback, and the last feedback id included (the snapshot is the dataset at
/// the commit plus every sample of the template up to that id).
public struct LearnedFrom: Sendable, Codable, Equatable {
    public var samples: Int
    public var feedbackSamples: Int
    public var feedbackThrough: Int

    public init(samples: Int, feedbackSamples: Int, feedbackThrough: Int) {
        self.samples = samples
        self.feedbackSamples = feedbackSamples
        self.feedbackThrough = feedbackThrough
    }
}

/// A training run in the queue or its recent history.
public struct TrainingRun: Sendable, Codable, Equatable {
    /// Where the run is; queued and running are active.
    public enum State: String, Sendable, Codable, CaseIterable {
        case queued, running, succeeded, failed, cancelled

        public var isActive: Bool { self == .queued || self == .running }
    }

    public var id: Int
    public var model: String
    public var fingerprint: String
    public var state: State
    public var reason: String?
    public var createdAt: Int64
    public var finishedAt: Int64?
    /// The version this run created, when it succeeded.
    public var version: Int?

    public init(id: Int, model: String, fingerprint: String, state: State, reason: String? = nil, createdAt: Int64,
                finishedAt: Int64? = nil, version: Int? = nil) {
        self.id = id
        self.model = model
        self.fingerprint = fingerprint
        self.state = state
        self.reason = reason
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.version = version
    }
}

/// One live route of a serving target: a concrete version and its traffic share.
public struct LiveRoute: Sendable, Codable, Hashable, Comparable, CustomStringConvertible {
    public var model: String
    public var version: Int
    public var weight: Int

    public init(model: String, version: Int, weight: Int) {
        self.model = model
        self.version = version
        self.weight = weight
    }

    public static func < (a: LiveRoute, b: LiveRoute) -> Bool { (a.model, a.version) < (b.model, b.version) }

    public var description: String { "\(model) v\(version)" }
}

/// A serving target as it is live: concrete versions, shares and shadows.
public struct ObservedTarget: Sendable, Codable, Equatable {
    public var name: String
    public var tenant: String
    public var surface: String
    public var routes: [LiveRoute]
    public var shadow: [LiveRoute]
    /// False once the manifest was removed (the target is unassigned, its history kept).
    public var assigned: Bool
    /// Set when the live routes were last changed outside git (`cairn rollback`).
    public var drift: DriftRecord?

    public init(name: String, tenant: String, surface: String, routes: [LiveRoute], shadow: [LiveRoute] = [],
                assigned: Bool = true, drift: DriftRecord? = nil) {
        self.name = name
        self.tenant = tenant
        self.surface = surface
        self.routes = routes
        self.shadow = shadow
        self.assigned = assigned
        self.drift = drift
    }
}

/// Who changed a target outside git, when and how.
public struct DriftRecord: Sendable, Codable, Equatable {
    public var actor: String
    public var at: Int64
    public var how: String
    /// For a rollback guard's trip: the routes it took off the air. While git still declares
    /// them, the target stays where the guard put it (shown as drift); a commit decides.
    public var guarded: [LiveRoute]?

    public init(actor: String, at: Int64, how: String, guarded: [LiveRoute]? = nil) {
        self.actor = actor
        self.at = at
        self.how = how
        self.guarded = guarded
    }
}
