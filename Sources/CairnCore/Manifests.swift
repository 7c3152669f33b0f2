/// The four kinds of document an operator commits.
public enum ManifestKind: String, Sendable, Codable, CaseIterable, Comparable {
    case outcomeWeights = "OutcomeWeights"
    case template = "Template"
    case model = "Model"
    case servingTarget = "ServingTarget"
    /// Policy only: read with each revision, never stored, never a change of its own.
    case modelFamily = "ModelFamily"

    /// Apply order: weights before the templates that use them, templates before models,
    /// models before the targets that route to them.
    public var order: Int {
        switch self {
        case .outcomeWeights: 0
        case .template: 1
        case .model: 2
        case .servingTarget: 3
        case .modelFamily: 4
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

    /// A builtin algorithm, a command run as an isolated child process, or a batch job handed to Slurm.
    public enum Trainer: Sendable, Hashable, Codable {
        case builtin(algorithm: BuiltinAlgorithm, params: [String: JSONValue])
        case exec(command: [String], timeout: ManifestDuration?, env: [String: String], params: [String: JSONValue])
        case slurm(job: SlurmJob)
    }

    /// `trainer: {kind: slurm, …}`: what the batch job runs and what it asks the cluster for.
    /// The job follows the same contract as an exec trainer (docs/trainers.md).
    public struct SlurmJob: Sendable, Hashable, Codable {
        /// The program and its arguments, run from the manifest folder of the snapshot.
        public var command: [String]?
        /// Or a shell script in the repository (relative to the manifest folder), run with bash.
        public var script: String?
        public var partition: String?
        public var account: String?
        /// The job's time limit (`--time`, whole minutes, rounded up); 1 h when not given.
        public var timeout: ManifestDuration?
        public var gpus: Int?
        public var cpus: Int?
        /// `--mem`: a number with an optional K, M, G or T suffix.
        public var memory: String?
        /// Further `sbatch` options from the allow-list (`SlurmJob.allowedOptions`), without the
        /// leading `--`; a flag is given as `true`.
        public var options: [String: String]
        public var env: [String: String]
        public var params: [String: JSONValue]

        public init(command: [String]? = nil, script: String? = nil, partition: String? = nil, account: String? = nil,
                    timeout: ManifestDuration? = nil, gpus: Int? = nil, cpus: Int? = nil, memory: String? = nil,
                    options: [String: String] = [:], env: [String: String] = [:], params: [String: JSONValue] = [:]) {
            self.command = command
            self.script = script
            self.partition = partition
            self.account = account
            self.timeout = timeout
            self.gpus = gpus
            self.cpus = cpus
            self.memory = memory
            self.options = options
            self.env = env
            self.params = params
        }

        /// `sbatch` options a template may add, and what each takes. Everything else is either
        /// set by Cairn (output, working folder, environment, user, job name, time) or has its
        /// own field (partition, account, resources), or is not passed at all.
        public enum OptionValue: Sendable { case text, integer, flag }
        public static let allowedOptions: [String: OptionValue] = [
            "qos": .text, "constraint": .text, "reservation": .text, "nodelist": .text, "exclude": .text, "gres": .text,
            "gpus-per-node": .text, "cpus-per-gpu": .integer, "mem-per-gpu": .text, "licenses": .text, "comment": .text,
            "nice": .integer, "exclusive": .flag, "nodes": .integer, "ntasks": .integer, "ntasks-per-node": .integer, "hint": .text,
        ]
        /// Options Cairn refuses with a reason of their own.
        public static let ownedOptions: [String: String] = [
            "output": "Cairn sets it: the job's output goes to the run folder and into `cairn logs`",
            "error": "Cairn sets it: the job's output goes to the run folder and into `cairn logs`",
            "input": "the job reads no standard input",
            "chdir": "Cairn sets it: the job runs from the manifest folder of the run's snapshot",
            "export": "Cairn sets it: the environment is the worker's minus secrets, plus `env:`",
            "export-file": "Cairn sets it: the environment is the worker's minus secrets, plus `env:`",
            "get-user-env": "Cairn sets it: the environment is the worker's minus secrets, plus `env:`",
            "uid": "Cairn sets it: jobs run as the worker's trainer user", "gid": "Cairn sets it: jobs run as the worker's trainer user",
            "job-name": "Cairn names the job after the run", "wrap": "use `command:` or `script:`",
            "time": "use `timeout:`", "partition": "use `partition:`", "account": "use `account:`",
            "mem": "use `memory:`", "cpus-per-task": "use `cpus:`", "gpus": "use `gpus:`",
            "parsable": "Cairn sets it", "wait": "Cairn follows the job itself", "dependency": "each run is one job on its own",
            "array": "each run is one job on its own", "requeue": "the cluster's requeue setting applies",
            "no-requeue": "the cluster's requeue setting applies",
        ]
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
    /// Item metadata for reviewing recommendations: a CSV in the repository (`item_id,title,category`),
    /// relative to the manifest root. Not part of the training fingerprint: it changes no model.
    public var items: String?
    /// A search over the trainer's parameters before the version is trained (part of the fingerprint).
    public var tuning: Tuning?

    public init(metadata: ManifestMetadata, displayName: String?, events: [String], outcomeWeights: String,
                dataset: Dataset, trainer: Trainer, evaluation: Evaluation, items: String? = nil, tuning: Tuning? = nil) {
        self.tuning = tuning
        self.metadata = metadata
        self.displayName = displayName
        self.events = events
        self.outcomeWeights = outcomeWeights
        self.dataset = dataset
        self.trainer = trainer
        self.evaluation = evaluation
        self.items = items
    }
}

/// `kind: Model`: a registered model: its template, lifecycle, registry family and stage, learning
/// cadence, approval policy and the decisions made in git.
public struct Model: Sendable, Hashable, Codable {
    /// draft (never trained), active, archived, or deleted: removed from the registry for good
    /// (its versions and runs with it; the audit history keeps the record).
    public enum Lifecycle: String, Sendable, Hashable, Codable, CaseIterable {
        case draft, active, archived, deleted
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
        /// What a version must show as a shadow before it is approved (or promoted).
        public var shadowEvidence: ShadowEvidenceRequirement?

        public init(mode: ApprovalMode = .manual, gates: [Gate] = [], shadowEvidence: ShadowEvidenceRequirement? = nil) {
            self.mode = mode
            self.gates = gates
            self.shadowEvidence = shadowEvidence
        }
    }

    /// Versions approved, rejected or deleted by a reviewed commit.
    public struct Decisions: Sendable, Hashable, Codable {
        public var approve: [Int]
        public var reject: [Int]
        /// Versions removed for good (their artifacts are then unreferenced, for `cairn artifact gc`);
        /// nil when none, so specs stored before deletion existed compare equal.
        public var delete: [Int]?

        public init(approve: [Int] = [], reject: [Int] = [], delete: [Int] = []) {
            self.approve = approve
            self.reject = reject
            self.delete = delete.isEmpty ? nil : delete
        }

        /// `delete`, or none.
        public var deleted: [Int] { delete ?? [] }
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
    /// Whose model it is, for the operator's per-tenant quota (`--model-quota`); nil counts as `default`.
    public var tenant: String?
    /// A draft asks for discovery: traits computed from its template's data, recorded before it trains.
    /// Nil when not asked (so specs stored before discovery existed compare equal).
    public var discover: Bool?
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

    /// The tenant the quota counts this model under.
    public var quotaTenant: String { tenant ?? "default" }

    public init(metadata: ManifestMetadata, template: String, lifecycle: Lifecycle = .draft, family: String? = nil,
                stage: Stage = .none, label: String? = nil, description: String? = nil, traits: [String] = [],
                learning: Learning = Learning(), retrainToken: String? = nil, approval: Approval = Approval(),
                decisions: Decisions = Decisions(), versionLabels: [VersionLabel]? = nil, tenant: String? = nil, discover: Bool = false) {
        self.tenant = tenant
        self.discover = discover ? true : nil
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
    /// Returns the target to its previous routes when what a promotion put live does worse online.
    public var rollbackGuard: RollbackGuard?

    public init(metadata: ManifestMetadata, tenant: String, surface: String, routes: [Route], shadow: [Route] = [],
                rollbackGuard: RollbackGuard? = nil) {
        self.metadata = metadata
        self.tenant = tenant
        self.surface = surface
        self.routes = routes
        self.shadow = shadow
        self.rollbackGuard = rollbackGuard
    }
}

/// Every document of one revision, by kind, each kind sorted by name.
public struct ManifestSet: Sendable, Hashable, Codable {
    public var outcomeWeights: [OutcomeWeights]
    public var templates: [Template]
    public var models: [Model]
    public var servingTargets: [ServingTarget]
    public var families: [ModelFamily]

    public init(outcomeWeights: [OutcomeWeights] = [], templates: [Template] = [], models: [Model] = [],
                servingTargets: [ServingTarget] = [], families: [ModelFamily] = []) {
        self.outcomeWeights = outcomeWeights.sorted { $0.metadata.name < $1.metadata.name }
        self.templates = templates.sorted { $0.metadata.name < $1.metadata.name }
        self.models = models.sorted { $0.metadata.name < $1.metadata.name }
        self.servingTargets = servingTargets.sorted { $0.metadata.name < $1.metadata.name }
        self.families = families.sorted { $0.metadata.name < $1.metadata.name }
    }

    public var count: Int { outcomeWeights.count + templates.count + models.count + servingTargets.count + families.count }

    enum CodingKeys: String, CodingKey { case outcomeWeights, templates, models, servingTargets, families }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(outcomeWeights: try c.decode([OutcomeWeights].self, forKey: .outcomeWeights), templates: try c.decode([Template].self, forKey: .templates),
                  models: try c.decode([Model].self, forKey: .models), servingTargets: try c.decode([ServingTarget].self, forKey: .servingTargets),
                  families: try c.decodeIfPresent([ModelFamily].self, forKey: .families) ?? [])
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(outcomeWeights, forKey: .outcomeWeights)
        try c.encode(templates, forKey: .templates)
        try c.encode(models, forKey: .models)
        try c.encode(servingTargets, forKey: .servingTargets)
        if !families.isEmpty { try c.encode(families, forKey: .families) }
    }
}
