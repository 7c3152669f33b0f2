import Crypto

/// What a trained version is pinned to. Any change of these means "train again".
public struct FingerprintInputs: Sendable, Codable, Hashable {
    /// sha256 of the template spec's canonical JSON (display name left out: it is cosmetic).
    public var template: String
    /// sha256 of the dataset file's content, or `uri:<uri>` for datasets outside git (their
    /// content is hashed when a run starts and recorded on the version).
    public var dataset: String
    /// sha256 of the outcome weights' canonical JSON.
    public var weights: String
    public var traits: [String]
    public var retrainToken: String?

    public init(template: String, dataset: String, weights: String, traits: [String], retrainToken: String?) {
        self.template = template
        self.dataset = dataset
        self.weights = weights
        self.traits = traits.sorted()
        self.retrainToken = retrainToken
    }

    /// The training fingerprint: sha256 over the canonical form of the inputs.
    public var fingerprint: String {
        sha256Hex(jsonValue.canonicalBytes)
    }

    /// The inputs as JSON: the same value as `JSONValue.from(self)`, built directly (planning
    /// makes one per model).
    public var jsonValue: JSONValue {
        var o: [String: JSONValue] = [
            "template": .string(template), "dataset": .string(dataset), "weights": .string(weights),
            "traits": .array(traits.map { .string($0) }),
        ]
        if let retrainToken { o["retrainToken"] = .string(retrainToken) }
        return .object(o)
    }

    /// Which inputs differ from `old`, in words, for plan reasons.
    public func differences(from old: FingerprintInputs) -> [String] {
        var out: [String] = []
        if template != old.template { out.append("template changed") }
        if dataset != old.dataset { out.append("dataset changed") }
        if weights != old.weights { out.append("outcome weights changed") }
        if traits != old.traits { out.append("traits changed") }
        if retrainToken != old.retrainToken { out.append("retrainToken changed") }
        return out
    }

    public static func forModel(_ model: Model, template: Template, weights: OutcomeWeights, datasetHash: String?) -> FingerprintInputs {
        let dataset: String
        switch template.dataset {
        case .path: dataset = datasetHash ?? "missing"
        case let .uri(uri): dataset = "uri:\(uri)"
        }
        return FingerprintInputs(template: templateHash(template), dataset: dataset,
                                 weights: weightsHash(weights), traits: model.traits, retrainToken: model.retrainToken)
    }

    /// The template's part of a fingerprint: what decides what is trained (not its name or labels).
    public static func templateHash(_ template: Template) -> String {
        sha256Hex(JSONValue.from(TemplateFingerprintView(template: template)).canonicalText)
    }

    /// The outcome weights' part of a fingerprint.
    public static func weightsHash(_ weights: OutcomeWeights) -> String {
        sha256Hex(JSONValue.object(weights.weights.mapValues { .double($0) }).canonicalText)
    }
}

/// The parts of a template that decide what is trained (not its name or labels).
private struct TemplateFingerprintView: Encodable {
    let events: [String]
    let outcomeWeights: String
    let dataset: Template.Dataset
    let trainer: Template.Trainer
    let evaluation: Template.Evaluation
    /// Encoded only when set: templates without tuning keep their fingerprints.
    let tuning: Tuning?

    init(template: Template) {
        tuning = template.tuning
        events = template.events
        outcomeWeights = template.outcomeWeights
        dataset = template.dataset
        trainer = template.trainer
        evaluation = template.evaluation
    }
}

public func sha256Hex(_ text: String) -> String {
    var text = text
    return text.withUTF8 { hexString(SHA256.hash(data: $0)) }
}

public func sha256Hex(_ bytes: [UInt8]) -> String {
    hexString(SHA256.hash(data: bytes))
}

/// `count` bytes from the system's cryptographically secure generator (keys, API tokens).
public func randomBytes(_ count: Int) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
}

private let lowerHexDigits = Array("0123456789abcdef".utf8)

/// Lower-case hex, two digits a byte.
public func hexString<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.underestimatedCount * 2)
    for b in bytes {
        out.append(lowerHexDigits[Int(b >> 4)])
        out.append(lowerHexDigits[Int(b & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// The bytes a hex string spells, or nil if it is not whole bytes of hex digits.
public func decodeHex(_ hex: String) -> [UInt8]? {
    let chars = Array(hex.utf8)
    guard chars.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(chars.count / 2)
    for i in stride(from: 0, to: chars.count, by: 2) {
        guard let b = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
        out.append(b)
    }
    return out
}
