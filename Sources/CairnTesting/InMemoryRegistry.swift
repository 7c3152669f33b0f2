import CairnCore
import CairnReconcile
import Foundation

/// The registry twin: the observed state, the run queue, the lease and the audit actions in
/// memory, with the same rules as the SQLite registry for what a test can observe (one
/// generation bump per write, suspended applies refused, stale saved plans refused, the gated
/// decision recorded as given, versions never overwritten). No SQL, so nothing to tamper with:
/// `stateMismatches` is always empty.
public final class InMemoryRegistry: RegistryStore, @unchecked Sendable {
    struct Run {
        var id: Int
        var model: String
        var fingerprint: String
        var request: TrainRequest
        var state: TrainingRun.State
        var attempts = 0
        var holder: String?
        var leaseExpires: Int64?
        var nextAttempt: Int64?
        var reason: String?
        var createdAt: Int64
        var finishedAt: Int64?
        var version: Int?
        var job: RunJob?
        var jobOpen = false
        var log = ""
    }

    /// One audit row, typed.
    public struct Row: Sendable, Equatable {
        public var action: AuditAction
        public var address: AuditAddress
        public var version: Int?
        public var reason: String
    }

    private let lock = NSLock()
    private var state = ObservedState()
    private var storedEvidence = Evidence()
    private var runs: [Int: Run] = [:]
    private var nextRunID = 1
    private var lease: (holder: String, pid: Int32, host: String, since: Int64, expires: Int64)?
    private var bound: BoundSource?
    /// Results submitted by workers without the signing key, by run.
    private var results: [Int: (holder: String, success: RunSuccess)] = [:]
    private var _audit: [Row] = []
    private var _failedPasses: [String] = []
    /// Called after every write (the daemon's worker wakes the loop this way in the binary).
    public var onWrite: (@Sendable () -> Void)?

    public let location = "memory"

    public init() {}

    private func write<T>(_ body: () throws -> T) rethrows -> T {
        let result = try lock.withLock(body)
        onWrite?()
        return result
    }

    public var audit: [Row] { lock.withLock { _audit } }
    /// `result` of every pass recorded as failed.
    public var failedPasses: [String] { lock.withLock { _failedPasses } }

    public func tryAcquireLease(_ holder: LeaseHolder, ttl: Int64, now: Int64) throws -> LeaseConflict? {
        lock.withLock {
            if let lease, lease.holder != holder.id, lease.expires > now {
                return LeaseConflict(pid: Int(lease.pid), host: lease.host, since: lease.since)
            }
            lease = (holder.id, holder.pid, holder.host, now, now + ttl)
            return nil
        }
    }

    public func releaseLease(_ holder: LeaseHolder) throws {
        lock.withLock { if lease?.holder == holder.id { lease = nil } }
    }

    public func boundSource() throws -> BoundSource? { lock.withLock { bound } }

    public func bindSource(_ source: BoundSource) throws { lock.withLock { if bound == nil { bound = source } } }

    public func stateMismatches() throws -> [String] { [] }

    public func generation() throws -> Int { lock.withLock { state.generation } }

    /// The online evidence plans read (set by tests).
    public var onlineEvidence: Evidence {
        get { lock.withLock { storedEvidence } }
        set { lock.withLock { storedEvidence = newValue } }
    }

    public func evidence(_ request: EvidenceRequest) throws -> Evidence { onlineEvidence }

    public func observedState() throws -> ObservedState {
        lock.withLock {
            var observed = state
            observed.models = observed.models.mapValues { m in
                var m = m
                m.versions = ObservedModel.labelled(m.versions, by: m.spec)
                return m
            }
            observed.runs = runs.values.sorted { $0.id < $1.id }.map {
                TrainingRun(id: $0.id, model: $0.model, fingerprint: $0.fingerprint, state: $0.state, reason: $0.reason, createdAt: $0.createdAt,
                            finishedAt: $0.finishedAt, version: $0.version)
            }
            return observed
        }
    }

    /// Suspends or resumes applying, as `cairn suspend` does.
    public func setSuspended(_ suspended: Bool) {
        write {
            state.suspended = suspended
            state.generation += 1
            _audit.append(Row(action: suspended ? .suspend : .resume, address: .applier, version: nil, reason: "test"))
        }
    }

