import CairnCore
import CairnReconcile
import Foundation

extension RegistryDatabase {
    /// Claims the oldest queued run that is due, under a lease for `holder`.
    public func claimRun(holder: String, leaseSeconds: Int64 = 60, now: Int64) throws -> ClaimedRun? {
        try sql.write { db in
            // Every write transaction already runs alone (the registry's writer lock), which is what
            // makes a claim safe; on PostgreSQL the row is also locked, skipping rows another
            // transaction holds, so a claim stays safe if writes ever run side by side.
            guard let row = try SQLRow.fetchOne(db, sql: """
                SELECT id, model, request, attempts, job, job_open FROM training_runs
                WHERE state = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT 1
                """ + (db.dialect == .postgres ? " FOR UPDATE SKIP LOCKED" : ""), arguments: [now]) else { return nil }
            let id: Int = row["id"]
            let attempt: Int = row["attempts"] + 1
            try db.execute(sql: """
                UPDATE training_runs SET state = 'running', started_at = ?, attempts = ?, lease_holder = ?, lease_expires_at = ? WHERE id = ?
                """, arguments: [now, attempt, holder, now + leaseSeconds, id])
            try bumpGeneration(db)
            let open: Int = row["job_open"]
            let job = open == 1 ? (row["job"] as String?).flatMap { try? decode(RunJob.self, $0) } : nil
            let request = try decode(TrainRequest.self, row["request"])
            var claimed = ClaimedRun(id: id, model: row["model"], request: request, attempt: attempt, job: job)
            // Pinned here, in the claim's transaction: what the run learns from is what the registry held when it started.
            claimed.feedback = try feedbackSnapshot(db, template: request.template.metadata.name)
            return claimed
        }
    }

    /// Records the job a run was handed to, while `holder` holds the run.
    public func recordRunJob(_ id: Int, holder: String, job: RunJob) throws {
        try sql.write { db in
            try db.execute(sql: "UPDATE training_runs SET job = ?, job_open = 1 WHERE id = ? AND state = 'running' AND lease_holder = ?",
                           arguments: [try encode(job), id, holder])
            guard db.changesCount == 1 else {
                throw CairnError("training run \(id) is no longer held by this worker", hint: "its job \(job.id) is cancelled")
            }
        }
    }

    /// The run's job has ended (followed to its end, or cancelled because its run ended).
    public func closeRunJob(_ id: Int) throws {
        try sql.write { db in try db.execute(sql: "UPDATE training_runs SET job_open = 0 WHERE id = ?", arguments: [id]) }
    }

    /// Runs that ended (succeeded, failed, cancelled) whose job may still be running.
    public func openJobsOfEndedRuns() throws -> [(run: Int, job: RunJob)] {
        try sql.read { db in
            try SQLRow.fetchAll(db, sql: """
                SELECT id, job FROM training_runs WHERE job_open = 1 AND state IN ('succeeded', 'failed', 'cancelled') ORDER BY id
                """).compactMap { row in
                guard let text: String = row["job"], let job = try? decode(RunJob.self, text) else { return nil }
                return (row["id"], job)
            }
        }
    }

    /// The log of a run still running, as its trainer has it so far (`cairn logs` shows it).
    public func updateRunLog(_ id: Int, holder: String, log: String) throws {
        try sql.write { db in
            try db.execute(sql: "UPDATE training_runs SET log = ? WHERE id = ? AND state = 'running' AND lease_holder = ?", arguments: [log, id, holder])
        }
    }

    /// The state of a run and its lease holder; nil if it does not exist.
    public func runState(_ id: Int) throws -> (state: String, holder: String?)? {
        try sql.read { db in
            try SQLRow.fetchOne(db, sql: "SELECT state, lease_holder FROM training_runs WHERE id = ?", arguments: [id]).map { ($0["state"], $0["lease_holder"]) }
        }
    }

