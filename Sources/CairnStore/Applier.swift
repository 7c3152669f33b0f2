import CairnCore
import CairnReconcile
import Foundation

extension RegistryDatabase {
    /// Applies a plan, one transaction per step, each with its audit rows. The caller holds the
    /// applier lease. With `expectedGeneration`, refuses a plan made against another observed
    /// state ("stale"). A failing step rolls back whole and stops the apply: nothing is half-written.
    public func apply(_ plan: Plan, holder: LeaseHolder, context: AuditContext, expectedGeneration: Int? = nil,
                      now: @escaping () -> Int64) throws -> ApplyResult {
        var result = ApplyResult(applied: 0, steps: 0, enqueuedRuns: [:])
        let steps = Self.steps(of: plan)
        if steps.isEmpty {
            try sql.write { db in
                try renewLease(db, holder, now: now())
                try requireNotSuspended(db)
                try requireGeneration(db, expectedGeneration)
                if try meta(db, "last_applied_revision") != plan.revision {
                    try setMeta(db, "last_applied_revision", plan.revision)
                }
                try recordBlocked(db, plan.blocked)
            }
            return result
        }
        for (index, step) in steps.enumerated() {
            try sql.write { db in
                let at = now()
                try renewLease(db, holder, now: at)
                if index == 0 {
                    // Inside the first step's transaction: a `cairn suspend` committed before it is seen.
                    try requireNotSuspended(db)
                    try requireGeneration(db, expectedGeneration)
                }
                var runIDs = try reserveRunIDs(db, count: step.count { $0.action == .train })
                for change in step {
                    if let run = try applyChange(db, change, at: at, revision: plan.revision, context: context, runIDs: &runIDs) {
                        result.enqueuedRuns[change.name] = run
                    }
                    result.applied += 1
                }
                try bumpGeneration(db)
                if index == steps.count - 1 {
                    try setMeta(db, "last_applied_revision", plan.revision)
                    try recordBlocked(db, plan.blocked)
                    try db.execute(sql: """
                        INSERT INTO reconcile_runs(started_at, finished_at, revision, revision_name, result, changes, blocked)
                        VALUES (?, ?, ?, ?, 'applied', ?, ?)
                        """, arguments: [at, now(), plan.revision, plan.revisionName, plan.changes.count, plan.blocked.count])
                }
            }
            result.steps += 1
        }
        return result
    }

    /// Keeps what the last applied plan left blocked, for `cairn status` (a declared target
    /// blocked before its first promotion has no row of its own). Written only when it changes,
    /// so applying the same revision twice still writes nothing.
    private func recordBlocked(_ db: any SQLSession, _ blocked: [BlockedChange]) throws {
        let text = try encode(blocked)
        if try meta(db, "last_blocked") ?? "[]" != text { try setMeta(db, "last_blocked", text) }
    }

    /// What the last applied plan left blocked.
    public func lastBlocked() throws -> [BlockedChange] {
        try sql.read { db in
            guard let text = try meta(db, "last_blocked") else { return [] }
            return (try? decode([BlockedChange].self, text)) ?? []
        }
    }

    private func requireNotSuspended(_ db: any SQLSession) throws {
        if let suspension = try suspension(db) {
            throw CairnError("applying is suspended (by \(suspension.by) at \(Describe.time(suspension.at)))", hint: "run `cairn resume` to apply again")
        }
    }

    /// Refuses a saved plan made against another observed state; checked inside the first transaction.
    private func requireGeneration(_ db: any SQLSession, _ expected: Int?) throws {
        guard let expected else { return }
        let current = try generation(db)
        if current != expected { throw ReconcilePass.stalePlan(current: current, expected: expected) }
    }

    /// Most changes one step (one transaction) holds.
    public static let maximumStepSize = 500

    /// Groups changes into steps, one transaction each: consecutive changes of one phase, at
    /// most `maximumStepSize`, and a demote always in the step of the promotion it goes with,
    /// before it (rule 3: one champion per family at every commit).
    public static func steps(of plan: Plan) -> [[Change]] {
        var groups: [[Change]] = []
        var groupOfStage: [ManifestAddress: Int] = [:]
        for change in plan.changes where change.appliedWith == nil {
            if change.action == .stage { groupOfStage[change.address] = groups.count }
            groups.append([change])
        }
        for change in plan.changes {
            guard let with = change.appliedWith else { continue }
            if let i = groupOfStage[with] { groups[i].insert(change, at: 0) } else { groups.append([change]) }
        }
        var steps: [[Change]] = []
        var phase = -1
        for group in groups {
            let groupPhase = group.last!.action.phase
            if groupPhase == phase, let last = steps.last, last.count + group.count <= maximumStepSize {
                steps[steps.count - 1].append(contentsOf: group)
            } else {
                steps.append(group)
                phase = groupPhase
            }
        }
        return steps
    }