    public func apply(_ plan: Plan, holder: LeaseHolder, context: AuditContext, expectedGeneration: Int?, now: @escaping () -> Int64) throws -> ApplyResult {
        try write {
            guard lease?.holder == holder.id else { throw CairnError("lost the applier lease") }
            if state.suspended { throw CairnError("applying is suspended", hint: "run `cairn resume` to apply again") }
            if let expectedGeneration, expectedGeneration != state.generation {
                throw ReconcilePass.stalePlan(current: state.generation, expected: expectedGeneration)
            }
            // All or nothing: work on copies, keep them only if every change applies.
            var (next, queue, nextID, rows) = (state, runs, nextRunID, _audit)
            var result = ApplyResult()
            let at = now()
            for change in plan.changes {
                let name = change.name
                switch (change.action, change.kind) {
                case (.create, .outcomeWeights), (.update, .outcomeWeights):
                    next.weights[name] = ObservedWeights(spec: try payload(change))
                case (.create, .template), (.update, .template):
                    next.templates[name] = ObservedTemplate(spec: try payload(change))
                case (.create, .model):
                    next.models[name] = ObservedModel(spec: try payload(change), stage: Model.Stage.none)
                case (.update, .model):
                    guard next.models[name] != nil else { throw CairnError("\(change.address) found nothing to change") }
                    next.models[name]?.spec = try payload(change)
                case (.stage, .model), (.demote, .model):
                    let move: StageMove = try payload(change)
                    guard next.models[name] != nil else { throw CairnError("\(change.address) found nothing to change") }
                    next.models[name]?.stage = move.to
                case (.train, .model):
                    let request: TrainRequest = try payload(change)
                    queue[nextID] = Run(id: nextID, model: name, fingerprint: request.fingerprint, request: request, state: .queued, createdAt: at)
                    for old in request.supersedes where queue[old]?.state == .queued || queue[old]?.state == .running {
                        queue[old]?.state = .cancelled
                        queue[old]?.reason = "superseded by run \(nextID)"
                        queue[old]?.finishedAt = at
                        queue[old]?.holder = nil
                    }
                    result.enqueuedRuns[name] = nextID
                    nextID += 1
                case (.approve, .model), (.reject, .model):
                    let decision: Decision = try payload(change)
                    guard let i = next.models[name]?.versions.firstIndex(where: { $0.number == decision.version }) else {
                        throw CairnError("\(change.address) v\(decision.version) found nothing to change")
                    }
                    next.models[name]?.versions[i].status = decision.status
                    next.models[name]?.versions[i].statusReason = change.reason
                    if decision.status == .approved, next.models[name]?.firstReadyAt == nil { next.models[name]?.firstReadyAt = at }
                case (.promote, .servingTarget):
                    let a: Assignment = try payload(change)
                    next.targets[name] = ObservedTarget(name: name, tenant: a.tenant, surface: a.surface, routes: a.routes, shadow: a.shadow)
                case (.archive, .outcomeWeights):
                    next.weights[name]?.archived = true
                case (.archive, .template):
                    next.templates[name]?.archived = true
                case (.archive, .model):
                    next.models[name]?.spec.lifecycle = .archived
                    next.models[name]?.stage = Model.Stage.none
                case (.archive, .servingTarget):
                    next.targets[name]?.assigned = false
                    next.targets[name]?.routes = []
                    next.targets[name]?.shadow = []
                case (.discover, .model):
                    guard next.models[name]?.spec.lifecycle == .draft else { throw CairnError("\(change.address) found nothing to change") }
                    next.models[name]?.discovered = try payload(change)
                case (.delete, .model):
                    let served = next.targets.values.filter { $0.assigned && ($0.routes + $0.shadow).contains { $0.model == name && (change.version == nil || $0.version == change.version) } }
                    if let target = served.map(\.name).min() {
                        throw CairnError("Cannot delete \(change.version == nil ? "model" : "a version") with active deployments. Remove it from serving targets first. (served by ServingTarget/\(target))")
                    }
                    if let number = change.version {
                        next.models[name]?.versions.removeAll { $0.number == number }
                    } else {
                        if let busy = queue.values.first(where: { $0.model == name && ($0.state == .running || $0.jobOpen) }) {
                            throw CairnError("refusing to delete Model/\(name): training run \(busy.id) is running or its batch job may be")
                        }
                        next.models[name] = nil
                        for (id, run) in queue where run.model == name { queue[id] = nil }
                    }
                default:
                    throw CairnError("cannot apply \(change.action.rawValue) to \(change.address)")
                }
                rows.append(Row(action: AuditAction(change.action), address: .manifest(change.address), version: change.version, reason: change.reason))
                result.applied += 1
            }
            if !plan.changes.isEmpty {
                next.generation += 1
                result.steps = 1
            }
            next.lastAppliedRevision = plan.revision
            (state, runs, nextRunID, _audit) = (next, queue, nextID, rows)
            return result
        }
    }

