/// The four kinds of document an operator commits.
public enum ManifestKind: String, Sendable, Codable, CaseIterable, Comparable {
    case outcomeWeights = "OutcomeWeights"
    case template = "Template"
    case model = "Model"
    case servingTarget = "ServingTarget"

    /// Apply order: weights before the templates that use them, templates before models,
    /// models before the targets that route to them.
    public var order: Int {
        switch self {
        case .outcomeWeights: 0
        case .template: 1
        case .model: 2
        case .servingTarget: 3
        }
    }

    public static func < (a: ManifestKind, b: ManifestKind) -> Bool { a.order < b.order }
}

/// `Kind/name`: how a document is named in diagnostics, plans and audit rows. Encoded as that
/// text (a wire format: plans and the audit history hold it).
public struct ManifestAddress: Sendable, Hashable, Comparable, WireText {
    public var kind: ManifestKind
    public var name: String

    public init(_ kind: ManifestKind, _ name: String) {
        self.kind = kind
        self.name = name
    }

    /// `Kind/name`; nil when the kind is not one of the four.
    public init?(parsing text: String) {
        guard let slash = text.firstIndex(of: "/"), let kind = ManifestKind(rawValue: String(text[..<slash])) else { return nil }
        self.init(kind, String(text[text.index(after: slash)...]))
    }

    public var description: String { "\(kind.rawValue)/\(name)" }

    public static func < (a: ManifestAddress, b: ManifestAddress) -> Bool {
        (a.kind.order, a.name) < (b.kind.order, b.name)
    }
}

/// `metadata` of every document, plus where the document was read from.
///
/// `source` is provenance, not desired state: equality, hashing and coding ignore it, so a
/// manifest moved to another file or line is not a change.
public struct ManifestMetadata: Sendable, Hashable, Codable {
    public var name: String
    public var labels: [String: String]
    public var annotations: [String: String]
    /// Where the document starts; not part of the desired state, only of its provenance.
    public var source: SourceLocation

    public init(name: String, labels: [String: String] = [:], annotations: [String: String] = [:], source: SourceLocation) {
        self.name = name
        self.labels = labels
        self.annotations = annotations
        self.source = source
    }

    enum CodingKeys: String, CodingKey { case name, labels, annotations }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        annotations = try c.decodeIfPresent([String: String].self, forKey: .annotations) ?? [:]
        source = SourceLocation(file: "", line: 0, column: 0)
    }

    public static func == (a: ManifestMetadata, b: ManifestMetadata) -> Bool {
        a.name == b.name && a.labels == b.labels && a.annotations == b.annotations
    }

    public func hash(into h: inout Hasher) {
        h.combine(name)
        h.combine(labels)
        h.combine(annotations)
    }
}

/// `kind: OutcomeWeights`: how much each interaction event counts when a template trains.
public struct OutcomeWeights: Sendable, Hashable, Codable {
    public var metadata: ManifestMetadata
    /// Event type → signed weight in [-10, 10].
    public var weights: [String: Double]

    public init(metadata: ManifestMetadata, weights: [String: Double]) {
        self.metadata = metadata
        self.weights = weights
    }
}

/// `kind: Template`: how to train: the dataset, the trainer (builtin or exec), the weights and the evaluation.
public struct Template: Sendable, Hashable, Codable {
    /// Where the interactions come from: a file in the repository, or a `file://` URI under an allowed root.
    public enum Dataset: Sendable, Hashable, Codable {
        /// A file in the repository, relative to the manifest root.
        case path(String)
        /// A file outside git, fingerprinted by content when a run starts.
        case uri(String)
    }

    /// A builtin algorithm, or a command run as an isolated child process.
    public enum Trainer: Sendable, Hashable, Codable {
        case builtin(algorithm: BuiltinAlgorithm, params: [String: JSONValue])
        case exec(command: [String], timeout: ManifestDuration?, env: [String: String], params: [String: JSONValue])
    }

    /// The algorithms Cairn trains itself.
    public enum BuiltinAlgorithm: String, Sendable, Hashable, Codable, CaseIterable {
        case popularity
        case itemKNN = "item-knn"
    }

