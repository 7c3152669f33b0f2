import CLibYAML

/// Bounds that keep hostile input (alias bombs, deep nesting, huge files) cheap to reject.
public struct YAMLLimits: Sendable {
    /// Largest input accepted, in bytes.
    public var maxBytes: Int
    /// Most nodes one document may have, counting every node an alias expands to.
    public var maxNodes: Int
    /// Deepest nesting of lists and mappings.
    public var maxDepth: Int
    /// Longest single scalar, in bytes.
    public var maxScalarBytes: Int
    /// Most scalar text one document may hold, counting every copy an alias makes.
    public var maxExpandedBytes: Int

    public init(maxBytes: Int = 8 << 20, maxNodes: Int = 1_000_000, maxDepth: Int = 64, maxScalarBytes: Int = 64 << 10,
                maxExpandedBytes: Int = 16 << 20) {
        self.maxBytes = maxBytes
        self.maxNodes = maxNodes
        self.maxDepth = maxDepth
        self.maxScalarBytes = maxScalarBytes
        self.maxExpandedBytes = maxExpandedBytes
    }

    public static let `default` = YAMLLimits()
}

/// A YAML error with the position it refers to.
public struct YAMLError: Error, Sendable, CustomStringConvertible {
    public var mark: YAMLMark
    public var message: String
    public var hint: String

    public init(mark: YAMLMark, message: String, hint: String) {
        self.mark = mark
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(mark): \(message)" }
}

/// Parses YAML streams with libyaml's event API into `YAMLNode` trees.
public enum YAMLLoader {
    /// Parses every document of `bytes`. Documents that hold nothing (only comments, or an
    /// empty `---`) are left out.
    public static func load(_ bytes: [UInt8], limits: YAMLLimits = .default) throws(YAMLError) -> [YAMLDocument] {
        if bytes.count > limits.maxBytes {
            throw YAMLError(
                mark: YAMLMark(line: 1, column: 1),
                message: "file is \(bytes.count) bytes, over the limit of \(limits.maxBytes) bytes",
                hint: "split the manifests over several files")
        }
        var builder = Builder(limits: limits)
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLError(mark: YAMLMark(line: 1, column: 1), message: "libyaml could not start (out of memory)", hint: "retry")
        }
        defer { yaml_parser_delete(&parser) }
        let result: Result<[YAMLDocument], YAMLError> = bytes.withUnsafeBufferPointer { buffer in
            // libyaml reads the input lazily, so the buffer must outlive every parse call.
            yaml_parser_set_input_string(&parser, buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!, buffer.count)
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(&parser, &event) == 1 else {
                    return .failure(parserError(parser, input: buffer))
                }
                defer { yaml_event_delete(&event) }
                do throws(YAMLError) {
                    if try builder.handle(&event) { break }
                } catch {
                    return .failure(error)
                }
            }
            return .success(builder.documents)
        }
        return try result.get()
    }

    public static func load(_ text: String, limits: YAMLLimits = .default) throws(YAMLError) -> [YAMLDocument] {
        try load(Array(text.utf8), limits: limits)
    }

    private static func parserError(_ parser: yaml_parser_t, input: UnsafeBufferPointer<UInt8>) -> YAMLError {
        let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        var mark = YAMLMark(line: Int(parser.problem_mark.line) + 1, column: Int(parser.problem_mark.column) + 1)
        if parser.error == YAML_READER_ERROR {
            // The reader (bad UTF-8, control characters) gives a byte offset, not a mark.
            mark = Self.mark(ofOffset: Int(parser.problem_offset), in: input)
        }
        var message = problem
        if let context = parser.context.map({ String(cString: $0) }) {
            message = "\(problem) \(context) (started at \(Int(parser.context_mark.line) + 1):\(Int(parser.context_mark.column) + 1))"
        }
        var hint = "fix the YAML syntax at this position"
        if problem.contains("cannot start any token") {
            hint = "YAML does not allow tab characters for indentation; indent with spaces"
        } else if problem.contains("UTF-8") || problem.contains("control characters") {
            hint = "save the file as UTF-8 text"
        } else if problem.contains("mapping values are not allowed") {
            hint = "quote a value that contains ': ', or check the indentation"
        }
        return YAMLError(mark: mark, message: message, hint: hint)
    }

    /// The 1-based line and column (in characters) of a byte offset.
    static func mark(ofOffset offset: Int, in input: UnsafeBufferPointer<UInt8>) -> YAMLMark {
        let end = min(max(offset, 0), input.count)
        var line = 1, lineStart = 0
        for i in 0..<end where input[i] == UInt8(ascii: "\n") {
            line += 1
            lineStart = i + 1
        }
        // Count characters, not bytes: continuation bytes (10xxxxxx) do not start one.
        let column = 1 + input[lineStart..<end].filter { $0 & 0xC0 != 0x80 }.count
        return YAMLMark(line: line, column: column)
    }
}

/// Turns the event stream into trees, enforcing limits as it goes.
private struct Builder {
    /// An open list or mapping. A class, so appending to it never copies its children.
    final class Frame {
        let isMapping: Bool
        let mark: YAMLMark
        let tag: String?
        let anchor: String?
        var items: [YAMLNode] = []
        var pairs: [YAMLPair] = []
        var pendingKey: YAMLNode?
        var seen: [String: YAMLMark] = [:]
        var weight = 1
        var bytes = 0

        init(isMapping: Bool, mark: YAMLMark, tag: String?, anchor: String?) {
            self.isMapping = isMapping
            self.mark = mark
            self.tag = tag
            self.anchor = anchor
        }
    }