    private func payload<T: Decodable>(_ change: Change) throws -> T {
        guard let after = change.after else { throw CairnError("\(change.action.rawValue) \(change.address) has no payload") }
        return try after.decode(T.self)
    }

    public func recordFailedPass(revision: String?, revisionName: String?, result: String, message: String, at: Int64) throws {
        lock.withLock { _failedPasses.append(result) }
    }

    public func activeRunCounts() throws -> (queued: Int, running: Int) {
        lock.withLock { (runs.values.filter { $0.state == .queued }.count, runs.values.filter { $0.state == .running }.count) }
    }

    public func runStateCounts() throws -> [String: Int] {
        lock.withLock { Dictionary(grouping: runs.values, by: \.state.rawValue).mapValues(\.count) }
    }

    public func requeueExpiredRuns(now: Int64, baseDelay: Int64) throws -> [Int] {
        try write {
            let expired = runs.values.filter { $0.state == .running && ($0.leaseExpires ?? .max) < now && results[$0.id] == nil }.map(\.id).sorted()
            for id in expired {
                let attempts = runs[id]!.attempts
                if attempts >= 3 {
                    runs[id]?.state = .failed
                    runs[id]?.reason = "worker lost \(attempts) times (lease expired)"
                    runs[id]?.finishedAt = now
                } else {
                    runs[id]?.state = .queued
                    let jobOpen = runs[id]!.jobOpen
                    runs[id]?.nextAttempt = jobOpen ? nil : now + min(baseDelay << Int64(max(0, attempts - 1)), 3600)
                }
                runs[id]?.holder = nil
            }
            if !expired.isEmpty { state.generation += 1 }
            return expired
        }
    }

    public func claimRun(holder: String, leaseSeconds: Int64, now: Int64) throws -> ClaimedRun? {
        try write {
            guard let run = runs.values.filter({ $0.state == .queued && ($0.nextAttempt ?? 0) <= now }).min(by: { $0.id < $1.id }) else { return nil }
            runs[run.id]?.state = .running
            runs[run.id]?.attempts += 1
            runs[run.id]?.holder = holder
            runs[run.id]?.leaseExpires = now + leaseSeconds
            state.generation += 1
            return ClaimedRun(id: run.id, model: run.model, request: run.request, attempt: run.attempts + 1, job: run.jobOpen ? run.job : nil)
        }
    }

    public func heartbeat(_ id: Int, holder: String, leaseSeconds: Int64, now: Int64) throws -> Bool {
        lock.withLock {
            guard runs[id]?.state == .running, runs[id]?.holder == holder else { return false }
            runs[id]?.leaseExpires = now + leaseSeconds
            return true
        }
    }

    public func releaseRun(_ id: Int, holder: String) throws {
        try write {
            guard runs[id]?.state == .running, runs[id]?.holder == holder else { return }
            runs[id]?.state = .queued
            runs[id]?.attempts -= 1
            runs[id]?.holder = nil
            state.generation += 1
        }
    }

    private func requireInputs(_ expected: VersionInputs, model: String, run id: Int) throws {
        guard inputs(model) == expected else {
            throw CairnError("Model/\(model) moved while training run \(id) was being recorded", reason: .inputsMoved)
        }
    }

    private func held(_ id: Int, by holder: String) throws -> Run {
        guard let run = runs[id], run.state == .running, run.holder == holder else {
            throw CairnError("training run \(id) is no longer held by this worker")
        }
        return run
    }

    public func failRun(_ id: Int, holder: String, reason: String, log: String, now: Int64) throws {
        try write {
            let run = try held(id, by: holder)
            runs[id]?.state = .failed
            runs[id]?.reason = reason
            runs[id]?.finishedAt = now
            runs[id]?.holder = nil
            _audit.append(Row(action: .fail, address: .model(run.model), version: nil, reason: "training run \(id) failed: \(reason)"))
            state.generation += 1
        }
    }

    public func submitResult(run id: Int, holder: String, success: RunSuccess, now: Int64) throws {
        try write {
            _ = try held(id, by: holder)
            results[id] = (holder, success)
            state.generation += 1
        }
    }

    public func submittedResults() throws -> [SubmittedResult] {
        lock.withLock {
            results.keys.sorted().compactMap { id in
                guard let run = runs[id], run.state == .running, let result = results[id] else { return nil }
                return SubmittedResult(run: ClaimedRun(id: id, model: run.model, request: run.request, attempt: run.attempts),
                                       holder: result.holder, success: result.success)
            }
        }
    }

    public func versionInputs(model: String) throws -> VersionInputs {
        lock.withLock { inputs(model) }
    }

