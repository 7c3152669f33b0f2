import CairnCore
import CairnYAML

extension YAMLNode {
    /// The node as JSON, scalars resolved by the YAML 1.2 core schema: the values the decoder
    /// sees, for checking manifests against the JSON Schemas in `schemas/`. JSON has no
    /// infinity or NaN, so those become strings (which a schema then rejects).
    public var jsonValue: JSONValue {
        switch content {
        case .scalar:
            switch scalarValue ?? .null {
            case .null: return .null
            case let .bool(b): return .bool(b)
            case let .int(i): return .int(i)
            case let .double(d): return d.isFinite ? .double(d) : .string("\(d)")
            case let .string(s): return .string(s)
            }
        case let .sequence(items):
            return .array(items.map(\.jsonValue))
        case let .mapping(pairs):
            var object: [String: JSONValue] = [:]
            for pair in pairs {
                let key: String
                if case let .scalar(text, _) = pair.key.content { key = text } else { key = pair.key.jsonValue.canonicalText }
                object[key] = pair.value.jsonValue
            }
            return .object(object)
        }
    }
}