    let limits: YAMLLimits
    var documents: [YAMLDocument] = []
    var stack: [Frame] = []
    var anchors: [String: (node: YAMLNode, weight: Int, bytes: Int)] = [:]
    var documentMark = YAMLMark(line: 1, column: 1)
    var documentRoot: YAMLNode?
    var nodesInDocument = 0
    var bytesInDocument = 0

    init(limits: YAMLLimits) { self.limits = limits }

    /// Returns true at the end of the stream.
    mutating func handle(_ event: inout yaml_event_t) throws(YAMLError) -> Bool {
        let mark = YAMLMark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
        switch event.type {
        case YAML_STREAM_END_EVENT:
            return true
        case YAML_DOCUMENT_START_EVENT:
            documentMark = mark
            documentRoot = nil
            anchors = [:]
            nodesInDocument = 0
            bytesInDocument = 0
        case YAML_DOCUMENT_END_EVENT:
            if let root = documentRoot {
                if case .scalar = root.content, case .null? = root.scalarValue {
                    // An empty document: nothing to decode.
                } else {
                    documents.append(YAMLDocument(root: root, mark: documentMark))
                }
            }
            documentRoot = nil
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            if s.length > limits.maxScalarBytes {
                throw YAMLError(mark: mark, message: "a scalar of \(s.length) bytes, over the limit of \(limits.maxScalarBytes) bytes",
                                hint: "manifests hold names and settings, not data; keep long content in a file of the repository")
            }
            let text = string(s.value, length: s.length)
            let style: YAMLScalarStyle
            switch s.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: style = .literal
            case YAML_FOLDED_SCALAR_STYLE: style = .folded
            default: style = .plain
            }
            let node = YAMLNode(content: .scalar(text, style), mark: mark, tag: tag(s.tag))
            try count(1, bytes: s.length, at: mark)
            if let anchor = optionalString(s.anchor) { anchors[anchor] = (node, 1, s.length) }
            try add(node, weight: 1, bytes: s.length)
        case YAML_ALIAS_EVENT:
            let name = optionalString(event.data.alias.anchor) ?? ""
            guard let target = anchors[name] else {
                throw YAMLError(mark: mark, message: "alias *\(name) refers to no anchor defined before it",
                                hint: "define &\(name) before using *\(name)")
            }
            try count(target.weight, bytes: target.bytes, at: mark)
            var node = target.node
            node.mark = mark
            try add(node, weight: target.weight, bytes: target.bytes)
        case YAML_SEQUENCE_START_EVENT:
            let s = event.data.sequence_start
            try count(1, bytes: 0, at: mark)
            try push(Frame(isMapping: false, mark: mark, tag: tag(s.tag), anchor: optionalString(s.anchor)), at: mark)
        case YAML_MAPPING_START_EVENT:
            let s = event.data.mapping_start
            try count(1, bytes: 0, at: mark)
            try push(Frame(isMapping: true, mark: mark, tag: tag(s.tag), anchor: optionalString(s.anchor)), at: mark)
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            let frame = stack.removeLast()
            let node = YAMLNode(content: frame.isMapping ? .mapping(frame.pairs) : .sequence(frame.items),
                                mark: frame.mark, tag: frame.tag)
            if let anchor = frame.anchor { anchors[anchor] = (node, frame.weight, frame.bytes) }
            try add(node, weight: frame.weight, bytes: frame.bytes)
        default:
            break
        }
        return false
    }

    mutating func push(_ frame: Frame, at mark: YAMLMark) throws(YAMLError) {
        if stack.count >= limits.maxDepth {
            throw YAMLError(mark: mark, message: "nesting deeper than \(limits.maxDepth) levels",
                            hint: "manifests never need this depth; check for runaway indentation or brackets")
        }
        stack.append(frame)
    }

    mutating func count(_ n: Int, bytes: Int, at mark: YAMLMark) throws(YAMLError) {
        nodesInDocument += n
        bytesInDocument += bytes
        if nodesInDocument > limits.maxNodes {
            throw YAMLError(mark: mark,
                            message: "document expands to more than \(limits.maxNodes) nodes (aliases included)",
                            hint: "remove the aliases that multiply the document (an 'alias bomb'), or split it")
        }
        if bytesInDocument > limits.maxExpandedBytes {
            throw YAMLError(mark: mark,
                            message: "document expands to more than \(limits.maxExpandedBytes) bytes of text (aliases included)",
                            hint: "remove the aliases that copy long text many times (an 'alias bomb'), or split the document")
        }
    }

    mutating func add(_ node: YAMLNode, weight: Int, bytes: Int) throws(YAMLError) {
        guard let top = stack.last else {
            documentRoot = node
            return
        }
        top.weight += weight
        top.bytes += bytes
        if !top.isMapping {
            top.items.append(node)
        } else if let key = top.pendingKey {
            top.pairs.append(YAMLPair(key: key, value: node))
            top.pendingKey = nil
        } else {
            guard case let .scalar(text, _) = node.content else {
                throw YAMLError(mark: node.mark, message: "a \(node.kindName) is used as a mapping key",
                                hint: "mapping keys must be plain strings")
            }
            if let first = top.seen[text] {
                throw YAMLError(mark: node.mark, message: "duplicate key '\(text)' (first defined at \(first))",
                                hint: "remove one of the two '\(text)' entries")
            }
            top.seen[text] = node.mark
            top.pendingKey = node
        }
    }

    func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, length: Int) -> String {
        guard let pointer else { return "" }
        return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    func optionalString(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let pointer else { return nil }
        return String(cString: pointer)
    }

    func tag(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let t = optionalString(pointer), t != "!" else { return nil }
        return t
    }
}
