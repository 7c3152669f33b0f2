/// The desired state: the manifests of one revision and what was read alongside them.
public struct DesiredState: Sendable {
    public var manifests: ManifestSet
    public var commit: CommitInfo
    /// The revision as the user named it (`main`, `HEAD~1`).
    public var revisionName: String
    public var manifestRoot: String
    /// Template name → repository path of its dataset file.
    public var datasetFiles: [String: String]
    /// Template name → sha256 of its dataset file's content.
    public var datasetHashes: [String: String]
    /// Template name → the traits measured from its dataset at this commit (only for templates of
    /// drafts that ask for discovery), or why they could not be.
    public var discoveries: [String: DiscoveredTraits] = [:]
    public var discoveryErrors: [String: String] = [:]

    public init(manifests: ManifestSet, commit: CommitInfo, revisionName: String, manifestRoot: String = "",
                datasetFiles: [String: String] = [:], datasetHashes: [String: String] = [:]) {
        self.manifests = manifests
        self.commit = commit
        self.revisionName = revisionName
        self.manifestRoot = manifestRoot
        self.datasetFiles = datasetFiles
        self.datasetHashes = datasetHashes
    }
}

/// What an operator may set about planning: the bulk-promotion guard.
public struct PlannerOptions: Sendable {
    /// Most routes one plan may promote without `allowBulk`.
    public var maxPromotions: Int
    public var allowBulk: Bool
    /// Caps on registered models per tenant; creates beyond them are blocked.
    public var modelQuotas: ModelQuotas

    public init(maxPromotions: Int = 20, allowBulk: Bool = false, modelQuotas: ModelQuotas = ModelQuotas()) {
        self.maxPromotions = maxPromotions
        self.allowBulk = allowBulk
        self.modelQuotas = modelQuotas
    }
}

/// Computes the plan. A pure function of (desired, observed, evidence, now, options): no I/O, no
/// clock, no randomness; the same inputs give the same plan, byte for byte once encoded.
public enum Planner {
    public static func plan(desired: DesiredState, observed: ObservedState, evidence: Evidence = .none, now: Int64,
                            options: PlannerOptions = PlannerOptions()) -> Plan {
        var builder = PlanBuilder(desired: desired, observed: observed, evidence: evidence, now: now)
        builder.planWeightsAndTemplates()
        builder.planModels(quotas: options.modelQuotas)
        builder.planDiscovery()
        builder.planTraining()
        builder.planDecisions()
        builder.planTargets()
        // Before model archives: a target the guard holds back keeps its models live.
        builder.applyBulkGuard(options)
        builder.planModelArchives()
        builder.planDeletions()
        return builder.finish()
    }
}

/// Working state of one planning pass.
struct PlanBuilder {
    let desired: DesiredState
    let observed: ObservedState
    /// Online evidence read for this plan (`Planner.evidenceNeeded`).
    let evidence: Evidence
    let now: Int64
    var changes: [Change] = []
    var blocked: [BlockedChange] = []
    var drift: [DriftItem] = []
    var candidates: [Candidate] = []
    var skipped: [SkippedChange] = []
    /// Models as they will be once the plan's definition changes apply (traits refusals kept out).
    var effectiveModels: [String: Model] = [:]
    /// Version statuses once the plan's approvals and rejections apply.
    var projectedStatus: [String: [Int: ModelVersion.Status]] = [:]
    /// Target → live routes once the plan's promotions apply.
    var projectedRoutes: [String: [LiveRoute]] = [:]
    /// Routes newly promoted by this plan (for the bulk guard).
    var promotedRoutes = 0
    /// Live routes this plan takes off the air: routes dropped from a target, and every route of
    /// a target whose manifest was removed (for the bulk guard, which counts them like promotions).
    var removedRoutes = 0
    /// Models this plan queues training for.
    var trainedModels: Set<String> = []
    // Indexes built once, so planning stays linear in the fleet's size.
    let weightsByName: [String: OutcomeWeights]
    let templatesByName: [String: Template]
    let runsByModel: [String: [TrainingRun]]
    /// Family → its champion once the plan applies (a move to champion a ladder holds back leaves the old one).
    var championByFamily: [String: String]
    /// Template name → its fingerprint inputs that do not depend on the model.
    var fingerprintParts: [String: FingerprintInputs] = [:]
    /// Template name → its (template, weights) payload JSON, shared by every model's train change.
    var trainPayloadParts: [String: (template: JSONValue, weights: JSONValue)] = [:]
    /// Fingerprints by their inputs: a fleet has far fewer distinct inputs than models.
    var fingerprints: [FingerprintInputs: String] = [:]

    init(desired: DesiredState, observed: ObservedState, evidence: Evidence = .none, now: Int64) {
        self.desired = desired
        self.observed = observed
        self.evidence = evidence
        self.now = now
        for (name, model) in observed.models {
            projectedStatus[name] = Dictionary(uniqueKeysWithValues: model.versions.map { ($0.number, $0.status) })
        }
        for (name, target) in observed.targets where target.assigned {
            projectedRoutes[name] = target.routes + target.shadow
        }
        weightsByName = Dictionary(uniqueKeysWithValues: desired.manifests.outcomeWeights.map { ($0.metadata.name, $0) })
        templatesByName = Dictionary(uniqueKeysWithValues: desired.manifests.templates.map { ($0.metadata.name, $0) })
        runsByModel = Dictionary(grouping: observed.runs.sorted { $0.id < $1.id }, by: \.model)
        var champions: [String: String] = [:]
        for m in desired.manifests.models where m.stage == .champion && m.lifecycle == .active {
            if let family = m.family, champions[family] == nil { champions[family] = m.metadata.name }
        }
        championByFamily = champions
    }

