import CairnCore
import CairnReconcile
import Foundation

extension RegistryDatabase {
    /// The observed state for planning, read in one consistent snapshot.
    /// The observed state, as one snapshot. Kept in memory for the next call: while the
    /// registry's generation (bumped in the transaction of every change to what the state holds,
    /// by any process) and its last applied revision and suspension are the same, it is returned
    /// without reading the tables again; those three are read in the same snapshot first.
    public func observedState() throws -> ObservedState {
        try sql.read { db in
            let key = ObservedCache.Key(generation: try generation(db), lastAppliedRevision: try meta(db, "last_applied_revision"),
                                        suspended: try meta(db, "suspended_by") != nil)
            if let cached = observedCache.state(for: key) { return cached }
            let state = try loadObserved(db)
            observedCache.keep(state, for: key)
            return state
        }
    }

    func loadObserved(_ db: any SQLSession) throws -> ObservedState {
        var state = ObservedState()
        state.generation = try generation(db)
        state.lastAppliedRevision = try meta(db, "last_applied_revision")
        state.suspended = try meta(db, "suspended_by") != nil
        for row in try SQLRow.fetchAll(db, sql: "SELECT name, spec, archived FROM outcome_weights") {
            let spec = try decode(OutcomeWeights.self, row["spec"])
            state.weights[row["name"]] = ObservedWeights(spec: spec, archived: row["archived"])
        }
        for row in try SQLRow.fetchAll(db, sql: "SELECT name, spec, archived FROM templates") {
            let spec = try decode(Template.self, row["spec"])
            state.templates[row["name"]] = ObservedTemplate(spec: spec, archived: row["archived"])
        }
        var versions: [String: [ModelVersion]] = [:]
        for row in try SQLRow.fetchAll(db, sql: "SELECT * FROM versions ORDER BY model, number") {
            let v = try version(row)
            versions[v.model, default: []].append(v)
        }
        for row in try SQLRow.fetchAll(db, sql: "SELECT name, spec, stage, first_ready_at FROM models") {
            let name: String = row["name"]
            let spec = try decode(Model.self, row["spec"])
            state.models[name] = ObservedModel(spec: spec, stage: Model.Stage(rawValue: row["stage"]) ?? Model.Stage.none,
                                               firstReadyAt: row["first_ready_at"], versions: versions[name] ?? [])
        }
        for row in try SQLRow.fetchAll(db, sql: "SELECT * FROM serving_targets") {
            let target = try servingTarget(row)
            state.targets[target.name] = target
        }
        // Every active run, and each model's latest run per fingerprint (enough to plan with).
        let runRows = try SQLRow.fetchAll(db, sql: """
            SELECT id, model, fingerprint, state, reason, created_at, finished_at, version FROM training_runs
            WHERE state IN ('queued', 'running')
               OR id IN (SELECT MAX(id) FROM training_runs GROUP BY model, fingerprint)
               OR id IN (SELECT MAX(id) FROM training_runs WHERE state = 'succeeded' GROUP BY model)
            ORDER BY id
            """)
        state.runs = runRows.map(trainingRun)
        return state
    }

    func version(_ row: SQLRow) throws -> ModelVersion {
        ModelVersion(model: row["model"], number: row["number"], systemName: row["system_name"],
                     status: ModelVersion.Status(rawValue: row["status"]) ?? .pending, statusReason: row["status_reason"],
                     metrics: try decode([String: Double].self, row["metrics"]), fingerprint: row["fingerprint"],
                     fingerprintInputs: try decode(FingerprintInputs.self, row["fingerprint_inputs"]), datasetHash: row["dataset_hash"],
                     commit: row["commit_sha"], trainerVersion: row["trainer_version"], runID: row["run_id"], createdAt: row["created_at"],
                     label: row["label"], description: row["description"], artifactHash: row["artifact_hash"],
                     artifactSignature: row["artifact_signature"])
    }

    func trainingRun(_ row: SQLRow) -> TrainingRun {
        TrainingRun(id: row["id"], model: row["model"], fingerprint: row["fingerprint"],
                    state: TrainingRun.State(rawValue: row["state"]) ?? .failed, reason: row["reason"], createdAt: row["created_at"],
                    finishedAt: row["finished_at"], version: row["version"])
    }

    func servingTarget(_ row: SQLRow) throws -> ObservedTarget {
        let driftText: String? = row["drift"]
        return ObservedTarget(name: row["name"], tenant: row["tenant"], surface: row["surface"],
                              routes: try decode([LiveRoute].self, row["routes"]), shadow: try decode([LiveRoute].self, row["shadow"]),
                              assigned: row["assigned"], drift: try driftText.map { try decode(DriftRecord.self, $0) })
    }
}

/// The text a value is stored as (the same bytes as `JSONEncoder` with sorted keys and
/// unescaped slashes, written directly: see `JSONText`).
func encode<T: Encodable>(_ value: T) throws -> String {
    try JSONText.storeText(value)
}

/// A stored value, read with the byte parser and `JSONValueDecoder` (several times faster than
/// `JSONDecoder`, which the registry's whole observed state went through on every load); text
/// either of them refuses goes to `JSONDecoder`, for its error.
func decode<T: Decodable>(_ type: T.Type, _ text: String?) throws -> T {
    guard let text else { throw CairnError("missing JSON column for \(T.self)") }
    if let value = JSONValue.parse(text), let decoded = try? value.decode(T.self) { return decoded }
    return try JSONDecoder().decode(T.self, from: Data(text.utf8))
}

/// The last observed state a registry handle loaded, and what it was loaded at (shared by the
/// copies of one `RegistryDatabase`: `cairn serve`'s loop, its API and its workers).
final class ObservedCache: @unchecked Sendable {
    struct Key: Equatable {
        var generation: Int
        var lastAppliedRevision: String?
        var suspended: Bool
    }

    private let lock = NSLock()
    private var key: Key?
    private var cached: ObservedState?

    func state(for key: Key) -> ObservedState? {
        lock.withLock { self.key == key ? cached : nil }
    }

    func keep(_ state: ObservedState, for key: Key) {
        lock.withLock {
            self.key = key
            cached = state
        }
    }
}
