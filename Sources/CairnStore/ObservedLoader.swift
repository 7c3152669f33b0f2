import CairnCore
import CairnReconcile
import Foundation

extension RegistryDatabase {
    /// The observed state for planning, as one consistent snapshot.
    ///
    /// Each registry handle keeps the last state it read. While the registry's generation, last
    /// applied revision and suspension are unchanged, that state is returned as it is (every
    /// change to what the state holds, by any process, moves the generation in its transaction).
    /// When the generation moved, the kept state is advanced instead of read whole: every change
    /// to a definition, model, version or target writes an audit row naming it, so the objects
    /// named by the audit rows after the kept state's are read again, with the runs (claims and
    /// hand-backs move runs without an audit row); anything unexpected (a shorter history, an
    /// address Cairn never writes, many objects) reads the state whole.
    /// `CAIRN_CHECK_OBSERVED_ADVANCE=1` (set by the test command) reads it whole as well after
    /// every advance and fails if the two differ.
    public func observedState() throws -> ObservedState {
        try sql.read { db in
            let key = ObservedCache.Key(generation: try generation(db), lastAppliedRevision: try meta(db, "last_applied_revision"),
                                        suspended: try meta(db, "suspended_by") != nil)
            let kept = observedCache.value
            if let kept, kept.key == key { return kept.state }
            let head = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM audit_log") ?? 0
            // The same generation with another last applied revision (a revision that changed
            // nothing Cairn applies) moved no table: only that field is new.
            var advanced: ObservedState?
            if let kept, kept.key.generation == key.generation {
                advanced = kept.state
            } else if let kept, key.generation > kept.key.generation {
                advanced = try advanceObserved(db, kept.state, since: kept.auditHead, to: head)
            }
            if let kept, var state = advanced {
                state.generation = key.generation
                state.lastAppliedRevision = key.lastAppliedRevision
                state.suspended = key.suspended
                if Self.checkAdvance {
                    let whole = try loadObserved(db)
                    if whole != state {
                        throw CairnError("the observed state advanced from generation \(kept.key.generation) to \(key.generation) differs from the registry's")
                    }
                }
                observedCache.update { $0 = ObservedCache.Kept(key: key, state: state, auditHead: head) }
                return state
            }
            let state = try loadObserved(db)
            observedCache.update { $0 = ObservedCache.Kept(key: key, state: state, auditHead: head) }
            return state
        }
    }

    static let checkAdvance = ProcessInfo.processInfo.environment["CAIRN_CHECK_OBSERVED_ADVANCE"] == "1"

    /// Most objects an advance reads again one by one; beyond it the whole state is read.
    static let advanceLimit = 500

    /// `state` (read when the history ended at `since`) with the objects the audit rows after it
    /// name read again, and the runs; nil when reading it whole is the way.
    func advanceObserved(_ db: any SQLSession, _ kept: ObservedState, since: Int64, to head: Int64) throws -> ObservedState? {
        guard head >= since else { return nil }
        var touched = Set<ManifestAddress>()
        for text in try String.fetchAll(db, sql: "SELECT address FROM audit_log WHERE id > ? ORDER BY id", arguments: [since]) {
            switch AuditAddress(parsing: text) {
            case let .manifest(address)?: touched.insert(address)
            case .applier?, .token?: continue
            case nil: return nil
            }
            if touched.count > Self.advanceLimit { return nil }
        }
        var state = kept
        for address in touched {
            let name = address.name
            switch address.kind {
            case .outcomeWeights: state.weights[name] = try loadWeights(db, named: name)[name]
            case .template: state.templates[name] = try loadTemplates(db, named: name)[name]
            case .model: state.models[name] = try loadModels(db, named: name)[name]
            case .servingTarget: state.targets[name] = try loadTargets(db, named: name)[name]
            case .modelFamily: continue
            }
        }
        state.runs = try loadRuns(db)
        return state
    }

    func loadObserved(_ db: any SQLSession) throws -> ObservedState {
        var state = ObservedState()
        state.generation = try generation(db)
        state.lastAppliedRevision = try meta(db, "last_applied_revision")
        state.suspended = try meta(db, "suspended_by") != nil
        state.weights = try loadWeights(db)
        state.templates = try loadTemplates(db)
        state.models = try loadModels(db)
        state.targets = try loadTargets(db)
        state.runs = try loadRuns(db)
        return state
    }

    /// `WHERE name = ?` for one object, or nothing for all.
    private func only(_ column: String, _ name: String?) -> (String, SQLArguments) {
        guard let name else { return ("", SQLArguments()) }
        return (" WHERE \(column) = ?", [name])
    }

    func loadWeights(_ db: any SQLSession, named name: String? = nil) throws -> [String: ObservedWeights] {
        try loadDefinitions(db, table: "outcome_weights", named: name) { ObservedWeights(spec: $0, archived: $1) }
    }