    /// The holdout and the metrics a run reports.
    public struct Evaluation: Sendable, Hashable, Codable {
        public var holdout: Double
        public var metrics: [String]
        public var seed: Int

        public init(holdout: Double, metrics: [String], seed: Int) {
            self.holdout = holdout
            self.metrics = metrics
            self.seed = seed
        }
    }

    public var metadata: ManifestMetadata
    public var displayName: String?
    public var events: [String]
    public var outcomeWeights: String
    public var dataset: Dataset
    public var trainer: Trainer
    public var evaluation: Evaluation

    public init(metadata: ManifestMetadata, displayName: String?, events: [String], outcomeWeights: String,
                dataset: Dataset, trainer: Trainer, evaluation: Evaluation) {
        self.metadata = metadata
        self.displayName = displayName
        self.events = events
        self.outcomeWeights = outcomeWeights
        self.dataset = dataset
        self.trainer = trainer
        self.evaluation = evaluation
    }
}

/// `kind: Model`: a registered model: its template, lifecycle, registry family and stage, learning
/// cadence, approval policy and the decisions made in git.
public struct Model: Sendable, Hashable, Codable {
    /// draft (never trained), active, or archived.
    public enum Lifecycle: String, Sendable, Hashable, Codable, CaseIterable {
        case draft, active, archived
    }

    /// The model's place in its family: one champion, challengers, shadows.
    public enum Stage: String, Sendable, Hashable, Codable, CaseIterable {
        case none, shadow, challenger, champion
    }

    /// Whether the model retrains on a schedule.
    public enum LearningMode: String, Sendable, Hashable, Codable, CaseIterable {
        case none, scheduled
    }

    /// The learning cadence (`every: 24h` under `mode: scheduled`).
    public struct Learning: Sendable, Hashable, Codable {
        public var mode: LearningMode
        public var every: ManifestDuration?

        public init(mode: LearningMode = .none, every: ManifestDuration? = nil) {
            self.mode = mode
            self.every = every
        }
    }

    /// manual (decided in git) or gated (decided by the gates when a version is recorded).
    public enum ApprovalMode: String, Sendable, Hashable, Codable, CaseIterable {
        case manual, gated
    }

    /// A metric threshold a version must pass. `maxRegression` compares with the best
    /// approved version so far.
    public struct Gate: Sendable, Hashable, Codable {
        public var metric: String
        public var min: Double?
        public var max: Double?
        public var maxRegression: Double?

        public init(metric: String, min: Double? = nil, max: Double? = nil, maxRegression: Double? = nil) {
            self.metric = metric
            self.min = min
            self.max = max
            self.maxRegression = maxRegression
        }
    }

    /// The approval policy: its mode and gates.
    public struct Approval: Sendable, Hashable, Codable {
        public var mode: ApprovalMode
        public var gates: [Gate]

        public init(mode: ApprovalMode = .manual, gates: [Gate] = []) {
            self.mode = mode
            self.gates = gates
        }
    }

    /// Versions approved or rejected by a reviewed commit.
    public struct Decisions: Sendable, Hashable, Codable {
        public var approve: [Int]
        public var reject: [Int]

        public init(approve: [Int] = [], reject: [Int] = []) {
            self.approve = approve
            self.reject = reject
        }
    }

    /// A trained version's human label and description, set in git beside the decisions
    /// (`versionLabels: [{version: 2, label: winter-catalogue, description: …}]`).
    public struct VersionLabel: Sendable, Hashable, Codable {
        public var version: Int
        public var label: String?
        public var description: String?

        public init(version: Int, label: String? = nil, description: String? = nil) {
            self.version = version
            self.label = label
            self.description = description
        }
    }

    public var metadata: ManifestMetadata
    public var template: String
    public var lifecycle: Lifecycle
    public var family: String?
    public var stage: Stage
    public var label: String?
    public var description: String?
    public var traits: [String]
    public var learning: Learning
    public var retrainToken: String?
    public var approval: Approval
    public var decisions: Decisions
    /// Sorted by version; nil when none (so specs stored before labels existed compare equal).
    public var versionLabels: [VersionLabel]?

