import CairnCore
import CairnYAML

/// One decoded document of any kind.
public enum DecodedManifest: Sendable, Hashable {
    case outcomeWeights(OutcomeWeights)
    case template(Template)
    case model(Model)
    case servingTarget(ServingTarget)
    case modelFamily(ModelFamily)

    public var address: ManifestAddress {
        switch self {
        case let .outcomeWeights(m): ManifestAddress(.outcomeWeights, m.metadata.name)
        case let .template(m): ManifestAddress(.template, m.metadata.name)
        case let .model(m): ManifestAddress(.model, m.metadata.name)
        case let .servingTarget(m): ManifestAddress(.servingTarget, m.metadata.name)
        case let .modelFamily(m): ManifestAddress(.modelFamily, m.metadata.name)
        }
    }

    public var metadata: ManifestMetadata {
        switch self {
        case let .outcomeWeights(m): m.metadata
        case let .template(m): m.metadata
        case let .model(m): m.metadata
        case let .servingTarget(m): m.metadata
        case let .modelFamily(m): m.metadata
        }
    }
}

/// A document that is not Cairn's (its `apiVersion` is not `cairn/…`), left alone.
public struct SkippedDocument: Sendable, Hashable {
    public var location: SourceLocation
    public var apiVersion: String?
    public var kind: String?
}

/// Decodes one YAML document into a typed manifest.
public enum DocumentDecoder {
    public static let apiVersion = "cairn/v1"

    /// A decoded manifest, or a document that is not Cairn's (skipped).
    public enum Outcome: Sendable {
        case decoded(DecodedManifest)
        case skipped(SkippedDocument)
        /// A Cairn document with errors; the diagnostics say why.
        case invalid
    }

    /// One document's outcome with its diagnostics and field locations.
    public struct Result: Sendable {
        public var outcome: Outcome
        public var diagnostics: [Diagnostic]
        /// Field path → where its value is written (`spec.template` → file:7:13).
        public var fieldLocations: [String: SourceLocation]
        /// `Kind/name` once both could be read, even when the document is invalid.
        public var address: ManifestAddress?
    }

    public static func decode(_ document: YAMLDocument, file: String) -> Result {
        let reader = NodeReader(file: file)
        let outcome = decode(document, reader)
        return Result(outcome: outcome, diagnostics: reader.diagnostics, fieldLocations: reader.fieldLocations,
                      address: reader.address.flatMap { ManifestAddress(parsing: $0) })
    }

