import CairnCore
import CairnReconcile
import Foundation

/// Checks the registry's state against its audit history: every definition, stage, version
/// decision, live route and run outcome must be exactly what the audited changes imply, in the
/// order they were recorded. The hash chain proves the history was not edited; this proves the
/// state was not edited beside it (an `UPDATE versions SET status = 'approved'` made with the
/// sqlite3 shell leaves the chain intact, but not this).
extension RegistryDatabase {
    /// One row that differs from what the history implies.
    public struct StateMismatch: Sendable, Equatable, CustomStringConvertible {
        /// The table and the row's key, as `versions homepage-recs v2`.
        public var row: String
        public var problem: String

        public var description: String { "\(row): \(problem)" }
    }

    /// Every row that differs from what the audit history implies (empty when all agree).
    public func verifyState() throws -> [StateMismatch] {
        try sql.read { db in try verifyState(db) }
    }

    /// The check is complete every time: every row of every table is compared with what the
    /// history implies. What a handle that `keepsStateCheck` keeps from its last check makes it
    /// cheaper: the state the history implied up to its newest row (only rows after it are
    /// replayed, while that row still has the hash it had; otherwise the whole history), and a
    /// digest of each spec or metrics text that matched, with the audit row it matched (a text
    /// with the same length and digest under an unchanged expectation is not parsed again). The
    /// digest is SipHash with this process's random key (`Hasher`) over the text's bytes: a text
    /// made to collide with it would need that key. Requests are hashed (sha256) every time.
    func verifyState(_ db: any SQLSession) throws -> [StateMismatch] {
        let previous = keepsStateCheck ? verifiedCache.value : nil
        var expected = ExpectedState()
        var after = Int64.min
        var head: (id: Int64, hash: String)?
        if let previous, let last = previous.head,
           try String.fetchOne(db, sql: "SELECT hash FROM audit_log WHERE id = ?", arguments: [last.id]) == last.hash {
            (expected, after, head) = (previous.expected, last.id, last)
        }
        var rows = AuditCursor(db: db, columns: "id, action, address, version, after, hash", after: after)
        while let row = try rows.next() {
            head = (row["id"], row["hash"])
            // A row Cairn never writes explains nothing (and `audit verify` reports the edit).
            guard let action = AuditAction(rawValue: row["action"]), case let .manifest(address)? = AuditAddress(parsing: row["address"]) else { continue }
            expected.replay(id: row["id"], action: action, address: address, version: row["version"], after: row["after"])
        }
        var matched: [String: VerifiedCache.Match] = [:]
        defer {
            if keepsStateCheck { verifiedCache.update { $0 = VerifiedCache.Kept(expected: expected, head: head, matched: matched) } }
        }
        let known = previous?.matched ?? [:]
        /// True when `text` is the value `want` (set at audit row `auditID`) expects; remembered under `key`.
        func same(_ key: String, _ text: String, _ want: JSONValue, _ auditID: Int64) -> Bool {
            let match = keepsStateCheck ? VerifiedCache.Match(text, auditID: auditID) : nil
            if let match, known[key] == match {
                matched[key] = match
                return true
            }
            guard JSONValue.parse(text).map({ $0.isSame(as: want) }) ?? false else { return false }
            matched[key] = match
            return true
        }
        var found: [StateMismatch] = []
        func differs(_ row: String, _ problem: String) { found.append(StateMismatch(row: row, problem: problem)) }

        for (table, kind) in [("outcome_weights", ManifestKind.outcomeWeights), ("templates", .template)] {
            var seen = Set<String>()
            for row in try SQLRow.fetchAll(db, sql: "SELECT name, spec, archived FROM \(table) ORDER BY name") {
                let name: String = row["name"]
                seen.insert(name)
                guard let want = expected.definitions[ManifestAddress(kind, name)] else {
                    differs("\(table) \(name)", "no audited change created it")
                    continue
                }
                let archived: Bool = row["archived"]
                if archived != want.archived { differs("\(table) \(name)", "archived is \(archived), the history says \(want.archived)") }
                if !same("\(table) \(name)", row["spec"], want.spec, want.auditID) {
                    differs("\(table) \(name)", "its spec is not the one last applied (audit row \(want.auditID))")
                }
            }
            for address in expected.definitions.keys where address.kind == kind && !seen.contains(address.name) {
                differs("\(table) \(address.name)", "the history created it, but the row is gone")
            }
        }

        var seenModels = Set<String>()
        for row in try SQLRow.fetchAll(db, sql: "SELECT name, spec, stage, lifecycle, discovered FROM models ORDER BY name") {
            let name: String = row["name"]
            seenModels.insert(name)
            guard let want = expected.models[name] else {
                differs("models \(name)", "no audited change created it")
                continue
            }
            let stage: String = row["stage"], lifecycle: String = row["lifecycle"]
            if stage != want.stage { differs("models \(name)", "stage is \(stage), the history says \(want.stage) (audit row \(want.auditID))") }
            if lifecycle != want.lifecycle {
                differs("models \(name)", "lifecycle is \(lifecycle), the history says \(want.lifecycle) (audit row \(want.auditID))")
            }
            if !same("models \(name)", row["spec"], want.spec, want.auditID) {
                differs("models \(name)", "its spec is not the one last applied (audit row \(want.auditID))")
            }
            let discovered = (row["discovered"] as String?).flatMap(JSONValue.parse)
            if !(discovered.map { d in want.discovered.map { d.isSame(as: $0) } ?? false } ?? (want.discovered == nil)) {
                differs("models \(name)", "its discovered traits are not the audited ones (audit row \(want.auditID))")
            }
        }
        for name in expected.models.keys.sorted() where !seenModels.contains(name) {
            differs("models \(name)", "the history created it, but the row is gone")
        }

        var seenVersions = Set<String>()
        for row in try SQLRow.fetchAll(db, sql: "SELECT model, number, status, metrics, fingerprint, run_id FROM versions ORDER BY model, number") {
            let model: String = row["model"], number: Int = row["number"]
            let key = "\(model) v\(number)"
            seenVersions.insert(key)
            guard let want = expected.versions[key] else {
                differs("versions \(key)", "no audited training run created it")
                continue
            }
            let status: String = row["status"], fingerprint: String = row["fingerprint"], run: Int = row["run_id"]
            if status != want.status.rawValue {
                differs("versions \(key)", "status is \(status), the history says \(want.status.rawValue) (audit row \(want.auditID))")
            }
            if fingerprint != want.fingerprint || run != want.run {
                differs("versions \(key)", "fingerprint or run differ from the audited version (audit row \(want.auditID))")
            }
            if let metrics = want.metrics, !same("versions \(key)", row["metrics"], metrics, want.auditID) {
                differs("versions \(key)", "its metrics are not the audited ones (audit row \(want.auditID))")
            }
        }
        for key in expected.versions.keys.sorted() where !seenVersions.contains(key) {
            differs("versions \(key)", "the history created it, but the row is gone")
        }

        var seenTargets = Set<String>()
        for row in try SQLRow.fetchAll(db, sql: "SELECT * FROM serving_targets ORDER BY name") {
            let target = try servingTarget(row)
            seenTargets.insert(target.name)
            guard let want = expected.targets[target.name] else {
                differs("serving_targets \(target.name)", "no audited change put it live")
                continue
            }
            let live = target.assigned ? Assignment(tenant: target.tenant, surface: target.surface, routes: target.routes, shadow: target.shadow) : nil
            if target.assigned != (want.assignment != nil) {
                differs("serving_targets \(target.name)", target.assigned ? "it serves, but the history unassigned it" : "it serves nothing, but the history assigned it")
            } else if let live, let assignment = want.assignment, live != assignment.served {
                differs("serving_targets \(target.name)",
                        "it serves \(Describe.routes(live.routes)), the history says \(Describe.routes(assignment.routes)) (audit row \(want.auditID))")
            }
        }
        for name in expected.targets.keys.sorted() where !seenTargets.contains(name) {
            differs("serving_targets \(name)", "the history put it live, but the row is gone")
        }

        var seenRuns = Set<Int>()
        for row in try SQLRow.fetchAll(db, sql: "SELECT id, model, fingerprint, request, state, version FROM training_runs ORDER BY id") {
            let id: Int = row["id"], state: String = row["state"], model: String = row["model"]
            seenRuns.insert(id)
            guard let want = expected.runs[id] else {
                differs("training_runs \(id)", "no audited train change queued it")
                continue
            }
            let fingerprint: String = row["fingerprint"]
            if model != want.model || fingerprint != want.fingerprint {
                differs("training_runs \(id)", "model or fingerprint differ from the audited train change (audit row \(want.auditID))")
            }
            // The request a worker will still run must be the one fingerprinted: a template edited
            // in the database (another trainer command) no longer hashes to the audited fingerprint.
            let requestText: String = row["request"]
            if state != "queued", state != "running" {
                // Finished: its outcome is checked below; its request will not run again.
            } else if let audited = want.requestHash {
                if sha256Hex(requestText) != audited {
                    differs("training_runs \(id)", "its request is not the one the audited fingerprint \(want.fingerprint.prefix(8))… names (it hashes differently)")
                }
            } else if let request = try? decode(TrainRequest.self, requestText) {
                if request.fingerprint != want.fingerprint || request.inputs.fingerprint != want.fingerprint
                    || FingerprintInputs.templateHash(request.template) != request.inputs.template
                    || FingerprintInputs.weightsHash(request.weights) != request.inputs.weights || request.model != want.model {
                    differs("training_runs \(id)", "its request is not the one the audited fingerprint \(want.fingerprint.prefix(8))… names")
                }
            } else {
                differs("training_runs \(id)", "its request cannot be read")
            }
            let version: Int? = row["version"]
            switch (state, want.outcome) {
            case ("succeeded", .succeeded(let number)?) where version == number: break
            case ("failed", .failed?): break
            case ("cancelled", _) where want.superseded: break
            case ("queued", nil), ("running", nil): break
            default:
                differs("training_runs \(id)", "state \(state)\(version.map { " (v\($0))" } ?? ""), the history says "
                        + (want.outcome.map { "\($0)" } ?? (want.superseded ? "queued, running or cancelled" : "queued or running")))
            }
        }
        for id in expected.runs.keys.sorted() where !seenRuns.contains(id) {
            differs("training_runs \(id)", "the history queued it, but the row is gone")
        }
        return found
    }
}

