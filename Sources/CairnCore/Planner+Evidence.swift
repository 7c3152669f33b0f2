extension Planner {
    /// The evidence a plan of `desired` against `observed` reads (pure): the shadow answers of
    /// every undecided or approved version of a model that requires shadow evidence, the guard
    /// readings of guarded targets not already held by a trip, and the readouts of live splits
    /// whose declared routes differ from what is live.
    public static func evidenceNeeded(desired: DesiredState, observed: ObservedState) -> EvidenceRequest {
        var request = EvidenceRequest()
        for model in desired.manifests.models where model.approval.shadowEvidence != nil {
            for v in observed.models[model.metadata.name]?.versions ?? [] where v.status != .rejected {
                request.shadowVersions.append(LiveRoute(model: v.model, version: v.number, weight: 0))
            }
        }
        // Ladder steps judge a model's latest approved version.
        let laddered = Set(desired.manifests.families.filter { $0.ladder.contains { $0.shadowEvidence != nil } }.map(\.metadata.name))
        for model in desired.manifests.models where model.approval.shadowEvidence == nil {
            guard let family = model.family, laddered.contains(family), let latest = observed.models[model.metadata.name]?.latestApproved else { continue }
            request.shadowVersions.append(LiveRoute(model: latest.model, version: latest.number, weight: 0))
        }
        for target in desired.manifests.servingTargets {
            let name = target.metadata.name
            guard let live = observed.targets[name], live.assigned else { continue }
            if target.rollbackGuard != nil, live.drift == nil { request.guardTargets.append(name) }
            if live.routes.count > 1 {
                let declared = target.routes.map { route -> String in
                    let subject = switch route.subject { case let .model(m): m; case let .family(f): "family \(f)" }
                    let version = if case let .number(n) = route.version { "@\(n)" } else { "" }
                    return "\(subject)\(version) \(route.weight)"
                }.sorted()
                let current = live.routes.map { "\($0.model) \($0.weight)" }.sorted()
                let pinned = live.routes.map { "\($0.model)@\($0.version) \($0.weight)" }.sorted()
                if declared != current && declared != pinned { request.readoutTargets.append(name) }
            }
        }
        return request
    }
}

extension PlanBuilder {
    // MARK: online evidence (shadow evidence, rollback guards)

    /// The shadow evidence `model` requires for `step`, if any.
    func evidenceRequirement(_ model: String, for step: ShadowEvidenceRequirement.Step) -> ShadowEvidenceRequirement? {
        guard let requirement = (effectiveModels[model] ?? observed.models[model]?.spec)?.approval.shadowEvidence,
              requirement.requiredFor == step else { return nil }
        return requirement
    }

    /// Nil when `model` v`version` may take `step`; otherwise what its shadow evidence lacks.
    func missingEvidence(_ model: String, _ version: Int, for step: ShadowEvidenceRequirement.Step) -> String? {
        guard let requirement = evidenceRequirement(model, for: step) else { return nil }
        return EvidenceRules.unmet(requirement, evidence.shadows[Evidence.key(model, version)]).map { "shadow evidence: " + $0 }
    }

    /// How the evidence a decision relied on reads, for its reason.
    func evidenceNote(_ model: String, _ version: Int, for step: ShadowEvidenceRequirement.Step) -> String {
        guard evidenceRequirement(model, for: step) != nil, let s = evidence.shadows[Evidence.key(model, version)] else { return "" }
        return "; shadow evidence: " + EvidenceRules.describe(s)
    }

