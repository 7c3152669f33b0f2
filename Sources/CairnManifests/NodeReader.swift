import CairnCore
import CairnYAML

/// Collects diagnostics for one document and reads typed values out of YAML nodes.
/// Every accessor reports what it expected and where, and returns nil on a mismatch so
/// decoding can go on and find the next problem too.
final class NodeReader {
    let file: String
    var address: String?
    private(set) var diagnostics: [Diagnostic] = []
    /// Where each field that was read sits (`spec.template` → 7:13), so checks that run after
    /// decoding (references, dataset paths) can point at the exact field.
    private(set) var fieldLocations: [String: SourceLocation] = [:]

    func noteField(_ path: String, _ node: YAMLNode) {
        fieldLocations[path] = location(node)
    }

    init(file: String, address: String? = nil) {
        self.file = file
        self.address = address
    }

    func location(_ node: YAMLNode) -> SourceLocation {
        SourceLocation(file: file, line: node.mark.line, column: node.mark.column)
    }

    var errorCount: Int { diagnostics.reduce(0) { $0 + ($1.severity == .error ? 1 : 0) } }

    func report(_ diagnostic: Diagnostic) {
        diagnostics.append(diagnostic)
    }

    func error(_ node: YAMLNode, _ summary: String, hint: String? = nil) {
        diagnostics.append(.error(summary, at: location(node), address: address, hint: hint))
    }

    func warning(_ node: YAMLNode, _ summary: String, hint: String? = nil) {
        diagnostics.append(.warning(summary, at: location(node), address: address, hint: hint))
    }

    // MARK: mappings

    func mapping(_ node: YAMLNode, _ path: String) -> Fields? {
        guard case let .mapping(pairs) = node.content else {
            error(node, "\(path) must be a mapping, found \(describe(node))", hint: "write it as `key: value` lines under \(path)")
            return nil
        }
        return Fields(reader: self, node: node, pairs: pairs, path: path)
    }

    // MARK: scalars

    func string(_ node: YAMLNode, _ path: String) -> String? {
        switch node.scalarValue {
        case let .string(s)?:
            if case .scalar(_, .plain) = node.content, Self.yaml11Booleans.contains(s) {
                warning(node, "\(path) is the string \"\(s)\"; YAML 1.1 tools read it as a boolean",
                        hint: "quote it (\"\(s)\") to make the intent clear to every tool")
            }
            return s
        case .null?:
            error(node, "\(path) is empty", hint: "give it a value, or remove the line")
        case let value?:
            let text: String
            if case let .scalar(raw, _) = node.content { text = raw } else { text = "" }
            error(node, "\(path) must be a string, found \(describe(value))", hint: "quote it: \"\(text)\"")
        case nil:
            error(node, "\(path) must be a string, found \(describe(node))")
        }
        return nil
    }

    func nonEmptyString(_ node: YAMLNode, _ path: String) -> String? {
        guard let s = string(node, path) else { return nil }
        if s.allSatisfy(\.isWhitespace) {
            error(node, "\(path) is blank", hint: "give it a value, or remove the line")
            return nil
        }
        return s
    }

    func int(_ node: YAMLNode, _ path: String) -> Int? {
        switch node.scalarValue {
        case let .int(i)?: return i
        // 50.0 is a whole number, as JSON Schema's "integer" agrees.
        case let .double(d)? where d == d.rounded() && abs(d) < 1e15: return Int(d)
        default: break
        }
        error(node, "\(path) must be a whole number, found \(describe(node))")
        return nil
    }

    func bool(_ node: YAMLNode, _ path: String) -> Bool? {
        if case let .bool(b)? = node.scalarValue { return b }
        error(node, "\(path) must be true or false, found \(describe(node))")
        return nil
    }

    func number(_ node: YAMLNode, _ path: String) -> Double? {
        switch node.scalarValue {
        case let .int(i)?: return Double(i)
        case let .double(d)?:
            if d.isFinite { return d }
            error(node, "\(path) must be a finite number, found \(d)")
            return nil
        default:
            error(node, "\(path) must be a number, found \(describe(node))")
            return nil
        }
    }