    /// What deciding the next version of `model` depends on: its number, the model's approval
    /// policy and its approved versions' metrics.
    public func versionInputs(model: String) throws -> VersionInputs {
        try sql.read { db in try versionInputs(db, model: model) }
    }

    private func versionInputs(_ db: any SQLSession, model: String) throws -> VersionInputs {
        let number = try nextNumber(db, model)
        let spec = try String.fetchOne(db, sql: "SELECT spec FROM models WHERE name = ?", arguments: [model]).map { try decode(Model.self, $0) }
        let approved = try SQLRow.fetchAll(db, sql: "SELECT metrics FROM versions WHERE model = ? AND status = 'approved' ORDER BY number",
                                        arguments: [model]).map { try decode([String: Double].self, $0["metrics"]) }
        var artifacts: [String: Int] = [:]
        for row in try SQLRow.fetchAll(db, sql: """
            SELECT number, fingerprint, artifact_hash FROM versions WHERE model = ? AND artifact_hash IS NOT NULL ORDER BY number
            """, arguments: [model]) {
            let key = VersionInputs.artifactKey(fingerprint: row["fingerprint"], hash: row["artifact_hash"])
            if artifacts[key] == nil { artifacts[key] = row["number"] }
        }
        return VersionInputs(number: number, approval: spec?.approval, approvedMetrics: approved, artifacts: artifacts)
    }

    /// Inside a recording transaction: what the caller decided on is still what the registry holds.
    private func requireInputs(_ db: any SQLSession, _ inputs: VersionInputs, model: String, run id: Int) throws {
        guard try versionInputs(db, model: model) == inputs else {
            throw CairnError("Model/\(model) moved while training run \(id) was being recorded", hint: "record it again", reason: .inputsMoved)
        }
    }