    /// A target a rollback guard holds, or trips now: true when it was planned here (held, or
    /// rolled back) and the declared routes are not promoted in this plan.
    mutating func planGuard(_ target: ServingTarget, declared routes: [LiveRoute]) -> Bool {
        let name = target.metadata.name
        let address = ManifestAddress(.servingTarget, name)
        guard let old = observed.targets[name], old.assigned else { return false }
        if let record = old.drift, let guarded = record.guarded {
            // Rule: the guard's trip stands until a commit declares other routes than those it took down.
            guard guarded.sorted() == routes else { return false }
            drift.append(DriftItem(address: address, live: Describe.routes(old.routes), declared: Describe.routes(routes),
                                   actor: record.actor, at: record.at, how: record.how))
            block(.promote, address, "\(record.how); it stays on \(Describe.routes(old.routes)) until a commit changes its routes "
                  + "(pin the version to keep, or reject the guarded one)")
            return true
        }
        guard let rule = target.rollbackGuard, old.drift == nil, old.routes == routes, let reading = evidence.guards[name],
              let why = EvidenceRules.trip(rule, reading) else { return false }
        guard !reading.previousRoutes.isEmpty else {
            block(.promote, address, "rollback guard tripped (\(why)), but the target has no earlier routes to return to")
            return true
        }
        let how = "rollback guard tripped: \(why)"
        var after = Assignment(tenant: old.tenant, surface: old.surface, routes: reading.previousRoutes, shadow: old.shadow)
        after.drift = DriftRecord(actor: "rollback-guard", at: now, how: how, guarded: old.routes)
        projectedRoutes[name] = after.routes + after.shadow
        add(Change(action: .promote, address: address,
                   before: .from(Assignment(tenant: old.tenant, surface: old.surface, routes: old.routes, shadow: old.shadow)),
                   after: .from(after), reason: "\(how): back to \(Describe.routes(reading.previousRoutes))", file: target.metadata.source.file))
        return true
    }

    /// The metrics each of `routes`' versions has, for a promotion's audit row.
    func metricsSnapshot(_ routes: [LiveRoute]) -> [String: [String: Double]] {
        var out: [String: [String: Double]] = [:]
        for r in routes { out[Evidence.key(r.model, r.version)] = observed.models[r.model]?.version(r.version)?.metrics ?? [:] }
        return out
    }
}

extension PlanBuilder {
    // MARK: registry ladders

    /// The stage moves a family's ladder allows: one step up at a time, each with the shadow
    /// evidence the step needs (judged on the model's latest approved version). A refused move
    /// is blocked and the model keeps its stage; when a move to champion is refused, the old
    /// champion keeps its place too (the family is never left without one).
    mutating func climbLadders(_ moves: [StageMoveRequest]) -> [StageMoveRequest] {
        let families = Dictionary(desired.manifests.families.map { ($0.metadata.name, $0) }, uniquingKeysWith: { a, _ in a })
        guard !families.isEmpty else { return moves }
        var allowed: [StageMoveRequest] = []
        var heldChampionship: Set<String> = []
        for var move in moves {
            guard let name = move.family, let family = families[name] else {
                allowed.append(move)
                continue
            }
            let address = ManifestAddress(.model, move.name)
            if let why = family.refuses(from: move.from, to: move.to) {
                block(.stage, address, why)
                if move.to == .champion { heldChampionship.insert(name) }
                continue
            }
            if family.climbs(from: move.from, to: move.to), let requirement = family.ladder.first(where: { $0.stage == move.to })?.shadowEvidence {
                guard let latest = observed.models[move.name]?.latestApproved else {
                    block(.stage, address, "to \(move.to.rawValue) in family \(name): no approved version yet to judge by its shadow evidence")
                    if move.to == .champion { heldChampionship.insert(name) }
                    continue
                }
                let summary = evidence.shadows[Evidence.key(move.name, latest.number)]
                if let missing = EvidenceRules.unmet(requirement, summary) {
                    block(.stage, address, "to \(move.to.rawValue) in family \(name): shadow evidence of v\(latest.number): \(missing)")
                    if move.to == .champion { heldChampionship.insert(name) }
                    continue
                }
                move.note = "; shadow evidence of v\(latest.number): " + EvidenceRules.describe(summary!)
            }
            allowed.append(move)
        }
        guard !heldChampionship.isEmpty else { return allowed }
        // The champion the family has keeps its stage (and its routes) while its successor waits.
        for family in heldChampionship {
            championByFamily[family] = observed.models.filter { $0.value.stage == .champion && $0.value.spec.family == family }
                .keys.sorted().first { (effectiveModels[$0] ?? observed.models[$0]?.spec)?.lifecycle == .active }
        }
        return allowed.filter { move in
            guard let family = move.family, heldChampionship.contains(family), move.from == .champion else { return true }
            block(.stage, ManifestAddress(.model, move.name), "stays champion of family \(family): its successor cannot become champion yet")
            return false
        }
    }
}