    private func inputs(_ model: String) -> VersionInputs {
        let versions = state.models[model]?.versions ?? []
        var artifacts: [String: Int] = [:]
        for v in versions.sorted(by: { $0.number < $1.number }) {
            if let hash = v.artifactHash {
                let key = VersionInputs.artifactKey(fingerprint: v.fingerprint, hash: hash)
                if artifacts[key] == nil { artifacts[key] = v.number }
            }
        }
        return VersionInputs(number: max(versions.map(\.number).max() ?? 0, runs.values.filter { $0.model == model }.compactMap(\.version).max() ?? 0) + 1, approval: state.models[model]?.spec.approval,
                             approvedMetrics: versions.filter { $0.status == .approved }.sorted { $0.number < $1.number }.map(\.metrics),
                             artifacts: artifacts)
    }

    public func recordVersion(run id: Int, holder: String, success: RunSuccess, inputs expected: VersionInputs, decision: ApprovalPolicy.Decision?,
                              now: Int64) throws -> ModelVersion {
        try write {
            let run = try held(id, by: holder)
            try requireInputs(expected, model: run.model, run: id)
            var version = ModelVersion(model: run.model, number: expected.number, systemName: "\(run.model) · train-\(id)-\(now)",
                                       status: .pending, metrics: success.metrics, fingerprint: run.fingerprint, fingerprintInputs: run.request.inputs,
                                       datasetHash: success.datasetHash, commit: run.request.commit, trainerVersion: success.trainerVersion,
                                       runID: id, createdAt: now, artifactHash: success.artifactHash, artifactSignature: success.artifactSignature)
            _audit.append(Row(action: .version, address: .model(run.model), version: version.number, reason: "training run \(id) succeeded"))
            if let decision {
                version.status = decision.status
                version.statusReason = decision.reason
                if decision.status == .approved, state.models[run.model]?.firstReadyAt == nil { state.models[run.model]?.firstReadyAt = now }
                _audit.append(Row(action: decision.status == .approved ? .approve : .reject, address: .model(run.model), version: version.number,
                                  reason: decision.reason))
            }
            state.models[run.model]?.versions.append(version)
            runs[id]?.state = .succeeded
            runs[id]?.version = version.number
            runs[id]?.finishedAt = now
            runs[id]?.holder = nil
            state.generation += 1
            return version
        }
    }

    public func recordMatch(run id: Int, holder: String, matches version: Int, inputs expected: VersionInputs, log: String, now: Int64) throws {
        try write {
            let run = try held(id, by: holder)
            try requireInputs(expected, model: run.model, run: id)
            runs[id]?.state = .succeeded
            runs[id]?.version = version
            runs[id]?.reason = "artifact identical to v\(version): no new version"
            runs[id]?.finishedAt = now
            runs[id]?.holder = nil
            _audit.append(Row(action: .unchanged, address: .model(run.model), version: version, reason: "training run \(id) succeeded: identical to v\(version)"))
            state.generation += 1
        }
    }

    public func liveRunFolders(now: Int64) throws -> Set<String> {
        lock.withLock {
            Set(runs.values.filter { $0.state == .running && ($0.leaseExpires ?? 0) >= now }.map { "run-\($0.id)-\($0.attempts)" })
                .union(runs.values.filter { $0.jobOpen && ($0.state == .queued || $0.state == .running) }.compactMap { $0.job?.folder })
        }
    }

    public func recordRunJob(_ id: Int, holder: String, job: RunJob) throws {
        try lock.withLock {
            guard runs[id]?.state == .running, runs[id]?.holder == holder else { throw CairnError("training run \(id) is no longer held by this worker") }
            runs[id]?.job = job
            runs[id]?.jobOpen = true
        }
    }

    public func closeRunJob(_ id: Int) throws {
        lock.withLock { runs[id]?.jobOpen = false }
    }

    public func openJobsOfEndedRuns() throws -> [(run: Int, job: RunJob)] {
        lock.withLock {
            runs.values.filter { $0.jobOpen && [.succeeded, .failed, .cancelled].contains($0.state) }.sorted { $0.id < $1.id }
                .compactMap { run in run.job.map { (run.id, $0) } }
        }
    }

    public func updateRunLog(_ id: Int, holder: String, log: String) throws {
        lock.withLock {
            if runs[id]?.state == .running, runs[id]?.holder == holder { runs[id]?.log = log }
        }
    }

    public func runState(_ id: Int) throws -> (state: String, holder: String?)? {
        lock.withLock { runs[id].map { ($0.state.rawValue, $0.holder) } }
    }
}