    private static func decode(_ document: YAMLDocument, _ reader: NodeReader) -> Outcome {
        let root = document.root
        guard case let .mapping(pairs) = root.content else {
            reader.error(root, "a manifest must be a mapping with apiVersion, kind, metadata and spec; found \(reader.describe(root))")
            return .invalid
        }
        var top = Fields(reader: reader, node: root, pairs: pairs, path: "")
        let apiVersionNode = top.optional("apiVersion")
        let kindNode = top.optional("kind")
        let apiVersion: String? = apiVersionNode.flatMap { if case let .string(s)? = $0.scalarValue { s } else { nil } }
        let kindText: String? = kindNode.flatMap { if case let .string(s)? = $0.scalarValue { s } else { nil } }

        // Other tools' YAML (CI workflows, Kubernetes objects) may share the folder. Only a document
        // that is clearly not Cairn's is skipped: a typo in apiVersion must never make a model's
        // manifest vanish (the plan would archive it as removed).
        let cairnKind = kindText.flatMap { k in ManifestKind.allCases.first { $0.rawValue.lowercased() == k.lowercased() } }
        guard let apiVersion, apiVersion.hasPrefix("cairn/") else {
            if let apiVersion, looksLikeCairn(apiVersion) {
                reader.error(apiVersionNode!, "apiVersion '\(apiVersion)' is not Cairn's, but close to it",
                             hint: "use apiVersion: \(Self.apiVersion) (lower case); a document with another apiVersion is skipped, and its model would be archived")
                return .invalid
            }
            if apiVersionNode == nil {
                if let misspelt = pairs.first(where: { p in
                    if case let .scalar(key, _) = p.key.content { return key != "apiVersion" && closest(to: key, in: ["apiVersion"]) != nil }
                    return false
                }) {
                    reader.error(misspelt.key, "key \(reader.describe(misspelt.key)) looks like a misspelt apiVersion",
                                 hint: "write `apiVersion: \(Self.apiVersion)`; without it the document is skipped, and its model would be archived")
                    return .invalid
                }
                if let kindText, cairnKind != nil || looksLikeCairnKind(kindText) {
                    reader.error(kindNode!, "kind '\(kindText)' is a Cairn kind, but the document has no apiVersion",
                                 hint: "add `apiVersion: \(Self.apiVersion)`; without it the document is skipped, and its model would be archived")
                    return .invalid
                }
            }
            return .skipped(SkippedDocument(location: reader.location(root), apiVersion: apiVersionNode.flatMap {
                if case let .scalar(s, _) = $0.content { s } else { nil }
            }, kind: kindText))
        }

        // The address is known as soon as kind and name are, so later errors can carry it.
        var kind: ManifestKind?
        if let kindText { kind = ManifestKind(rawValue: kindText) }
        if let kind, let metadataNode = pairs.first(where: { if case .scalar("metadata", _) = $0.key.content { true } else { false } })?.value,
           case let .mapping(mp) = metadataNode.content,
           let nameNode = mp.first(where: { if case .scalar("name", _) = $0.key.content { true } else { false } })?.value,
           case let .string(name)? = nameNode.scalarValue {
            reader.address = "\(kind.rawValue)/\(name)"
        }

        if apiVersion != Self.apiVersion {
            reader.error(apiVersionNode!, "apiVersion '\(apiVersion)' is not supported", hint: "use apiVersion: \(Self.apiVersion)")
        }
        if let kindNode {
            if kind == nil {
                let names = ManifestKind.allCases.map(\.rawValue)
                var hint = "use one of: \(names.joined(separator: ", "))"
                if let t = kindText, let guess = closest(to: t, in: names) { hint = "did you mean '\(guess)'? " + hint }
                reader.error(kindNode, "unknown kind '\(kindText ?? reader.describe(kindNode))'", hint: hint)
            }
        } else {
            reader.error(root, "kind is missing", hint: "add `kind:` with one of OutcomeWeights, Template, Model, ServingTarget")
        }

        let metadata = top.required("metadata", hint: "add `metadata: {name: …}`").flatMap { decodeMetadata($0, reader: reader, root: root) }
        let specNode = top.required("spec", hint: "add the `spec:` of the document")
        top.finish()

        guard let kind, let specNode, let spec = reader.mapping(specNode, "spec") else {
            return .invalid
        }
        let decoded: DecodedManifest?
        switch kind {
        case .outcomeWeights: decoded = KindDecoders.outcomeWeights(spec, metadata, reader)
        case .template: decoded = KindDecoders.template(spec, metadata, reader)
        case .model: decoded = KindDecoders.model(spec, metadata, reader)
        case .servingTarget: decoded = KindDecoders.servingTarget(spec, metadata, reader)
        case .modelFamily: decoded = KindDecoders.modelFamily(spec, metadata, reader)
        }
        if let decoded, !reader.diagnostics.hasErrors {
            return .decoded(decoded)
        }
        return .invalid
    }

    /// `Cairn/v1`, `cairn.v1`, `carin/v1`: an apiVersion whose group is Cairn's but mistyped.
    static func looksLikeCairn(_ apiVersion: String) -> Bool {
        let group = apiVersion.lowercased().split(whereSeparator: { $0 == "/" || $0 == "." }).first.map(String.init) ?? ""
        return group.hasPrefix("cairn") || closest(to: group, in: ["cairn"]) != nil
    }

    /// `model`, `ServingTargets`, `Templte`: a kind that is one of Cairn's, mistyped.
    static func looksLikeCairnKind(_ kind: String) -> Bool {
        closest(to: kind, in: ManifestKind.allCases.map(\.rawValue)) != nil
    }

    private static func decodeMetadata(_ node: YAMLNode, reader: NodeReader, root: YAMLNode) -> ManifestMetadata? {
        guard var fields = reader.mapping(node, "metadata") else { return nil }
        let name = fields.required("name", hint: "add `name:` under metadata").flatMap { reader.name($0, "metadata.name") }
        let labels = fields.optional("labels").flatMap { reader.stringMap($0, "metadata.labels") } ?? [:]
        let annotations = fields.optional("annotations").flatMap { reader.stringMap($0, "metadata.annotations") } ?? [:]
        fields.finish()
        guard let name else { return nil }
        return ManifestMetadata(name: name, labels: labels, annotations: annotations, source: reader.location(root))
    }
}