    func loadTemplates(_ db: any SQLSession, named name: String? = nil) throws -> [String: ObservedTemplate] {
        try loadDefinitions(db, table: "templates", named: name) { ObservedTemplate(spec: $0, archived: $1) }
    }

    /// The rows of a definitions table (`name`, `spec`, `archived`) by name.
    private func loadDefinitions<Spec: Decodable, Observed>(_ db: any SQLSession, table: String, named name: String?,
                                                            _ make: (Spec, Bool) -> Observed) throws -> [String: Observed] {
        let (filter, arguments) = only("name", name)
        var out: [String: Observed] = [:]
        for row in try SQLRow.fetchAll(db, sql: "SELECT name, spec, archived FROM \(table)" + filter, arguments: arguments) {
            out[row["name"]] = make(try decode(Spec.self, row["spec"]), row["archived"])
        }
        return out
    }

    func loadModels(_ db: any SQLSession, named name: String? = nil) throws -> [String: ObservedModel] {
        var versions: [String: [ModelVersion]] = [:]
        let (versionFilter, versionArguments) = only("model", name)
        for row in try SQLRow.fetchAll(db, sql: "SELECT * FROM versions" + versionFilter + " ORDER BY model, number", arguments: versionArguments) {
            let v = try version(row)
            versions[v.model, default: []].append(v)
        }
        let (filter, arguments) = only("name", name)
        var out: [String: ObservedModel] = [:]
        for row in try SQLRow.fetchAll(db, sql: "SELECT name, spec, stage, first_ready_at, discovered FROM models" + filter, arguments: arguments) {
            let name: String = row["name"]
            out[name] = ObservedModel(spec: try decode(Model.self, row["spec"]), stage: Model.Stage(rawValue: row["stage"]) ?? Model.Stage.none,
                                      firstReadyAt: row["first_ready_at"], versions: versions[name] ?? [],
                                      discovered: try (row["discovered"] as String?).map { try decode(DiscoveredTraits.self, $0) })
        }
        return out
    }

    func loadTargets(_ db: any SQLSession, named name: String? = nil) throws -> [String: ObservedTarget] {
        let (filter, arguments) = only("name", name)
        var out: [String: ObservedTarget] = [:]
        for row in try SQLRow.fetchAll(db, sql: "SELECT * FROM serving_targets" + filter, arguments: arguments) {
            let target = try servingTarget(row)
            out[target.name] = target
        }
        return out
    }

    /// Every active run, and each model's latest run per fingerprint (enough to plan with).
    func loadRuns(_ db: any SQLSession) throws -> [TrainingRun] {
        try SQLRow.fetchAll(db, sql: """
            SELECT id, model, fingerprint, state, reason, created_at, finished_at, version FROM training_runs
            WHERE state IN ('queued', 'running')
               OR id IN (SELECT MAX(id) FROM training_runs GROUP BY model, fingerprint)
               OR id IN (SELECT MAX(id) FROM training_runs WHERE state = 'succeeded' GROUP BY model)
            ORDER BY id
            """).map(trainingRun)
    }

    func version(_ row: SQLRow) throws -> ModelVersion {
        ModelVersion(model: row["model"], number: row["number"], systemName: row["system_name"],
                     status: ModelVersion.Status(rawValue: row["status"]) ?? .pending, statusReason: row["status_reason"],
                     metrics: try decode([String: Double].self, row["metrics"]), fingerprint: row["fingerprint"],
                     fingerprintInputs: try decode(FingerprintInputs.self, row["fingerprint_inputs"]), datasetHash: row["dataset_hash"],
                     commit: row["commit_sha"], trainerVersion: row["trainer_version"], runID: row["run_id"], createdAt: row["created_at"],
                     label: row["label"], description: row["description"], artifactHash: row["artifact_hash"],
                     artifactSignature: row["artifact_signature"], learned: Self.learned(row),
                     tuning: try (row["tuning"] as String?).map { try decode(TuningResult.self, $0) })
    }

    static func learned(_ row: SQLRow) -> LearnedFrom? {
        guard let samples: Int = row["samples"] else { return nil }
        return LearnedFrom(samples: samples, feedbackSamples: row["feedback_samples"] ?? 0, feedbackThrough: row["feedback_through"] ?? 0)
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

/// The last observed state a registry handle loaded, and what it was loaded at (kept in a
/// `Locked` shared by the copies of one `RegistryDatabase`: `cairn serve`'s loop, its API and
/// its workers).
enum ObservedCache {
    struct Key: Equatable {
        var generation: Int
        var lastAppliedRevision: String?
        var suspended: Bool
    }

    /// A kept state, what it was read at, and the newest audit row it includes.
    struct Kept {
        var key: Key
        var state: ObservedState
        var auditHead: Int64
    }
}
