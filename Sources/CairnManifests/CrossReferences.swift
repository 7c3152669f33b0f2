import CairnCore

/// Checks that span documents: references resolve, one champion per family, gate metrics
/// exist, dataset files exist inside the repository.
enum CrossReferences {
    static func check(_ loaded: inout LoadedManifests, snapshot: RevisionSnapshot) {
        let set = loaded.manifests
        var found: [Diagnostic] = []
        let weightsByName = Dictionary(uniqueKeysWithValues: set.outcomeWeights.map { ($0.metadata.name, $0) })
        let templatesByName = Dictionary(uniqueKeysWithValues: set.templates.map { ($0.metadata.name, $0) })
        let modelsByName = Dictionary(uniqueKeysWithValues: set.models.map { ($0.metadata.name, $0) })

        /// Dataset files already looked at (templates share them): is it a Git LFS pointer?
        var lfsPointers: [String: Bool] = [:]

        func at(_ address: ManifestAddress, _ field: String, _ fallback: SourceLocation) -> SourceLocation {
            loaded.location(address, field) ?? fallback
        }

        func missing(_ what: ManifestKind, _ name: String, from address: ManifestAddress, field: String,
                     source: SourceLocation, known: [String]) {
            // Declared but invalid: its own errors are the cause, reported where it is written.
            if loaded.undecoded.contains(ManifestAddress(what, name)) { return }
            var hint = "add \(what.rawValue)/\(name), or fix the name"
            if let guess = closest(to: name, in: known) { hint = "did you mean '\(guess)'? " + hint }
            found.append(.error("\(field) refers to \(what.rawValue)/\(name), which does not exist at this revision",
                                at: at(address, field, source), address: address.description, hint: hint))
        }

        for template in set.templates {
            let address = ManifestAddress(.template, template.metadata.name)
            if let weights = weightsByName[template.outcomeWeights] {
                let unweighted = template.events.filter { weights.weights[$0] == nil }
                if !unweighted.isEmpty {
                    found.append(.warning(
                        "events \(unweighted.joined(separator: ", ")) have no weight in OutcomeWeights/\(weights.metadata.name) and are treated as 0",
                        at: at(address, "spec.events", template.metadata.source), address: address.description,
                        hint: "add a weight for them, or remove them from spec.events"))
                }
            } else {
                missing(.outcomeWeights, template.outcomeWeights, from: address, field: "spec.outcomeWeights",
                        source: template.metadata.source, known: Array(weightsByName.keys))
            }
            if let items = template.items, case let .failure(problem) = RepoPath.resolve(items, root: snapshot.manifestRoot, tree: snapshot.tree) {
                found.append(.error("spec.items.path '\(items)' \(problem)", at: at(address, "spec.items.path", template.metadata.source),
                                    address: address.description, hint: "commit the item CSV inside the repository and give its path relative to the manifest root"))
            }
            if case let .path(path) = template.dataset {
                switch RepoPath.resolve(path, root: snapshot.manifestRoot, tree: snapshot.tree) {
                case let .success(repoPath):
                    loaded.datasetFiles[template.metadata.name] = repoPath
                    // A Git LFS pointer is committed in place of the data: training would read the pointer.
                    let isPointer = lfsPointers[repoPath] ?? {
                        let head = (try? snapshot.tree.readFile(at: repoPath).prefix(64)).map { String(decoding: $0, as: UTF8.self) } ?? ""
                        let answer = head.hasPrefix("version https://git-lfs.github.com/spec/")
                        lfsPointers[repoPath] = answer
                        return answer
                    }()
                    if isPointer {
                        found.append(.error("spec.dataset.path '\(path)' is a Git LFS pointer, not the data: Cairn reads datasets from git objects, "
                                            + "where LFS keeps only the pointer", at: at(address, "spec.dataset.path", template.metadata.source),
                                            address: address.description,
                                            hint: "commit the file itself (untrack it with `git lfs untrack`), or put it outside git and use dataset.uri with --dataset-root"))
                    }
                case let .failure(problem):
                    found.append(.error("spec.dataset.path '\(path)' \(problem)", at: at(address, "spec.dataset.path", template.metadata.source),
                                        address: address.description,
                                        hint: "commit the dataset inside the repository and give its path relative to the manifest root"
                                            + (snapshot.manifestRoot.isEmpty ? "" : " (\(snapshot.manifestRoot))")))
                }
            }
        }

        var championByFamily: [String: Model] = [:]
        for model in set.models {
            let address = ManifestAddress(.model, model.metadata.name)
            if let template = templatesByName[model.template] {
                for (i, gate) in model.approval.gates.enumerated() where !template.evaluation.metrics.contains(gate.metric) {
                    found.append(.error("spec.approval.gates[\(i)] checks \(gate.metric), which Template/\(template.metadata.name) does not measure",
                                        at: at(address, "spec.approval.gates", model.metadata.source), address: address.description,
                                        hint: "use one of \(template.evaluation.metrics.joined(separator: ", ")), or add the metric to the template's evaluation"))
                }
            } else {
                missing(.template, model.template, from: address, field: "spec.template", source: model.metadata.source,
                        known: Array(templatesByName.keys))
            }
            if model.stage == .champion, let family = model.family {
                if let other = championByFamily[family] {
                    found.append(.error("family \(family) has two champions: Model/\(other.metadata.name) and Model/\(model.metadata.name)",
                                        at: at(address, "spec.stage", model.metadata.source), address: address.description,
                                        hint: "a family has at most one champion; set the other to challenger"))
                } else {
                    championByFamily[family] = model
                }
            }
        }

        for target in set.servingTargets {
            let address = ManifestAddress(.servingTarget, target.metadata.name)
            for (list, routes) in [("spec.routes", target.routes), ("spec.shadow", target.shadow)] {
                for (i, route) in routes.enumerated() {
                    switch route.subject {
                    case let .model(name) where modelsByName[name] == nil:
                        missing(.model, name, from: address, field: "\(list)[\(i)].model", source: route.source,
                                known: Array(modelsByName.keys))
                    case let .family(family) where championByFamily[family] == nil:
                        let members = set.models.filter { $0.family == family }.map(\.metadata.name)
                        found.append(.error("\(list)[\(i)] asks for the champion of family \(family), which has none",
                                            at: route.source, address: address.description,
                                            hint: members.isEmpty ? "no model declares `family: \(family)`; fix the name"
                                                : "set `stage: champion` on one of \(members.joined(separator: ", "))"))
                    default:
                        break
                    }
                }
            }
        }
        loaded.diagnostics += found
    }
}