/// The state the audit history implies, built by replaying it in order.
struct ExpectedState {
    struct Definition {
        var spec: JSONValue
        var archived: Bool
        var auditID: Int64
    }

    struct ModelState {
        var spec: JSONValue
        var lifecycle: String
        var stage: String
        var auditID: Int64
        /// The traits discovery recorded (nil until a discover row).
        var discovered: JSONValue?
    }

    struct VersionState {
        var status: ModelVersion.Status
        var fingerprint: String
        var run: Int
        var metrics: JSONValue?
        var auditID: Int64
    }

    struct TargetState {
        var assignment: Assignment?
        var auditID: Int64
    }

    enum Outcome: CustomStringConvertible {
        case succeeded(Int)
        case failed

        var description: String {
            switch self {
            case let .succeeded(n): "succeeded (v\(n))"
            case .failed: "failed"
            }
        }
    }

    struct RunState {
        var model: String
        var fingerprint: String
        /// sha256 of the stored request, audited since requests are hashed (older rows: nil).
        var requestHash: String?
        var outcome: Outcome?
        var superseded = false
        var auditID: Int64
    }

    var definitions: [ManifestAddress: Definition] = [:]
    var models: [String: ModelState] = [:]
    var versions: [String: VersionState] = [:]
    var targets: [String: TargetState] = [:]
    var runs: [Int: RunState] = [:]