    /// A name in the manifest name format (lower case, digits and `-`, at most 63 characters).
    func name(_ node: YAMLNode, _ path: String) -> String? {
        guard let s = string(node, path) else { return nil }
        if let problem = NameRules.problem(with: s) {
            error(node, "\(path) '\(s)' \(problem)", hint: NameRules.hint)
            return nil
        }
        return s
    }

    func choice<T: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ path: String, _: T.Type) -> T? where T.RawValue == String {
        guard let s = string(node, path) else { return nil }
        if let v = T(rawValue: s) { return v }
        let allowed = T.allCases.map(\.rawValue)
        var hint = "use one of: \(allowed.joined(separator: ", "))"
        if let guess = closest(to: s, in: allowed) { hint = "did you mean '\(guess)'? " + hint }
        error(node, "\(path) has unknown value '\(s)'", hint: hint)
        return nil
    }

    func duration(_ node: YAMLNode, _ path: String) -> ManifestDuration? {
        guard let s = string(node, path) else { return nil }
        guard let d = ManifestDuration(parsing: s), d.seconds > 0 else {
            error(node, "\(path) '\(s)' is not a duration", hint: "write a number and a unit: 90s, 30m, 24h, 7d or 1h30m")
            return nil
        }
        return d
    }

    // MARK: collections

    func list(_ node: YAMLNode, _ path: String) -> [YAMLNode]? {
        guard case let .sequence(items) = node.content else {
            error(node, "\(path) must be a list, found \(describe(node))", hint: "write it as [a, b] or as `- item` lines")
            return nil
        }
        return items
    }

    /// A list of distinct strings; reports duplicates.
    func stringList(_ node: YAMLNode, _ path: String, each check: ((YAMLNode, String) -> Bool)? = nil) -> [String]? {
        guard let items = list(node, path) else { return nil }
        var out: [String] = []
        var seen: Set<String> = []
        var ok = true
        for (i, item) in items.enumerated() {
            guard let s = string(item, "\(path)[\(i)]") else { ok = false; continue }
            if let check, !check(item, s) { ok = false; continue }
            if !seen.insert(s).inserted {
                error(item, "\(path) lists '\(s)' twice", hint: "remove the repeated entry")
                ok = false
                continue
            }
            out.append(s)
        }
        return ok ? out : nil
    }

    func stringMap(_ node: YAMLNode, _ path: String) -> [String: String]? {
        guard case let .mapping(pairs) = node.content else {
            error(node, "\(path) must be a mapping of strings, found \(describe(node))")
            return nil
        }
        var out: [String: String] = [:]
        var ok = true
        for pair in pairs {
            guard case let .scalar(key, _) = pair.key.content else { continue }
            if let v = string(pair.value, "\(path).\(key)") { out[key] = v } else { ok = false }
        }
        return ok ? out : nil
    }

    /// Any value, as JSON (free-form trainer params).
    func json(_ node: YAMLNode, _ path: String) -> JSONValue? {
        switch node.content {
        case .scalar:
            switch node.scalarValue ?? .null {
            case .null: return .null
            case let .bool(b): return .bool(b)
            case let .int(i): return .int(i)
            case let .double(d):
                guard d.isFinite else {
                    error(node, "\(path) must be a finite number")
                    return nil
                }
                return .double(d)
            case let .string(s): return .string(s)
            }
        case let .sequence(items):
            var out: [JSONValue] = []
            for (i, item) in items.enumerated() {
                guard let v = json(item, "\(path)[\(i)]") else { return nil }
                out.append(v)
            }
            return .array(out)
        case let .mapping(pairs):
            var out: [String: JSONValue] = [:]
            for pair in pairs {
                guard case let .scalar(key, _) = pair.key.content, let v = json(pair.value, "\(path).\(key)") else { return nil }
                out[key] = v
            }
            return .object(out)
        }
    }

    // MARK: wording

    func describe(_ node: YAMLNode) -> String {
        switch node.content {
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        case .scalar: return describe(node.scalarValue ?? .null)
        }
    }

    func describe(_ value: YAMLScalarValue) -> String {
        switch value {
        case .null: return "nothing (null)"
        case let .bool(b): return "the boolean \(b)"
        case let .int(i): return "the number \(i)"
        case let .double(d): return "the number \(d)"
        case let .string(s): return "the string \"\(s)\""
        }
    }

    /// Plain scalars that YAML 1.1 reads as booleans but YAML 1.2 (and Cairn) reads as strings.
    static let yaml11Booleans: Set<String> = ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                                               "on", "On", "ON", "off", "Off", "OFF"]
}

