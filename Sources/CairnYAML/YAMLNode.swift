/// A 1-based position in a YAML source.
public struct YAMLMark: Sendable, Hashable, Codable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// How a scalar was written. Only plain scalars are subject to type resolution
/// (`true`, `12`, `null`); quoted and block scalars are always strings.
public enum YAMLScalarStyle: Sendable, Hashable {
    case plain, singleQuoted, doubleQuoted, literal, folded
}

/// One node of a parsed YAML document, with the position it started at.
///
/// Aliases are expanded while loading (bounded by `YAMLLimits.maxNodes`), so consumers
/// never see anchors or aliases.
public struct YAMLNode: Sendable {
    /// A scalar, a sequence or a mapping.
    public enum Content: Sendable {
        case scalar(String, YAMLScalarStyle)
        case sequence([YAMLNode])
        case mapping([YAMLPair])
    }

    public var content: Content
    public var mark: YAMLMark
    /// The explicit tag, resolved to its full form (`tag:yaml.org,2002:str`), if any.
    public var tag: String?

    public init(content: Content, mark: YAMLMark, tag: String? = nil) {
        self.content = content
        self.mark = mark
        self.tag = tag
    }
}

/// One key and value of a mapping, in document order.
public struct YAMLPair: Sendable {
    public var key: YAMLNode
    public var value: YAMLNode

    public init(key: YAMLNode, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}

/// The value a scalar stands for under the YAML 1.2 core schema.
///
/// YAML 1.1 spellings such as `yes`, `no`, `on` and `off` are strings here, as YAML 1.2 says;
/// the manifest decoder warns where such a string is probably a mistake.
public enum YAMLScalarValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
}

/// One document of a YAML stream and its root node.
public struct YAMLDocument: Sendable {
    /// The document's root node; documents that hold only comments are not returned at all.
    public var root: YAMLNode
    /// Where the document starts (its `---`, or its first node).
    public var mark: YAMLMark
}

extension YAMLNode {
    public var kindName: String {
        switch content {
        case .scalar:
            if case .null = scalarValue { return "null" }
            return "scalar"
        case .sequence: return "list"
        case .mapping: return "mapping"
        }
    }

    /// The resolved value of a scalar node, or nil for collections.
    public var scalarValue: YAMLScalarValue? {
        guard case let .scalar(text, style) = content else { return nil }
        if let tag {
            switch tag {
            case "tag:yaml.org,2002:str": return .string(text)
            case "tag:yaml.org,2002:null": return .null
            case "tag:yaml.org,2002:bool":
                return YAMLNode.resolvePlain(text).flatMap { if case .bool = $0 { $0 } else { nil } } ?? .string(text)
            case "tag:yaml.org,2002:int":
                return YAMLNode.resolvePlain(text).flatMap { if case .int = $0 { $0 } else { nil } } ?? .string(text)
            case "tag:yaml.org,2002:float":
                switch YAMLNode.resolvePlain(text) {
                case let .int(i)?: return .double(Double(i))
                case let .double(d)?: return .double(d)
                default: return .string(text)
                }
            default: return .string(text)
            }
        }
        guard style == .plain else { return .string(text) }
        return YAMLNode.resolvePlain(text) ?? .string(text)
    }

    /// YAML 1.2 core schema resolution of a plain scalar; nil means "a string".
    static func resolvePlain(_ text: String) -> YAMLScalarValue? {
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE": return .bool(true)
        case "false", "False", "FALSE": return .bool(false)
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .double(.infinity)
        case "-.inf", "-.Inf", "-.INF": return .double(-.infinity)
        case ".nan", ".NaN", ".NAN": return .double(.nan)
        default: break
        }
        let utf8 = Array(text.utf8)
        guard let first = utf8.first else { return nil }
        let isDigit: (UInt8) -> Bool = { $0 >= 0x30 && $0 <= 0x39 }
        guard isDigit(first) || first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".") else {
            return nil
        }
        if text.hasPrefix("0x"), let v = Int(text.dropFirst(2), radix: 16) { return .int(v) }
        if text.hasPrefix("0o"), let v = Int(text.dropFirst(2), radix: 8) { return .int(v) }
        var body = utf8[...]
        if body.first == UInt8(ascii: "-") || body.first == UInt8(ascii: "+") { body = body.dropFirst() }
        if !body.isEmpty, body.allSatisfy(isDigit) {
            if let v = Int(text) { return .int(v) }
            return Double(text).map { .double($0) }
        }
        // [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
        var i = body.startIndex
        var mantissaDigits = 0
        while i < body.endIndex, isDigit(body[i]) { i += 1; mantissaDigits += 1 }
        if i < body.endIndex, body[i] == UInt8(ascii: ".") {
            i += 1
            while i < body.endIndex, isDigit(body[i]) { i += 1; mantissaDigits += 1 }
        }
        guard mantissaDigits > 0 else { return nil }
        if i < body.endIndex, body[i] == UInt8(ascii: "e") || body[i] == UInt8(ascii: "E") {
            i += 1
            if i < body.endIndex, body[i] == UInt8(ascii: "-") || body[i] == UInt8(ascii: "+") { i += 1 }
            var expDigits = 0
            while i < body.endIndex, isDigit(body[i]) { i += 1; expDigits += 1 }
            guard expDigits > 0 else { return nil }
        }
        guard i == body.endIndex else { return nil }
        return Double(text).map { .double($0) }
    }
}
