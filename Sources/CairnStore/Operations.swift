import CairnCore
import CairnReconcile
import Foundation

/// Out-of-band operations: suspension, break-glass rollback, failed passes.
extension RegistryDatabase {
    /// Who suspended applying, and when.
    public struct Suspension: Sendable, Equatable {
        public var by: String
        public var at: Int64
    }

    public func suspension() throws -> Suspension? {
        try sql.read { db in try suspension(db) }
    }

    func suspension(_ db: any SQLSession) throws -> Suspension? {
        guard let by = try meta(db, "suspended_by"), let at = try meta(db, "suspended_at").flatMap(Int64.init) else { return nil }
        return Suspension(by: by, at: at)
    }

    /// Pauses applying (plans are still computed). Recorded in the audit history.
    public func setSuspended(_ suspended: Bool, actor: String, at: Int64) throws -> Bool {
        try sql.write { db in
            let current = try meta(db, "suspended_by") != nil
            guard current != suspended else { return false }
            try setMeta(db, "suspended_by", suspended ? actor : nil)
            try setMeta(db, "suspended_at", suspended ? String(at) : nil)
            try bumpGeneration(db)
            try appendAudit(db, at: at, action: suspended ? .suspend : .resume, address: .applier, version: nil, before: nil,
                            after: nil, reason: suspended ? "applying paused by \(actor)" : "applying resumed by \(actor)", file: nil,
                            context: AuditContext(revision: nil, author: nil, actor: actor), models: [])
            return true
        }
    }

    /// Break-glass: puts `model` v`version` live on `target` outside git. The target is marked as
    /// drifted, so the next plan shows who did it and (by default) puts the declared version back.
    public func rollback(target: String, model: String?, to version: Int, actor: String, holder: LeaseHolder, at: Int64) throws -> (LiveRoute, LiveRoute) {
        try sql.write { db in
            try renewLease(db, holder, now: at)
            guard let row = try SQLRow.fetchOne(db, sql: "SELECT * FROM serving_targets WHERE name = ?", arguments: [target]) else {
                throw CairnError("ServingTarget/\(target) has never been applied", hint: "`cairn status` lists targets")
            }
            let current = try servingTarget(row)
            guard current.assigned else { throw CairnError("ServingTarget/\(target) is unassigned", hint: "nothing is served there to roll back") }
            let index: Int
            if let model {
                guard let i = current.routes.firstIndex(where: { $0.model == model }) else {
                    throw CairnError("ServingTarget/\(target) has no route to \(model)",
                                     hint: "its routes: \(current.routes.map(\.model).joined(separator: ", "))")
                }
                index = i
            } else {
                guard current.routes.count == 1 else {
                    throw CairnError("ServingTarget/\(target) has \(current.routes.count) routes", hint: "name one with --model")
                }
                index = 0
            }
            let old = current.routes[index]
            var new = old
            new.version = version
            try checkServable(db, [new], shadow: [], target: target)
            var routes = current.routes
            routes[index] = new
            let drift = DriftRecord(actor: actor, at: at, how: "cairn rollback --to \(version)")
            try db.execute(sql: "UPDATE serving_targets SET routes = ?, drift = ?, promoted_at = ? WHERE name = ?",
                           arguments: [try encode(routes), try encode(drift), at, target])
            try bumpGeneration(db)
            let before = Assignment(tenant: current.tenant, surface: current.surface, routes: current.routes, shadow: current.shadow)
            var after = before
            after.routes = routes
            try appendAudit(db, at: at, action: .promote, address: .servingTarget(target), version: version,
                            before: .from(before), after: .from(after),
                            reason: "break-glass rollback: \(old.model) v\(old.version) → v\(version) (drift until git declares it)",
                            file: nil, context: AuditContext(revision: nil, author: nil, actor: actor), models: [old.model])
            return (old, new)
        }
    }

    /// Records a pass that could not be applied (invalid revision, unreadable source, refused
    /// plan). The last applied revision stays in force.
    public func recordFailedPass(revision: String?, revisionName: String?, result: String, message: String, at: Int64) throws {
        try sql.write { db in
            try db.execute(sql: """
                INSERT INTO reconcile_runs(started_at, finished_at, revision, revision_name, result, message) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [at, at, revision, revisionName, result, message])
            try appendEvent(db, kind: "stall", at: at, address: "revision \(revision.map { String($0.prefix(12)) } ?? revisionName ?? "?")", version: nil,
                            revision: revision, auditID: nil, payload: .object(["result": .string(result), "reason": .string(message)]))
        }
    }

    /// A reconcile pass as recorded (applied, invalid, source_error).
    public struct PassRecord: Sendable, Equatable {
        public var revision: String?
        public var result: String
        public var message: String?
        public var at: Int64
    }

    public func lastPass() throws -> PassRecord? {
        try sql.read { db in
            try SQLRow.fetchOne(db, sql: "SELECT revision, result, message, finished_at FROM reconcile_runs ORDER BY id DESC LIMIT 1").map {
                PassRecord(revision: $0["revision"], result: $0["result"], message: $0["message"], at: $0["finished_at"])
            }
        }
    }
}

/// The source a registry follows (its repository's first commit and its manifest root; see
/// `ReconcilePass.checkSource`), kept in `meta`.
extension RegistryDatabase {
    public func boundSource() throws -> BoundSource? {
        try sql.read { db in
            guard let root = try meta(db, "source_root_commit"), let folder = try meta(db, "source_manifest_root") else { return nil }
            return BoundSource(rootCommit: root, manifestRoot: folder)
        }
    }

    /// Binds the registry to a source; a registry already bound keeps its binding.
    public func bindSource(_ source: BoundSource) throws {
        try sql.write { db in
            guard try meta(db, "source_root_commit") == nil else { return }
            try setMeta(db, "source_root_commit", source.rootCommit)
            try setMeta(db, "source_manifest_root", source.manifestRoot)
        }
    }
}

extension RegistryDatabase: RegistryStore {
    public var location: String { path }

    public func stateMismatches() throws -> [String] { try verifyState().map(\.description) }
}