    mutating func replay(id: Int64, action: AuditAction, address: ManifestAddress, version: Int?, after text: String?) {
        let after = text.flatMap(JSONValue.parse)
        let (kind, name) = (address.kind, address.name)
        func field(_ key: String) -> JSONValue? {
            if case let .object(o)? = after { return o[key] }
            return nil
        }
        func int(_ value: JSONValue?) -> Int? {
            switch value {
            case let .int(i)?: i
            case let .double(d)?: Int(d)
            default: nil
            }
        }
        switch (action, kind) {
        case (.create, .outcomeWeights), (.update, .outcomeWeights), (.create, .template), (.update, .template):
            if let after { definitions[address] = Definition(spec: after, archived: false, auditID: id) }
        case (.archive, .outcomeWeights), (.archive, .template):
            definitions[address]?.archived = true
            definitions[address]?.auditID = id
        case (.create, .model):
            if let after, case let .string(lifecycle)? = field("lifecycle") {
                models[name] = ModelState(spec: after, lifecycle: lifecycle, stage: "none", auditID: id)
            }
        case (.update, .model):
            if let after, case let .string(lifecycle)? = field("lifecycle") {
                models[name]?.spec = after
                models[name]?.lifecycle = lifecycle
                models[name]?.auditID = id
            }
        case (.stage, .model), (.demote, .model):
            if let move = try? after?.decode(StageMove.self) {
                models[name]?.stage = move.to.rawValue
                models[name]?.auditID = id
            }
        case (.archive, .model):
            if case var .object(spec)? = models[name]?.spec {
                spec["lifecycle"] = .string(Model.Lifecycle.archived.rawValue)
                models[name]?.spec = .object(spec)
            }
            models[name]?.lifecycle = Model.Lifecycle.archived.rawValue
            models[name]?.stage = "none"
            models[name]?.auditID = id
        case (.train, .model):
            if let run = int(field("run")), case let .string(fingerprint)? = field("fingerprint") {
                var hash: String?
                if case let .string(h)? = field("request") { hash = h }
                runs[run] = RunState(model: name, fingerprint: fingerprint, requestHash: hash, auditID: id)
                if case let .array(old)? = field("supersedes") {
                    for o in old.compactMap({ int($0) }) { runs[o]?.superseded = true }
                }
            }
        case (.version, .model):
            if let number = version, let run = int(field("run")), case let .string(fingerprint)? = field("fingerprint") {
                let metrics = field("metrics")
                versions["\(name) v\(number)"] = VersionState(status: .pending, fingerprint: fingerprint, run: run, metrics: metrics, auditID: id)
                runs[run]?.outcome = .succeeded(number)
            }
        case (.unchanged, .model):
            if let number = version, let run = int(field("run")) { runs[run]?.outcome = .succeeded(number) }
        case (.approve, .model), (.reject, .model):
            if let number = version {
                versions["\(name) v\(number)"]?.status = action == .approve ? .approved : .rejected
                versions["\(name) v\(number)"]?.auditID = id
            }
        case (.fail, .model):
            if let run = int(field("run")) { runs[run]?.outcome = .failed }
        case (.promote, .servingTarget):
            if let assignment = try? after?.decode(Assignment.self) { targets[name] = TargetState(assignment: assignment, auditID: id) }
        case (.archive, .servingTarget):
            targets[name] = TargetState(assignment: nil, auditID: id)
        case (.discover, .model):
            models[name]?.discovered = after
            models[name]?.auditID = id
        case (.delete, .model):
            if let number = version {
                versions["\(name) v\(number)"] = nil
            } else {
                models[name] = nil
                versions = versions.filter { !$0.key.hasPrefix(name + " v") }
                runs = runs.filter { $0.value.model != name }
            }
        default:
            break
        }
    }
}

/// What a registry handle's last state check established (see `verifyState`).
enum VerifiedCache {
    /// A row text that matched its expectation: its length and digest, and the audit row the
    /// expectation came from.
    struct Match: Equatable {
        var length: Int
        var digest: Int
        var auditID: Int64

        init(_ text: String, auditID: Int64) {
            var text = text
            var hasher = Hasher()
            length = text.withUTF8 { bytes in
                hasher.combine(bytes: UnsafeRawBufferPointer(bytes))
                return bytes.count
            }
            digest = hasher.finalize()
            self.auditID = auditID
        }
    }

    struct Kept {
        var expected: ExpectedState
        /// The newest audit row replayed, and its hash.
        var head: (id: Int64, hash: String)?
        /// Row key (`models NAME`, `versions NAME vN`, …) → the text that matched.
        var matched: [String: Match]
    }
}
