import CairnCore
import Foundation

/// What `cairn validate` reports, independent of how it is printed.
public struct ValidationReport: Sendable, Codable {
    /// One diagnostic as `validate --format json` prints it.
    public struct Entry: Sendable, Codable {
        public var severity: String
        public var file: String?
        public var line: Int?
        public var column: Int?
        public var address: String?
        public var summary: String
        public var hint: String?
    }

    /// A document that is not Cairn's, listed with `--verbose`.
    public struct Skipped: Sendable, Codable {
        public var file: String
        public var line: Int
        public var apiVersion: String?
        public var kind: String?
    }

    public var formatVersion = "1"
    public var valid: Bool
    /// Full commit id, or nil for `--worktree`.
    public var revision: String?
    public var manifestRoot: String
    public var files: Int
    public var documents: Int
    public var errors: Int
    public var warnings: Int
    public var diagnostics: [Entry]
    public var skipped: [Skipped]

    public init(valid: Bool, revision: String?, manifestRoot: String, files: Int, documents: Int,
                diagnostics: [Diagnostic], skipped: [(SourceLocation, String?, String?)]) {
        self.valid = valid
        self.revision = revision
        self.manifestRoot = manifestRoot
        self.files = files
        self.documents = documents
        self.errors = diagnostics.errors.count
        self.warnings = diagnostics.warnings.count
        self.diagnostics = diagnostics.map {
            Entry(severity: $0.severity.rawValue, file: $0.location?.file, line: $0.location?.line, column: $0.location?.column,
                  address: $0.address, summary: $0.summary, hint: $0.hint)
        }
        self.skipped = skipped.map { Skipped(file: $0.0.file, line: $0.0.line, apiVersion: $0.1, kind: $0.2) }
    }

    public func json() -> String {
        prettyJSON(self)
    }

    public func text(style: Style, heading: String, verbose: Bool) -> String {
        var out = style.bold(heading) + "\n"
        if !diagnostics.isEmpty { out += "\n" }
        for d in diagnostics {
            var where_ = ""
            if let file = d.file, let line = d.line, let column = d.column { where_ = "\(file):\(line):\(column): " }
            let label = d.severity == "error" ? style.red("error") : style.yellow("warning")
            out += "\(where_)\(label): \(d.address.map { "\($0): " } ?? "")\(d.summary)\n"
            if let hint = d.hint { out += style.dim("    hint: \(hint)") + "\n" }
        }
        if verbose, !skipped.isEmpty {
            out += "\nSkipped (not cairn/ documents):\n"
            for s in skipped {
                out += "  \(s.file):\(s.line) apiVersion \(s.apiVersion ?? "(none)"), kind \(s.kind ?? "(none)")\n"
            }
        }
        out += "\n"
        var counts = "\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")"
        if !skipped.isEmpty {
            counts += "; \(skipped.count) document\(skipped.count == 1 ? "" : "s") skipped (not Cairn's\(verbose ? "" : "; --verbose lists them"))"
        }
        if valid {
            out += style.green("✓ valid") + ": \(documents) manifest\(documents == 1 ? "" : "s") in \(files) file\(files == 1 ? "" : "s"), \(counts)\n"
        } else {
            out += style.red("✗ invalid") + ": \(counts)\n"
        }
        return out
    }
}
