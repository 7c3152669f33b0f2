extension PlanBuilder {
    // MARK: model definitions and stages

    mutating func planModels(quotas: ModelQuotas = ModelQuotas()) {
        var moves: [StageMoveRequest] = []
        let overQuota = modelsOverQuota(quotas)
        // The payloads of new models, encoded on every core first (in a new fleet, every model).
        let creates = desired.manifests.models.filter {
            observed.models[$0.metadata.name] == nil && $0.lifecycle != .deleted && overQuota[$0.metadata.name] == nil
        }
        var createdPayloads = creates.concurrentMap { model -> JSONValue in
            var created = model
            created.stage = .none
            return .from(created)
        }.makeIterator()
        for model in desired.manifests.models {
            let name = model.metadata.name
            let address = ManifestAddress(.model, name)
            let file = model.metadata.source.file
            var effective = model
            // Deleting is its own change (phase 4); a deleted model that is gone stays gone.
            if model.lifecycle == .deleted { continue }
            if let why = overQuota[name] {
                block(.create, address, why)
                continue
            }
            guard let old = observed.models[name] else {
                effectiveModels[name] = effective
                add(Change(action: .create, address: address, after: createdPayloads.next()!,
                           reason: "lifecycle \(model.lifecycle.rawValue)" + (model.family.map { ", family \($0)" } ?? ""), file: file))
                if effective.stage != .none {
                    moves.append(StageMoveRequest(name: name, family: model.family, from: .none, to: effective.stage, file: file))
                }
                continue
            }
            // Rule 5: traits are frozen once the model has been ready.
            if effective.traits.sorted() != old.spec.traits.sorted(), let readyAt = old.firstReadyAt {
                block(.update, address, "traits cannot change after the model was first ready (\(Describe.time(readyAt))): "
                      + "a new standard is a new model; keep [\(old.spec.traits.joined(separator: ", "))] or create another model")
                effective.traits = old.spec.traits
            }
            effectiveModels[name] = effective

            // Archiving is its own change (phase 4, guarded by rule 4); compare everything else here.
            var comparable = effective
            var previous = old.spec
            comparable.stage = .none
            previous.stage = .none
            if effective.lifecycle == .archived { comparable.lifecycle = previous.lifecycle }
            if comparable != previous {
                let restoring = old.archived && effective.lifecycle != .archived
                add(Change(action: .update, address: address, before: .from(old.spec), after: .from(withObservedStage(effective, old)),
                           reason: restoring ? "restored from archive (lifecycle \(effective.lifecycle.rawValue))" : Describe.modelChanges(previous, comparable),
                           file: file))
            }
            if effective.lifecycle != .archived, old.stage != effective.stage {
                moves.append(StageMoveRequest(name: name, family: effective.family ?? old.spec.family, from: old.stage,
                                              to: effective.stage, file: file))
            }
        }
        emitStageMoves(moves)
    }

    /// The stored spec keeps the registry stage as observed; stage moves are their own changes.
    private func withObservedStage(_ model: Model, _ old: ObservedModel) -> Model {
        var m = model
        m.stage = old.stage
        return m
    }

    /// Emits the stage moves; a new champion demotes the family's previous champion in the
    /// same transaction (rule 3), including a champion whose manifest was removed.
    private mutating func emitStageMoves(_ requested: [StageMoveRequest]) {
        let moves = climbLadders(requested)
        for move in moves {
            let address = ManifestAddress(.model, move.name)
            var after = StageMove(family: move.family, from: move.from, to: move.to)
            if let latest = observed.models[move.name]?.latestApproved {
                after.version = latest.number
                after.metrics = latest.metrics
            }
            add(Change(action: move.from == .champion ? .demote : .stage, address: address,
                       before: .from(StageMove(family: move.family, from: move.from, to: move.from)),
                       after: .from(after),
                       reason: "stage \(move.from.rawValue) → \(move.to.rawValue)" + (move.family.map { " in family \($0)" } ?? "") + move.note,
                       file: move.file))
        }
        for move in moves where move.to == .champion {
            guard let family = move.family else { continue }
            let address = ManifestAddress(.model, move.name)
            for (otherName, other) in observed.models.sorted(by: { $0.key < $1.key })
            where otherName != move.name && other.stage == .champion && other.spec.family == family {
                let otherAddress = ManifestAddress(.model, otherName)
                if let i = changes.firstIndex(where: { $0.address == otherAddress && $0.action == .demote }) {
                    changes[i].appliedWith = address
                } else {
                    // Still declared champion elsewhere is impossible (validation); this is a removed
                    // or archived champion, moved aside so the family never has two.
                    add(Change(action: .demote, address: otherAddress,
                               before: .from(StageMove(family: family, from: .champion, to: .champion)),
                               after: .from(StageMove(family: family, from: .champion, to: .challenger)),
                               reason: "Model/\(move.name) becomes champion of family \(family)", appliedWith: address))
                }
            }
        }
    }

    // MARK: archiving models (phase 4)

    mutating func planModelArchives() {
        let desiredNames = Set(desired.manifests.models.map(\.metadata.name))
        var toArchive: [(String, String)] = []
        for model in desired.manifests.models where model.lifecycle == .archived {
            if let old = observed.models[model.metadata.name], !old.archived {
                toArchive.append((model.metadata.name, "lifecycle archived"))
            }
        }
        for (name, old) in observed.models where !old.archived && !desiredNames.contains(name) {
            toArchive.append((name, "manifest removed from the revision"))
        }
        for (name, why) in toArchive.sorted(by: { $0.0 < $1.0 }) {
            let address = ManifestAddress(.model, name)
            // Rule 4: never archive what is (or is about to be) served.
            let targets = targetsServing(name)
            if !targets.isEmpty {
                block(.archive, address, "Cannot archive model with active deployments. Remove it from serving targets first. "
                      + "(served by \(targets.map { "ServingTarget/\($0)" }.joined(separator: ", ")))")
                continue
            }
            add(Change(action: .archive, address: address, before: .from(observed.models[name]!.spec), reason: why,
                       file: desired.manifests.models.first { $0.metadata.name == name }?.metadata.source.file))
        }
    }

    /// The family's champion as declared in this revision.
    func championName(of family: String) -> String? { championByFamily[family] }
}

struct StageMoveRequest {
    /// What the move was judged on (a ladder step's shadow evidence), for its reason.
    var note = ""
    var name: String
    var family: String?
    var from: Model.Stage
    var to: Model.Stage
    var file: String
}