    /// Records a successful run as the model's next version (never overwriting one), with the
    /// decision the caller made (`ApprovalPolicy`), and why. Refused with `.inputsMoved` when
    /// the number, the approval policy or the approved versions changed since `inputs` was read:
    /// the caller decides (and signs) again.
    @discardableResult
    public func recordVersion(run id: Int, holder: String, success: RunSuccess, inputs: VersionInputs, decision: ApprovalPolicy.Decision?,
                              now: Int64) throws -> ModelVersion {
        try sql.write { db in
            let run = try runForFinish(db, id, holder: holder)
            let request = try decode(TrainRequest.self, run["request"])
            let model: String = run["model"]
            try requireInputs(db, inputs, model: model, run: id)
            let number = inputs.number
            let display = request.template.displayName ?? request.template.metadata.name
            var version = ModelVersion(model: model, number: number, systemName: "\(display) · train-\(id)-\(now)",
                                       status: .pending, metrics: success.metrics, fingerprint: request.fingerprint,
                                       fingerprintInputs: request.inputs, datasetHash: success.datasetHash, commit: request.commit,
                                       trainerVersion: success.trainerVersion, runID: id, createdAt: now,
                                       artifactHash: success.artifactHash, artifactSignature: success.artifactSignature,
                                       learned: success.learned, tuning: success.tuning)
            let context = AuditContext(revision: request.commit, author: nil, actor: "worker")
            try db.execute(sql: """
                INSERT INTO versions(model, number, system_name, status, metrics, fingerprint, fingerprint_inputs, dataset_hash, commit_sha,
                    trainer_version, run_id, created_at, artifact_hash, artifact_signature, samples, feedback_samples, feedback_through, tuning)
                VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [model, number, version.systemName, try encode(success.metrics), version.fingerprint, try encode(request.inputs),
                                 success.datasetHash, request.commit, success.trainerVersion, id, now, success.artifactHash, success.artifactSignature,
                                 success.learned?.samples, success.learned?.feedbackSamples, success.learned?.feedbackThrough,
                                 try success.tuning.map(encode)])
            try db.execute(sql: """
                UPDATE training_runs SET state = 'succeeded', finished_at = ?, version = ?, metrics = ?, log = ?, lease_holder = NULL WHERE id = ?
                """, arguments: [now, number, try encode(success.metrics), success.log, id])
            try db.execute(sql: "DELETE FROM run_results WHERE run_id = ?", arguments: [id])
            try appendAudit(db, at: now, action: .version, address: .model(model), version: number, before: nil,
                            after: .object(["run": .int(id), "fingerprint": .string(request.fingerprint),
                                            "metrics": .object(success.metrics.mapValues { .double($0) })]
                                            .merging(success.learned.map { ["learned": .from($0)] } ?? [:]) { a, _ in a }
                                            .merging(success.tuning.map { ["tuning": .object(["chosen": .int($0.chosen), "trials": .int($0.trials.count),
                                                                                                "params": .object($0.chosenTrial?.params ?? [:])])] } ?? [:]) { a, _ in a }),
                            reason: "training run \(id) succeeded: \(version.systemName)", file: nil, context: context, models: [model])
            if let decision {
                version.status = decision.status
                version.statusReason = decision.reason
                try db.execute(sql: "UPDATE versions SET status = ?, status_reason = ?, decided_at = ? WHERE model = ? AND number = ?",
                               arguments: [decision.status.rawValue, decision.reason, now, model, number])
                if decision.status == .approved {
                    try db.execute(sql: "UPDATE models SET first_ready_at = COALESCE(first_ready_at, ?) WHERE name = ?", arguments: [now, model])
                }
                try appendAudit(db, at: now, action: decision.status == .approved ? .approve : .reject, address: .model(model), version: number,
                                before: .string("pending"), after: .from(Decision(model: model, version: number, status: decision.status)),
                                reason: decision.reason, file: nil, context: context, models: [model])
            }
            try bumpGeneration(db)
            return version
        }
    }

    /// Records a run whose artifact is identical to version `version`'s: succeeded, naming it.
    public func recordMatch(run id: Int, holder: String, matches version: Int, inputs: VersionInputs, log: String, now: Int64) throws {
        try sql.write { db in
            let run = try runForFinish(db, id, holder: holder)
            let model: String = run["model"]
            try requireInputs(db, inputs, model: model, run: id)
            let reason = "artifact identical to v\(version): no new version"
            try db.execute(sql: """
                UPDATE training_runs SET state = 'succeeded', finished_at = ?, version = ?, reason = ?, log = ?, lease_holder = NULL WHERE id = ?
                """, arguments: [now, version, reason, log, id])
            try db.execute(sql: "DELETE FROM run_results WHERE run_id = ?", arguments: [id])
            try appendAudit(db, at: now, action: .unchanged, address: .model(model), version: version, before: nil,
                            after: .object(["run": .int(id)]), reason: "training run \(id) succeeded: \(reason)", file: nil,
                            context: AuditContext(revision: run["commit_sha"], author: nil, actor: "worker"), models: [model])
            try bumpGeneration(db)
        }
    }

    /// Records a failed run. The model's definition and live versions are untouched (rule 6).
    public func failRun(_ id: Int, holder: String, reason: String, log: String = "", now: Int64) throws {
        try sql.write { db in
            let run = try runForFinish(db, id, holder: holder)
            try db.execute(sql: "UPDATE training_runs SET state = 'failed', reason = ?, finished_at = ?, log = ?, lease_holder = NULL WHERE id = ?",
                           arguments: [reason, now, log, id])
            try db.execute(sql: "DELETE FROM run_results WHERE run_id = ?", arguments: [id])
            try appendAudit(db, at: now, action: .fail, address: .model(run["model"]), version: nil, before: nil,
                            after: .object(["run": .int(id)]), reason: "training run \(id) failed: \(reason)", file: nil,
                            context: AuditContext(revision: run["commit_sha"], author: nil, actor: "worker"), models: [run["model"]])
            try bumpGeneration(db)
        }
    }

    /// Keeps a finished run's result for the control plane (`submittedResults`), which verifies
    /// its artifact in the store, signs and records it. The run stays `running`, held by
    /// `holder`; it is not re-queued when its lease expires.
    public func submitResult(run id: Int, holder: String, success: RunSuccess, now: Int64) throws {
        try sql.write { db in
            _ = try runForFinish(db, id, holder: holder)
            try db.execute(sql: "INSERT INTO run_results(run_id, holder, result, submitted_at) VALUES (?, ?, ?, ?)",
                           arguments: [id, holder, try encode(success), now])
            try bumpGeneration(db)
        }
    }

    /// Results submitted and not recorded yet, oldest run first.
    public func submittedResults() throws -> [SubmittedResult] {
        try sql.read { db in
            try SQLRow.fetchAll(db, sql: """
                SELECT r.run_id, r.holder, r.result, t.model, t.request, t.attempts FROM run_results r JOIN training_runs t ON t.id = r.run_id
                WHERE t.state = 'running' ORDER BY r.run_id
                """).map { row in
                SubmittedResult(run: ClaimedRun(id: row["run_id"], model: row["model"], request: try decode(TrainRequest.self, row["request"]),
                                                attempt: row["attempts"]),
                                holder: row["holder"], success: try decode(RunSuccess.self, row["result"]))
            }
        }
    }

    /// Extends a running run's lease; false if this worker no longer holds it.
    public func heartbeat(_ id: Int, holder: String, leaseSeconds: Int64 = 60, now: Int64) throws -> Bool {
        try sql.write { db in
            try db.execute(sql: "UPDATE training_runs SET lease_expires_at = ? WHERE id = ? AND state = 'running' AND lease_holder = ?",
                           arguments: [now + leaseSeconds, id, holder])
            return db.changesCount == 1
        }
    }

    /// Re-queues runs whose worker died (lease expired), with exponential backoff
    /// (`baseDelay`, twice that, four times … capped at 1h); a run out of attempts fails.
    /// Returns the affected run ids.
    @discardableResult
    public func requeueExpiredRuns(now: Int64, baseDelay: Int64 = 30) throws -> [Int] {
        try sql.write { db in
            let rows = try SQLRow.fetchAll(db, sql: """
                SELECT id, model, attempts, max_attempts, commit_sha, job_open FROM training_runs
                WHERE state = 'running' AND lease_expires_at < ? AND id NOT IN (SELECT run_id FROM run_results) ORDER BY id
                """, arguments: [now])
            for row in rows {
                let id: Int = row["id"], attempts: Int = row["attempts"], maxAttempts: Int = row["max_attempts"]
                let model: String = row["model"]
                if attempts >= maxAttempts {
                    let reason = "worker lost \(attempts) times (lease expired); giving up after \(maxAttempts) attempts"
                    try db.execute(sql: "UPDATE training_runs SET state = 'failed', reason = ?, finished_at = ?, lease_holder = NULL WHERE id = ?",
                                   arguments: [reason, now, id])
                    try appendAudit(db, at: now, action: .fail, address: .model(model), version: nil, before: nil, after: .object(["run": .int(id)]),
                                    reason: "training run \(id) failed: \(reason)", file: nil,
                                    context: AuditContext(revision: row["commit_sha"], author: nil, actor: "worker"), models: [model])
                } else if (row["job_open"] as Int) == 1 {
                    // Its job runs on without the worker: the next worker re-attaches at once.
                    try db.execute(sql: """
                        UPDATE training_runs SET state = 'queued', reason = ?, next_attempt_at = NULL, lease_holder = NULL, lease_expires_at = NULL
                        WHERE id = ?
                        """, arguments: ["worker lost (lease expired); the next worker re-attaches to its job (attempt \(attempts + 1) of \(maxAttempts))", id])
                } else {
                    let delay = min(baseDelay << Int64(max(0, attempts - 1)), 3600)
                    try db.execute(sql: """
                        UPDATE training_runs SET state = 'queued', reason = ?, next_attempt_at = ?, lease_holder = NULL, lease_expires_at = NULL
                        WHERE id = ?
                        """, arguments: ["worker lost (lease expired); retry \(attempts + 1) of \(maxAttempts) after \(delay)s", now + delay, id])
                }
            }
            if !rows.isEmpty { try bumpGeneration(db) }
            return rows.map { $0["id"] }
        }
    }

    /// The folder names (`run-<id>-<attempt>`) of runs a worker is running now, under a lease
    /// that has not expired, and the folders of jobs still running for runs not ended (a job
    /// writes to its folder whether or not a worker follows it): everything else in a work
    /// folder is a leftover.
    public func liveRunFolders(now: Int64) throws -> Set<String> {
        try sql.read { db in
            var live = Set(try SQLRow.fetchAll(db, sql: "SELECT id, attempts FROM training_runs WHERE state = 'running' AND lease_expires_at >= ?", arguments: [now])
                .map { row -> String in let id: Int = row["id"], attempt: Int = row["attempts"]; return "run-\(id)-\(attempt)" })
            for row in try SQLRow.fetchAll(db, sql: "SELECT job FROM training_runs WHERE job_open = 1 AND state IN ('queued', 'running')") {
                if let text: String = row["job"], let job = try? decode(RunJob.self, text) { live.insert(job.folder) }
            }
            return live
        }
    }

    /// Hands a running run back to the queue (the worker is shutting down); the attempt is not counted.
    public func releaseRun(_ id: Int, holder: String) throws {
        try sql.write { db in
            try db.execute(sql: """
                UPDATE training_runs SET state = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, lease_holder = NULL, lease_expires_at = NULL,
                    reason = 'handed back by a stopping worker'
                WHERE id = ? AND state = 'running' AND lease_holder = ?
                """, arguments: [id, holder])
            if db.changesCount > 0 { try bumpGeneration(db) }
        }
    }

    /// Queued and running runs, for progress lines.
    public func activeRunCounts() throws -> (queued: Int, running: Int) {
        try sql.read { db in
            (try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM training_runs WHERE state = 'queued'") ?? 0,
             try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM training_runs WHERE state = 'running'") ?? 0)
        }
    }

    /// Training runs per state.
    public func runStateCounts() throws -> [String: Int] {
        try sql.read { db in
            Dictionary(uniqueKeysWithValues: try SQLRow.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM training_runs GROUP BY state").map {
                ($0["state"] as String, $0["n"] as Int)
            })
        }
    }

    /// The next version number a model's run will most likely get.
    public func nextVersionNumber(_ model: String) throws -> Int {
        try sql.read { db in try nextNumber(db, model) }
    }

    /// One past the highest number the model ever had: a deleted version's number is never given
    /// again (its runs keep it), so `model@N` always names one artifact.
    func nextNumber(_ db: any SQLSession, _ model: String) throws -> Int {
        max(try Int.fetchOne(db, sql: "SELECT MAX(number) FROM versions WHERE model = ?", arguments: [model]) ?? 0,
            try Int.fetchOne(db, sql: "SELECT MAX(version) FROM training_runs WHERE model = ?", arguments: [model]) ?? 0) + 1
    }

    private func runForFinish(_ db: any SQLSession, _ id: Int, holder: String) throws -> SQLRow {
        guard let run = try SQLRow.fetchOne(db, sql: "SELECT * FROM training_runs WHERE id = ?", arguments: [id]) else {
            throw CairnError("training run \(id) does not exist")
        }
        guard (run["state"] as String) == "running", (run["lease_holder"] as String?) == holder else {
            throw CairnError("training run \(id) is no longer held by this worker (state \(run["state"] as String))",
                             hint: "its lease expired and it was handed to another worker")
        }
        return run
    }
}
