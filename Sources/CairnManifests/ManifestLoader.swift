import Foundation
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
    /// Documents that failed to decode but whose kind and name were read: they exist for
    /// references (their own errors are reported, not "does not exist" where they are named).
    public var undecoded: Set<ManifestAddress> = []

    /// True when there is no error (warnings allowed).
    public var isValid: Bool { !diagnostics.hasErrors }

    public func location(_ address: ManifestAddress, _ field: String) -> SourceLocation? {
        fieldLocations[address]?[field]
    }

    /// The desired state of a valid revision: its manifests and the content hash of every
    /// template's dataset file, read from `tree` (each file once).
    public func desiredState(tree: any RevisionTree, commit: CommitInfo, revisionName: String, manifestRoot: String = "") throws(CairnError) -> DesiredState {
        var hashes: [String: String] = [:]
        var byPath: [String: String] = [:]
        // Templates of drafts that ask for discovery: their data is measured here, at the commit.
        let discovering = Set(manifests.models.filter { $0.discover == true && $0.lifecycle == .draft }.map(\.template))
        var discoveries: [String: DiscoveredTraits] = [:], discoveryErrors: [String: String] = [:]
        let events = Dictionary(manifests.templates.map { ($0.metadata.name, $0.events) }, uniquingKeysWith: { a, _ in a })
        for (template, path) in datasetFiles.sorted(by: { $0.key < $1.key }) {
            let bytes: [UInt8]?
            if let known = byPath[path], !discovering.contains(template) {
                hashes[template] = known
                continue
            }
            do {
                let read = try tree.readFile(at: path)
                bytes = read
                let hash = sha256Hex(read)
                byPath[path] = hash
                hashes[template] = hash
            } catch {
                throw CairnError("cannot read dataset \(path) at \(revisionName): \(error)")
            }
            if discovering.contains(template), let bytes {
                do {
                    discoveries[template] = try DiscoveredTraits.measure(bytes, events: events[template] ?? [], datasetHash: hashes[template]!, commit: commit.sha)
                } catch {
                    discoveryErrors[template] = "\(path): \((error as? CairnError)?.message ?? "\(error)")"
                }
            }
        }
        var desired = DesiredState(manifests: manifests, commit: commit, revisionName: revisionName, manifestRoot: manifestRoot,
                                   datasetFiles: datasetFiles, datasetHashes: hashes)
        desired.discoveries = discoveries
        desired.discoveryErrors = discoveryErrors
        return desired
    }
}

/// What one manifest file decodes to, before the checks across files.
public struct FileResult: Sendable {
    /// The YAML error that stopped the file, if any.
    var syntaxError: Diagnostic?
    var documents: [DocumentDecoder.Result]
}

/// Decoded files kept by (path, git blob id), so a process that reads revision after revision
/// (`cairn serve`) re-reads and re-decodes only the files that changed. Entries for files that
/// are no longer in the latest revision are dropped after each load.
public final class ParseCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: FileResult] = [:]

    public init() {}

    static func key(_ path: String, _ blob: String) -> String { path + "\u{0}" + blob }

    /// True if the file at `path` with this blob is cached (its contents need not be read).
    public func contains(path: String, blob: String) -> Bool {
        lock.withLock { entries[Self.key(path, blob)] != nil }
    }

    public var count: Int { lock.withLock { entries.count } }

    func get(_ key: String) -> FileResult? { lock.withLock { entries[key] } }

    func replace(with fresh: [String: FileResult]) { lock.withLock { entries = fresh } }
}

/// Reads, decodes and cross-checks every manifest of a revision.
public enum ManifestLoader {
    /// `cache`: decoded files by (path, blob id); a file whose contents the snapshot omitted
    /// (because the cache had it) is taken from it.
    public static func load(_ snapshot: RevisionSnapshot, limits: YAMLLimits = .default, cache: ParseCache? = nil) -> LoadedManifests {
        var diagnostics: [Diagnostic] = []
        var skipped: [SkippedDocument] = []
        var decoded: [DecodedManifest] = []
        var locations: [ManifestAddress: [String: SourceLocation]] = [:]
        var firstSeen: [ManifestAddress: SourceLocation] = [:]
        var undecoded: Set<ManifestAddress> = []

        let results = decodeFiles(snapshot.files, limits: limits, cache: cache)
        for result in results {
            if let syntaxError = result.syntaxError {
                diagnostics.append(syntaxError)
                continue
            }
            for result in result.documents {
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
                    // Still there for references: its own errors say what is wrong with it.
                    if let address = result.address { undecoded.insert(address) }
                }
            }
        }

        var weights: [OutcomeWeights] = [], templates: [Template] = [], models: [Model] = [], targets: [ServingTarget] = []
        var families: [ModelFamily] = []
        for m in decoded {
            switch m {
            case let .outcomeWeights(x): weights.append(x)
            case let .template(x): templates.append(x)
            case let .model(x): models.append(x)
            case let .servingTarget(x): targets.append(x)
            case let .modelFamily(x): families.append(x)
            }
        }
        let set = ManifestSet(outcomeWeights: weights, templates: templates, models: models, servingTargets: targets, families: families)
        var result = LoadedManifests(manifests: set, diagnostics: diagnostics, skipped: skipped, fileCount: snapshot.files.count,
                                     fieldLocations: locations, datasetFiles: [:], undecoded: undecoded)
        CrossReferences.check(&result, snapshot: snapshot)
        result.diagnostics = result.diagnostics.sortedByLocation()
        return result
    }

    /// Parses and decodes each file (those not in `cache`) on every core; results in file order.
    static func decodeFiles(_ files: [ManifestFile], limits: YAMLLimits, cache: ParseCache?) -> [FileResult] {
        var results: [FileResult?] = files.map { file in
            guard let cache, let blob = file.blobID else { return nil }
            return cache.get(ParseCache.key(file.path, blob))
        }
        let pending = results.indices.filter { results[$0] == nil }
        for (i, result) in zip(pending, pending.concurrentMap { decodeFile(files[$0], limits: limits) }) {
            results[i] = result
        }
        let all = results.map { $0! }
        if let cache {
            var fresh: [String: FileResult] = [:]
            for (file, result) in zip(files, all) {
                if let blob = file.blobID { fresh[ParseCache.key(file.path, blob)] = result }
            }
            cache.replace(with: fresh)
        }
        return all
    }

    static func decodeFile(_ file: ManifestFile, limits: YAMLLimits) -> FileResult {
        do {
            let documents = try YAMLLoader.load(file.contents, limits: limits)
            return FileResult(syntaxError: nil, documents: documents.map { DocumentDecoder.decode($0, file: file.path) })
        } catch {
            return FileResult(syntaxError: .error(error.message, at: SourceLocation(file: file.path, line: error.mark.line, column: error.mark.column),
                                                  hint: error.hint),
                              documents: [])
        }
    }
}
