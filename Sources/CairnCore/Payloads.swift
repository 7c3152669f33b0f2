/// The `after` payloads of plan changes, by action. Apply decodes exactly these.

/// `stage` and `demote`: a registry stage move.
public struct StageMove: Sendable, Codable, Equatable {
    public var family: String?
    public var from: Model.Stage
    public var to: Model.Stage
    /// The model's latest approved version when the move was decided, and its metrics (for the audit row).
    public var version: Int?
    public var metrics: [String: Double]?

    public init(family: String?, from: Model.Stage, to: Model.Stage) {
        self.family = family
        self.from = from
        self.to = to
    }
}

/// `train`: everything a training run needs, resolved at plan time.
public struct TrainRequest: Sendable, Codable, Equatable {
    public var model: String
    public var fingerprint: String
    public var inputs: FingerprintInputs
    public var template: Template
    public var weights: OutcomeWeights
    /// Repository path of the dataset (templates with `dataset.path`).
    public var datasetPath: String?
    public var commit: String
    /// Queued runs of the same model with an older fingerprint, cancelled by this one.
    public var supersedes: [Int]
    /// The manifest folder (`--path`), repository-relative; nil for the repository root. Exec
    /// trainers run there, where the template's relative paths point.
    public var manifestRoot: String?

    public init(model: String, fingerprint: String, inputs: FingerprintInputs, template: Template, weights: OutcomeWeights,
                datasetPath: String?, commit: String, supersedes: [Int], manifestRoot: String? = nil) {
        self.model = model
        self.fingerprint = fingerprint
        self.inputs = inputs
        self.template = template
        self.weights = weights
        self.datasetPath = datasetPath
        self.commit = commit
        self.supersedes = supersedes
        self.manifestRoot = manifestRoot.flatMap { $0.isEmpty ? nil : $0 }
    }
}

extension TrainRequest {
    /// The same JSON as `JSONValue.from(self)`, from already-encoded template and weights
    /// (planning a fleet shares them between many models).
    func payload(template: JSONValue, weights: JSONValue) -> JSONValue {
        var object: [String: JSONValue] = [
            "model": .string(model), "fingerprint": .string(fingerprint), "inputs": inputs.jsonValue,
            "template": template, "weights": weights, "commit": .string(commit), "supersedes": .array(supersedes.map { .int($0) }),
        ]
        if let datasetPath { object["datasetPath"] = .string(datasetPath) }
        if let manifestRoot { object["manifestRoot"] = .string(manifestRoot) }
        return .object(object)
    }
}

/// `approve` / `reject`.
public struct Decision: Sendable, Codable, Equatable {
    public var model: String
    public var version: Int
    public var status: ModelVersion.Status

    public init(model: String, version: Int, status: ModelVersion.Status) {
        self.model = model
        self.version = version
        self.status = status
    }
}

/// `promote`: the complete live state of a target after the change.
public struct Assignment: Sendable, Codable, Equatable {
    public var tenant: String
    public var surface: String
    public var routes: [LiveRoute]
    public var shadow: [LiveRoute]
    /// Set on a promotion the plan makes outside what git declares (a tripped rollback guard):
    /// the drift the target is marked with.
    public var drift: DriftRecord?
    /// The metrics of each route's and shadow's version the promotion was decided on
    /// ("model@version" → metrics), for its audit row.
    public var decidedOn: [String: [String: Double]]?

    public init(tenant: String, surface: String, routes: [LiveRoute], shadow: [LiveRoute]) {
        self.tenant = tenant
        self.surface = surface
        self.routes = routes
        self.shadow = shadow
    }

    /// What is served: tenant, surface, routes and shadows, without the notes.
    public var served: Assignment { Assignment(tenant: tenant, surface: surface, routes: routes, shadow: shadow) }
}