/// The keys of one mapping; reports keys nobody asked for when `finish()` is called.
struct Fields {
    let reader: NodeReader
    let node: YAMLNode
    let pairs: [YAMLPair]
    let path: String
    private var asked: [String] = []

    init(reader: NodeReader, node: YAMLNode, pairs: [YAMLPair], path: String) {
        self.reader = reader
        self.node = node
        self.pairs = pairs
        self.path = path
    }

    func child(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The value under `key`, if present. Every key the decoder knows must be asked for,
    /// present or not, so `finish()` can tell unknown keys apart.
    mutating func optional(_ key: String) -> YAMLNode? {
        asked.append(key)
        for pair in pairs {
            if case let .scalar(k, _) = pair.key.content, k == key {
                reader.noteField(child(key), pair.value)
                return pair.value
            }
        }
        return nil
    }

    mutating func required(_ key: String, hint: String? = nil) -> YAMLNode? {
        if let v = optional(key) { return v }
        reader.error(node, "\(child(key)) is missing", hint: hint ?? "add `\(key):` under \(path.isEmpty ? "the document" : path)")
        return nil
    }

    func has(_ key: String) -> Bool {
        pairs.contains { if case let .scalar(k, _) = $0.key.content { k == key } else { false } }
    }

    /// Reports every key that was not asked for, suggesting the closest known one.
    func finish() {
        for pair in pairs {
            guard case let .scalar(k, _) = pair.key.content, !asked.contains(k) else { continue }
            var seen = Set<String>()
            let known = asked.filter { seen.insert($0).inserted }
            var hint = "remove it; known fields here: \(known.joined(separator: ", "))"
            if let guess = closest(to: k, in: known) { hint = "did you mean '\(guess)'? " + hint }
            reader.error(pair.key, "unknown field '\(child(k))'", hint: hint)
        }
    }
}

enum NameRules {
    static let hint = "use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"

    /// nil if `name` matches `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$` and has at most 63 characters.
    static func problem(with name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.utf8.count > 63 { return "is \(name.utf8.count) characters long (at most 63)" }
        let bytes = Array(name.utf8)
        let allowed: (UInt8) -> Bool = { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }
        if let bad = bytes.first(where: { !allowed($0) }) {
            let ch = String(decoding: [bad], as: UTF8.self)
            return bad >= 0x41 && bad <= 0x5a ? "has upper-case letters" : "has the character '\(ch)'"
        }
        if bytes.first == 0x2d || bytes.last == 0x2d { return "starts or ends with '-'" }
        return nil
    }
}

/// The candidate nearest to `word` by edit distance, if near enough to be a likely typo.
func closest(to word: String, in candidates: [String]) -> String? {
    let w = Array(word.lowercased())
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(w, Array(c.lowercased()))
        if d <= max(2, w.count / 3), d < (best?.1 ?? .max) { best = (c, d) }
    }
    if let best { return best.0 }
    // A longer name begun with a typo ("engagment" for "engagement-booster"): compare the
    // start of each name, as long as the word, and suggest the one it is closest to.
    guard w.count >= 5 else { return nil }
    var prefixBest: (String, Int)?
    for c in candidates where c.count > w.count {
        let d = editDistance(w, Array(c.lowercased().prefix(w.count)))
        if d <= 2, d < (prefixBest?.1 ?? .max) { prefixBest = (c, d) }
    }
    return prefixBest?.0
}

private func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
