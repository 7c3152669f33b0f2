/// What an audit row records. Raw values are the stored names (a wire format: never renamed).
public enum AuditAction: String, Sendable, Codable, CaseIterable {
    // A plan's changes, under their plan names.
    case create, update, stage, train, approve, reject, promote, demote, archive, discover, delete
    /// A training run created a version.
    case version
    /// A training run failed.
    case fail
    /// A training run produced an artifact identical to an existing version's: no new version.
    case unchanged
    case suspend, resume
    case tokenCreate = "token_create"
    case tokenRevoke = "token_revoke"

    /// The row a planned change writes.
    public init(_ action: Action) {
        self = AuditAction(rawValue: action.rawValue)!
    }
}

/// What an audit row is about: a manifest's `Kind/name`, or one of Cairn's own records
/// (`Cairn/applier`, `Cairn/token/NAME`). Stored as that text.
public enum AuditAddress: Sendable, Hashable, WireText {
    case manifest(ManifestAddress)
    /// Applying itself (suspend, resume).
    case applier
    /// An API token.
    case token(String)

    public static func model(_ name: String) -> AuditAddress { .manifest(ManifestAddress(.model, name)) }
    public static func servingTarget(_ name: String) -> AuditAddress { .manifest(ManifestAddress(.servingTarget, name)) }

    /// The stored text back; nil for text Cairn never writes.
    public init?(parsing text: String) {
        if text == "Cairn/applier" {
            self = .applier
        } else if text.hasPrefix("Cairn/token/") {
            self = .token(String(text.dropFirst("Cairn/token/".count)))
        } else if let manifest = ManifestAddress(parsing: text) {
            self = .manifest(manifest)
        } else {
            return nil
        }
    }

    public var description: String {
        switch self {
        case let .manifest(address): address.description
        case .applier: "Cairn/applier"
        case let .token(name): "Cairn/token/\(name)"
        }
    }

    /// The manifest this row is about, if any.
    public var manifest: ManifestAddress? {
        if case let .manifest(address) = self { return address }
        return nil
    }
}

/// A value stored and sent as its text (`description`), read back with `init?(parsing:)`:
/// addresses in plans and audit rows, whose text is a wire format.
public protocol WireText: Codable, CustomStringConvertible {
    init?(parsing text: String)
}

extension WireText {
    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not a \(Self.self)"))
        }
        self = value
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