    /// On a database server, the ids of a step's new training runs, decided in one round trip so
    /// that the runs can be inserted with the step's other rows: the ids after the largest, as
    /// SQLite numbers them. Safe because write transactions run one at a time; and, unlike a
    /// sequence, a rolled-back step leaves no gap, so an interrupted apply numbers its runs as an
    /// uninterrupted one would. SQLite: none; each insert returns its id.
    private func reserveRunIDs(_ db: any SQLSession, count: Int) throws -> [Int] {
        guard count > 0, db is any DeferringSession else { return [] }
        let largest = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(id), 0) FROM training_runs") ?? 0
        return (largest + 1...largest + count).reversed()
    }

    /// Applies one change and its audit row; returns the run id for `train`.
    private func applyChange(_ db: any SQLSession, _ change: Change, at: Int64, revision: String, context: AuditContext,
                             runIDs: inout [Int]) throws -> Int? {
        var auditAfter = change.after
        var models: [String] = []
        var runID: Int?
        let name = change.name
        switch (change.action, change.kind) {
        case (.create, .outcomeWeights), (.update, .outcomeWeights):
            _ = try payload(change, OutcomeWeights.self)
            try upsertDefinition(db, table: "outcome_weights", name: name, spec: try storedText(change), at: at, revision: revision)
        case (.create, .template), (.update, .template):
            _ = try payload(change, Template.self)
            try upsertDefinition(db, table: "templates", name: name, spec: try storedText(change), at: at, revision: revision)
        case (.create, .model):
            let spec = try payload(change, Model.self)
            if let deferring = db as? any DeferringSession {
                deferring.deferInsert(into: "models", columns: ["name", "spec", "family", "stage", "lifecycle", "created_at", "updated_at", "revision"],
                                      values: SQLArguments([name, try storedText(change), spec.family, "none", spec.lifecycle.rawValue, at, at, revision]).values)
            } else {
                try db.execute(sql: """
                    INSERT INTO models(name, spec, family, stage, lifecycle, created_at, updated_at, revision) VALUES (?, ?, ?, 'none', ?, ?, ?, ?)
                    """, arguments: [name, try storedText(change), spec.family, spec.lifecycle.rawValue, at, at, revision])
            }
            models = [name]
        case (.update, .model):
            let spec = try payload(change, Model.self)
            try db.execute(sql: "UPDATE models SET spec = ?, family = ?, lifecycle = ?, updated_at = ?, revision = ? WHERE name = ?",
                           arguments: [try storedText(change), spec.family, spec.lifecycle.rawValue, at, revision, name])
            try requireChanged(db, change)
            models = [name]
        case (.stage, .model), (.demote, .model):
            let move = try payload(change, StageMove.self)
            if move.to == .champion, let family = move.family {
                let others = try String.fetchAll(db, sql: "SELECT name FROM models WHERE family = ? AND stage = 'champion' AND name != ?",
                                                 arguments: [family, name])
                if !others.isEmpty {
                    throw CairnError("refusing to make Model/\(name) champion: \(others.joined(separator: ", ")) is still champion of family \(family)",
                                     hint: "the plan must demote it in the same step; make a new plan")
                }
            }
            try db.execute(sql: "UPDATE models SET stage = ?, updated_at = ? WHERE name = ?", arguments: [move.to.rawValue, at, name])
            try requireChanged(db, change)
            models = [name]
        case (.train, .model):
            let request = try payload(change, TrainRequest.self)
            let requestText = try storedText(change)
            let id: Int
            if let deferring = db as? any DeferringSession, let reserved = runIDs.popLast() {
                id = reserved
                deferring.deferInsert(into: "training_runs", columns: ["id", "model", "fingerprint", "request", "state", "commit_sha", "created_at"],
                                      values: SQLArguments([id, name, request.fingerprint, requestText, "queued", request.commit, at]).values)
            } else {
                guard let returned = try Int.fetchOne(db, sql: """
                    INSERT INTO training_runs(model, fingerprint, request, state, commit_sha, created_at) VALUES (?, ?, ?, 'queued', ?, ?) RETURNING id
                    """, arguments: [name, request.fingerprint, requestText, request.commit, at]) else {
                    throw CairnError("queuing a training run for Model/\(name) returned no id")
                }
                id = returned
            }
            runID = id
            for old in request.supersedes {
                try db.execute(sql: """
                    UPDATE training_runs SET state = 'cancelled', reason = ?, finished_at = ?, lease_holder = NULL, lease_expires_at = NULL
                    WHERE id = ? AND state IN ('queued', 'running')
                    """, arguments: ["superseded by run \(id) (fingerprint \(request.fingerprint.prefix(8))…)", at, old])
            }
            // The stored request's hash: the run a worker executes is provably the one audited.
            auditAfter = .object(["run": .int(id), "fingerprint": .string(request.fingerprint),
                                  "supersedes": .array(request.supersedes.map { .int($0) }), "request": .string(sha256Hex(requestText))])
            models = [name]
        case (.approve, .model), (.reject, .model):
            let decision = try payload(change, Decision.self)
            try db.execute(sql: "UPDATE versions SET status = ?, status_reason = ?, decided_at = ? WHERE model = ? AND number = ?",
                           arguments: [decision.status.rawValue, change.reason, at, decision.model, decision.version])
            try requireChanged(db, change)
            if decision.status == .approved {
                try db.execute(sql: "UPDATE models SET first_ready_at = COALESCE(first_ready_at, ?) WHERE name = ?", arguments: [at, name])
            }
            models = [name]
        case (.promote, .servingTarget):
            let assignment = try payload(change, Assignment.self)
            try checkServable(db, assignment.routes, shadow: assignment.shadow, target: name)
            try db.execute(sql: """
                INSERT INTO serving_targets(name, tenant, surface, routes, shadow, assigned, drift, promoted_at, revision)
                VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET tenant = excluded.tenant, surface = excluded.surface, routes = excluded.routes,
                    shadow = excluded.shadow, assigned = 1, drift = excluded.drift, promoted_at = excluded.promoted_at, revision = excluded.revision
                """, arguments: [name, assignment.tenant, assignment.surface, try encode(assignment.routes), try encode(assignment.shadow),
                                 try assignment.drift.map(encode), at, revision])
            // The models it takes off the target are in its history too.
            let before = try? change.before?.decode(Assignment.self)
            models = (assignment.routes + assignment.shadow + (before?.routes ?? []) + (before?.shadow ?? [])).map(\.model)
        case (.archive, .outcomeWeights):
            try db.execute(sql: "UPDATE outcome_weights SET archived = 1, updated_at = ?, revision = ? WHERE name = ?", arguments: [at, revision, name])
        case (.archive, .template):
            try db.execute(sql: "UPDATE templates SET archived = 1, updated_at = ?, revision = ? WHERE name = ?", arguments: [at, revision, name])
        case (.archive, .model):
            if let target = try targetServing(db, model: name) {
                throw CairnError("Cannot archive model with active deployments. Remove it from serving targets first. (served by ServingTarget/\(target))")
            }
            guard let text = try String.fetchOne(db, sql: "SELECT spec FROM models WHERE name = ?", arguments: [name]) else {
                throw CairnError("Model/\(name) does not exist", hint: "make a new plan")
            }
            var spec = try decode(Model.self, text)
            spec.lifecycle = .archived
            try db.execute(sql: "UPDATE models SET spec = ?, lifecycle = 'archived', stage = 'none', updated_at = ?, revision = ? WHERE name = ?",
                           arguments: [try encode(spec), at, revision, name])
            models = [name]
        case (.discover, .model):
            let traits = try payload(change, DiscoveredTraits.self)
            try db.execute(sql: "UPDATE models SET discovered = ?, updated_at = ?, revision = ? WHERE name = ? AND lifecycle = 'draft'",
                           arguments: [try encode(traits), at, revision, name])
            try requireChanged(db, change)
            models = [name]
        case (.delete, .model):
            if let number = change.version {
                if let target = try targetServing(db, model: name, version: number) {
                    throw CairnError("Cannot delete a version with active deployments. Remove it from serving targets first. (\(name) v\(number) is served by ServingTarget/\(target))")
                }
                try db.execute(sql: "DELETE FROM versions WHERE model = ? AND number = ?", arguments: [name, number])
                try requireChanged(db, change)
            } else {
                if let target = try targetServing(db, model: name) {
                    throw CairnError("Cannot delete model with active deployments. Remove it from serving targets first. (served by ServingTarget/\(target))")
                }
                // Its runs go with it; never one a worker runs or a batch job may still follow.
                if let busy = try Int.fetchOne(db, sql: "SELECT id FROM training_runs WHERE model = ? AND (state = 'running' OR job_open = 1) ORDER BY id LIMIT 1",
                                                arguments: [name]) {
                    throw CairnError("refusing to delete Model/\(name): training run \(busy) is running or its batch job may be", hint: "make a new plan once it ends")
                }
                try db.execute(sql: "DELETE FROM run_results WHERE run_id IN (SELECT id FROM training_runs WHERE model = ?)", arguments: [name])
                try db.execute(sql: "DELETE FROM versions WHERE model = ?", arguments: [name])
                try db.execute(sql: "DELETE FROM training_runs WHERE model = ?", arguments: [name])
                try db.execute(sql: "DELETE FROM models WHERE name = ?", arguments: [name])
                try requireChanged(db, change)
            }
            models = [name]
        case (.archive, .servingTarget):
            let before = try? change.before?.decode(Assignment.self)
            try db.execute(sql: "UPDATE serving_targets SET assigned = 0, routes = '[]', shadow = '[]', drift = NULL, promoted_at = ?, revision = ? WHERE name = ?",
                           arguments: [at, revision, name])
            models = ((before?.routes ?? []) + (before?.shadow ?? [])).map(\.model)
        default:
            throw CairnError("cannot apply \(change.action.rawValue) to \(change.address)", hint: "this plan was not made by this version of Cairn")
        }
        try appendAudit(db, at: at, action: AuditAction(change.action), address: .manifest(change.address), version: change.action == .train ? nil : change.version,
                        before: change.before, after: auditAfter, reason: change.reason, file: change.file, context: context, models: models)
        return runID
    }

    private func payload<T: Decodable>(_ change: Change, _ type: T.Type) throws -> T {
        guard let after = change.after else { throw CairnError("\(change.action.rawValue) \(change.address) has no payload") }
        do {
            return try after.decode(T.self)
        } catch {
            throw CairnError("\(change.action.rawValue) \(change.address) has a malformed payload: \(error)")
        }
    }

    /// What a definition, model or request is stored as: its payload's JSON, which is what its
    /// type encodes to (the planner builds payloads with `JSONValue.from`, and `JSONTextTests`
    /// holds every golden plan's payloads to it); writing it directly saves encoding the value
    /// just decoded from it again (15 % of an apply's main thread at 10,000 models). The payload is decoded
    /// first all the same, so a malformed one is refused.
    private func storedText(_ change: Change) throws -> String {
        guard let after = change.after else { throw CairnError("\(change.action.rawValue) \(change.address) has no payload") }
        return try encode(after)
    }

    private func requireChanged(_ db: any SQLSession, _ change: Change) throws {
        if db.changesCount == 0 {
            throw CairnError("\(change.action.rawValue) \(change.address) found nothing to change", hint: "the observed state moved; make a new plan")
        }
    }

    private func upsertDefinition(_ db: any SQLSession, table: String, name: String, spec: String, at: Int64, revision: String) throws {
        try db.execute(sql: """
            INSERT INTO \(table)(name, spec, archived, created_at, updated_at, revision) VALUES (?, ?, 0, ?, ?, ?)
            ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, archived = 0, updated_at = excluded.updated_at, revision = excluded.revision
            """, arguments: [name, spec, at, at, revision])
    }

    /// Rule 2 at the last moment: every served version exists, is approved, and its model is active.
    func checkServable(_ db: any SQLSession, _ routes: [LiveRoute], shadow: [LiveRoute], target: String) throws {
        for route in routes + shadow {
            let row = try SQLRow.fetchOne(db, sql: """
                SELECT v.status, m.lifecycle FROM versions v JOIN models m ON m.name = v.model WHERE v.model = ? AND v.number = ?
                """, arguments: [route.model, route.version])
            guard let row else {
                throw CairnError("refusing to promote ServingTarget/\(target): \(route.model) v\(route.version) does not exist")
            }
            let status: String = row["status"], lifecycle: String = row["lifecycle"]
            let isShadow = !routes.contains(route)
            if lifecycle != "active" || (status != "approved" && !(isShadow && status == "pending")) {
                throw CairnError("refusing to promote ServingTarget/\(target): \(route.model) v\(route.version) is \(status), model \(lifecycle)",
                                 hint: "make a new plan")
            }
        }
    }

    func targetServing(_ db: any SQLSession, model: String, version: Int? = nil) throws -> String? {
        for row in try SQLRow.fetchAll(db, sql: "SELECT name, routes, shadow FROM serving_targets WHERE assigned = 1 ORDER BY name") {
            let live = try decode([LiveRoute].self, row["routes"]) + (try decode([LiveRoute].self, row["shadow"]))
            if live.contains(where: { $0.model == model && (version == nil || $0.version == version) }) { return row["name"] }
        }
        return nil
    }
}