    /// `versionLabels` by version number (the decoder refuses a number listed twice).
    public var labelsByVersion: [Int: VersionLabel] {
        Dictionary((versionLabels ?? []).map { ($0.version, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public init(metadata: ManifestMetadata, template: String, lifecycle: Lifecycle = .draft, family: String? = nil,
                stage: Stage = .none, label: String? = nil, description: String? = nil, traits: [String] = [],
                learning: Learning = Learning(), retrainToken: String? = nil, approval: Approval = Approval(),
                decisions: Decisions = Decisions(), versionLabels: [VersionLabel]? = nil) {
        self.versionLabels = versionLabels.flatMap { $0.isEmpty ? nil : $0.sorted { $0.version < $1.version } }
        self.metadata = metadata
        self.template = template
        self.lifecycle = lifecycle
        self.family = family
        self.stage = stage
        self.label = label
        self.description = description
        self.traits = traits
        self.learning = learning
        self.retrainToken = retrainToken
        self.approval = approval
        self.decisions = decisions
    }
}

/// `kind: ServingTarget`: what is live for one tenant and surface: routes with traffic shares, and shadows.
public struct ServingTarget: Sendable, Hashable, Codable {
    /// Which version a route asks for.
    public enum VersionSelector: Sendable, Hashable, Codable, CustomStringConvertible {
        case number(Int)
        case latestApproved
        case champion

        public var description: String {
            switch self {
            case let .number(n): "v\(n)"
            case .latestApproved: "latest-approved"
            case .champion: "champion"
            }
        }
    }

    /// A model by name, or (with `version: champion`) a family's champion.
    public enum RouteSubject: Sendable, Hashable, Codable, CustomStringConvertible {
        case model(String)
        case family(String)

        public var description: String {
            switch self {
            case let .model(m): m
            case let .family(f): "family \(f)"
            }
        }
    }

    /// A model (or a family's champion), the version it asks for and its share of traffic.
    public struct Route: Sendable, Hashable, Codable {
        public var subject: RouteSubject
        public var version: VersionSelector
        /// Percent of traffic, 0...100; routes of one target sum to 100.
        public var weight: Int
        public var source: SourceLocation

        public init(subject: RouteSubject, version: VersionSelector, weight: Int, source: SourceLocation) {
            self.subject = subject
            self.version = version
            self.weight = weight
            self.source = source
        }

        enum CodingKeys: String, CodingKey { case subject, version, weight }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            subject = try c.decode(RouteSubject.self, forKey: .subject)
            version = try c.decode(VersionSelector.self, forKey: .version)
            weight = try c.decode(Int.self, forKey: .weight)
            source = SourceLocation(file: "", line: 0, column: 0)
        }

        // Provenance is not state (see ManifestMetadata).
        public static func == (a: Route, b: Route) -> Bool {
            a.subject == b.subject && a.version == b.version && a.weight == b.weight
        }

        public func hash(into h: inout Hasher) {
            h.combine(subject)
            h.combine(version)
            h.combine(weight)
        }
    }

    public var metadata: ManifestMetadata
    public var tenant: String
    public var surface: String
    public var routes: [Route]
    /// Scored and recorded, never served; weights are not used.
    public var shadow: [Route]

    public init(metadata: ManifestMetadata, tenant: String, surface: String, routes: [Route], shadow: [Route] = []) {
        self.metadata = metadata
        self.tenant = tenant
        self.surface = surface
        self.routes = routes
        self.shadow = shadow
    }
}

/// Every document of one revision, by kind, each kind sorted by name.
public struct ManifestSet: Sendable, Hashable, Codable {
    public var outcomeWeights: [OutcomeWeights]
    public var templates: [Template]
    public var models: [Model]
    public var servingTargets: [ServingTarget]

    public init(outcomeWeights: [OutcomeWeights] = [], templates: [Template] = [], models: [Model] = [],
                servingTargets: [ServingTarget] = []) {
        self.outcomeWeights = outcomeWeights.sorted { $0.metadata.name < $1.metadata.name }
        self.templates = templates.sorted { $0.metadata.name < $1.metadata.name }
        self.models = models.sorted { $0.metadata.name < $1.metadata.name }
        self.servingTargets = servingTargets.sorted { $0.metadata.name < $1.metadata.name }
    }

    public var count: Int { outcomeWeights.count + templates.count + models.count + servingTargets.count }
}