    mutating func add(_ change: Change) { changes.append(change) }

    mutating func block(_ action: Action, _ address: ManifestAddress, version: Int? = nil, _ reason: String) {
        blocked.append(BlockedChange(action: action, address: address, version: version, reason: reason))
    }

    // MARK: weights and templates

    mutating func planWeightsAndTemplates() {
        for w in desired.manifests.outcomeWeights {
            let address = ManifestAddress(.outcomeWeights, w.metadata.name)
            let file = w.metadata.source.file
            if let old = observed.weights[w.metadata.name] {
                if old.spec != w || old.archived {
                    add(Change(action: .update, address: address, before: .from(old.spec), after: .from(w),
                               reason: old.archived ? "restored from archive" : Describe.weights(old.spec.weights, w.weights, metadataChanged: old.spec.metadata != w.metadata),
                               file: file))
                }
            } else {
                add(Change(action: .create, address: address, after: .from(w), reason: Describe.weightsSummary(w.weights), file: file))
            }
        }
        for (name, old) in observed.weights.sorted(by: { $0.key < $1.key }) where !old.archived && weightsByName[name] == nil {
            add(Change(action: .archive, address: ManifestAddress(.outcomeWeights, name), before: .from(old.spec),
                       reason: "manifest removed from the revision"))
        }
        for t in desired.manifests.templates {
            let address = ManifestAddress(.template, t.metadata.name)
            let file = t.metadata.source.file
            if let old = observed.templates[t.metadata.name] {
                if old.spec != t || old.archived {
                    add(Change(action: .update, address: address, before: .from(old.spec), after: .from(t),
                               reason: old.archived ? "restored from archive" : Describe.changedFields(old.spec, t), file: file))
                }
            } else {
                add(Change(action: .create, address: address, after: .from(t), reason: Describe.template(t), file: file))
            }
        }
        for (name, old) in observed.templates.sorted(by: { $0.key < $1.key }) where !old.archived && templatesByName[name] == nil {
            add(Change(action: .archive, address: ManifestAddress(.template, name), before: .from(old.spec),
                       reason: "manifest removed from the revision"))
        }
    }

    // MARK: sorting and output

    mutating func finish() -> Plan {
        let subOrder: [Action: Int] = [.create: 0, .update: 1, .stage: 2, .demote: 3, .promote: 2, .discover: 4]
        // Keys computed once per change, not once per comparison.
        let keyed = changes.map { c in ((c.action.phase, c.kind.order, c.name, subOrder[c.action] ?? 0, c.version ?? 0), c) }
        changes = keyed.sorted { $0.0 < $1.0 }.map(\.1)
        blocked.sort { a, b in
            let ka = (a.address.kind.order, a.address.description, a.action.phase, a.version ?? 0, a.reason)
            let kb = (b.address.kind.order, b.address.description, b.action.phase, b.version ?? 0, b.reason)
            return ka < kb
        }
        drift.sort { $0.address.description < $1.address.description }
        candidates.sort { ($0.target ?? "", $0.model, $0.version) < ($1.target ?? "", $1.model, $1.version) }
        // The readout of each live split a promotion of this plan changes.
        let promoted = Set(changes.filter { $0.action == .promote && $0.kind == .servingTarget }.map(\.name))
        let readouts = evidence.readouts.filter { promoted.contains($0.key) }.sorted { $0.key < $1.key }.map(\.value)
        var plan = Plan(revision: desired.commit.sha, revisionName: desired.revisionName, manifestRoot: desired.manifestRoot,
                    manifestCount: desired.manifests.count, observedGeneration: observed.generation,
                    lastAppliedRevision: observed.lastAppliedRevision, changes: changes, blocked: blocked, drift: drift,
                    candidates: candidates, skipped: skipped.sorted { ($0.address.kind.order, $0.address.name) < ($1.address.kind.order, $1.address.name) })
        plan.readouts = readouts
        return plan
    }

    /// Rule 12: a plan that changes more live routes than allowed (promoted, or taken off the air)
    /// is refused unless asked for: promotions and target removals are blocked, and what is live
    /// stays live.
    mutating func applyBulkGuard(_ options: PlannerOptions) {
        let routes = promotedRoutes + removedRoutes
        guard routes > options.maxPromotions, !options.allowBulk else { return }
        let held = changes.filter { $0.action == .promote || ($0.action == .archive && $0.kind == .servingTarget) }
        changes.removeAll { $0.action == .promote || ($0.action == .archive && $0.kind == .servingTarget) }
        let what = removedRoutes == 0 ? "promotes \(routes) routes,"
            : "promotes \(promotedRoutes) and takes \(removedRoutes) off the air, \(routes) routes in all,"
        for change in held {
            if let old = observed.targets[change.name], old.assigned { projectedRoutes[change.name] = old.routes + old.shadow }
            block(change.action, change.address,
                  "bulk guard: this plan \(what) more than --max-promotions \(options.maxPromotions); review it and pass --allow-bulk")
        }
    }
}
