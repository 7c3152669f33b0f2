import CairnCore
import CairnYAML

/// Everything read from one revision: the manifests, every diagnostic, and what was skipped.
public struct LoadedManifests: Sendable {
    public var manifests: ManifestSet
    public var diagnostics: [Diagnostic]
    /// Documents that are not Cairn's, left alone (listed with `--verbose`).
    public var skipped: [SkippedDocument]
    /// Number of YAML files read.
    public var fileCount: Int
    /// Field locations per document, for diagnostics raised after decoding.
    public var fieldLocations: [ManifestAddress: [String: SourceLocation]]
    /// Template name → repository path of its dataset file (templates with `dataset.path`).
    public var datasetFiles: [String: String]

    /// True when there is no error (warnings allowed).
    public var isValid: Bool { !diagnostics.hasErrors }

    public func location(_ address: ManifestAddress, _ field: String) -> SourceLocation? {
        fieldLocations[address]?[field]
    }
}

/// Reads, decodes and cross-checks every manifest of a revision.
public enum ManifestLoader {
    public static func load(_ snapshot: RevisionSnapshot, limits: YAMLLimits = .default) -> LoadedManifests {
        var diagnostics: [Diagnostic] = []
        var skipped: [SkippedDocument] = []
        var decoded: [DecodedManifest] = []
        var locations: [ManifestAddress: [String: SourceLocation]] = [:]
        var firstSeen: [ManifestAddress: SourceLocation] = [:]

        for file in snapshot.files {
            let documents: [YAMLDocument]
            do {
                documents = try YAMLLoader.load(file.contents, limits: limits)
            } catch {
                diagnostics.append(.error(error.message, at: SourceLocation(file: file.path, line: error.mark.line, column: error.mark.column),
                                          hint: error.hint))
                continue
            }
            for document in documents {
                let result = DocumentDecoder.decode(document, file: file.path)
                diagnostics += result.diagnostics
                switch result.outcome {
                case let .decoded(manifest):
                    let address = manifest.address
                    if let first = firstSeen[address] {
                        diagnostics.append(.error("\(address) is defined twice (first at \(first))", at: manifest.metadata.source,
                                                  address: address.description, hint: "names are unique per kind; rename or remove one"))
                        continue
                    }
                    firstSeen[address] = manifest.metadata.source
                    locations[address] = result.fieldLocations
                    decoded.append(manifest)
                case let .skipped(doc):
                    skipped.append(doc)
                case .invalid:
                    break
                }
            }
        }

        var weights: [OutcomeWeights] = [], templates: [Template] = [], models: [Model] = [], targets: [ServingTarget] = []
        for m in decoded {
            switch m {
            case let .outcomeWeights(x): weights.append(x)
            case let .template(x): templates.append(x)
            case let .model(x): models.append(x)
            case let .servingTarget(x): targets.append(x)
            }
        }
        let set = ManifestSet(outcomeWeights: weights, templates: templates, models: models, servingTargets: targets)
        var result = LoadedManifests(manifests: set, diagnostics: diagnostics, skipped: skipped, fileCount: snapshot.files.count,
                                     fieldLocations: locations, datasetFiles: [:])
        CrossReferences.check(&result, snapshot: snapshot)
        result.diagnostics = result.diagnostics.sortedByLocation()
        return result
    }
}
