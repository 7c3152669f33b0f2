/// Where a diagnostic points: a file in the repository and a 1-based position in it.
public struct SourceLocation: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.file, a.line, a.column) < (b.file, b.line, b.column)
    }
}

/// One finding about the manifests: what is wrong, where, and what to do about it.
///
/// Diagnostics are collected, never thrown one at a time, so a single run reports every problem.
public struct Diagnostic: Sendable, Hashable, Codable {
    /// An error stops the revision; a warning does not.
    public enum Severity: String, Sendable, Codable, Hashable {
        case error, warning
    }

    public var severity: Severity
    public var location: SourceLocation?
    /// The document address, `Kind/name`, when the finding belongs to one document.
    public var address: String?
    /// What is wrong, in one sentence.
    public var summary: String
    /// What to do about it.
    public var hint: String?

    public init(_ severity: Severity, _ summary: String, at location: SourceLocation?, address: String? = nil, hint: String? = nil) {
        self.severity = severity
        self.location = location
        self.address = address.map(Self.shortened)
        self.summary = Self.shortened(summary)
        self.hint = hint.map(Self.shortened)
    }

    /// Longest word (run of characters without a space) a message keeps whole.
    public static let longestWord = 120

    /// `text` with every word longer than `longestWord` cut to its start and end, so a hostile
    /// value (a 3 MB name) is quoted in a readable line, not repeated in full.
    public static func shortened(_ text: String) -> String {
        guard text.utf8.count > longestWord else { return text }
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        guard words.contains(where: { $0.utf8.count > longestWord }) else { return text }
        let quotes: Set<Character> = ["'", "\"", "(", ")", "[", "]", "{", "}", ",", ".", ":", ";"]
        return words.map { word in
            guard word.utf8.count > longestWord, word.count > longestWord else { return String(word) }
            // Quotes and punctuation around the value stay outside the cut, and out of the count.
            let lead = word.prefix { quotes.contains($0) }
            let trail = word.dropFirst(lead.count).reversed().prefix { quotes.contains($0) }.reversed()
            let core = word.dropFirst(lead.count).dropLast(trail.count)
            return "\(lead)\(core.prefix(48))…\(core.suffix(24))\(String(trail)) (\(core.count) characters)"
        }.joined(separator: " ")
    }

    public static func error(_ summary: String, at location: SourceLocation?, address: String? = nil, hint: String? = nil) -> Diagnostic {
        Diagnostic(.error, summary, at: location, address: address, hint: hint)
    }

    public static func warning(_ summary: String, at location: SourceLocation?, address: String? = nil, hint: String? = nil) -> Diagnostic {
        Diagnostic(.warning, summary, at: location, address: address, hint: hint)
    }

    /// `file:line:column: error: Kind/name: summary (hint)` on one line, the form editors and CI logs link.
    public var oneLine: String {
        var s = location.map { "\($0): " } ?? ""
        s += "\(severity.rawValue): "
        if let address { s += "\(address): " }
        s += summary
        if let hint { s += " (\(hint))" }
        return s
    }
}

extension Array where Element == Diagnostic {
    public var hasErrors: Bool { contains { $0.severity == .error } }
    public var errors: [Diagnostic] { filter { $0.severity == .error } }
    public var warnings: [Diagnostic] { filter { $0.severity == .warning } }

    /// File, line, column order, so output does not depend on the order checks ran in.
    public func sortedByLocation() -> [Diagnostic] {
        enumerated().sorted { a, b in
            switch (a.element.location, b.element.location) {
            case let (x?, y?) where x != y: return x < y
            case (nil, _?): return true
            case (_?, nil): return false
            default: return a.offset < b.offset
            }
        }.map(\.element)
    }
}
