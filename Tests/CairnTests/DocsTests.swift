import Foundation
import Testing

/// The documentation stays true: every field the JSON Schemas define is in the manifest
/// reference, every relative link in the repository's Markdown resolves (files and headings),
/// and every command and exit status is in the command-line page.
@Suite struct DocsTests {
    static let root = packageRoot

    /// Every property path a schema defines (`spec.approval.gates[].maxRegression`), through
    /// `properties`, `items`, `oneOf`/`anyOf`/`allOf` and `if`/`then`/`else`.
    static func fieldPaths(_ node: Any, _ path: String = "", into out: inout Set<String>) {
        guard let node = node as? [String: Any] else { return }
        for key in ["oneOf", "anyOf", "allOf"] {
            for sub in node[key] as? [Any] ?? [] { fieldPaths(sub, path, into: &out) }
        }
        for key in ["if", "then", "else"] { if let sub = node[key] { fieldPaths(sub, path, into: &out) } }
        for (name, sub) in node["properties"] as? [String: Any] ?? [:] {
            let p = path.isEmpty ? name : path + "." + name
            out.insert(p)
            fieldPaths(sub, p, into: &out)
        }
        if let items = node["items"] { fieldPaths(items, path + "[]", into: &out) }
    }

    /// The text of `## heading` up to the next `## `.
    static func section(_ text: String, _ heading: String) -> String? {
        guard let start = text.range(of: "\n## \(heading)\n") else { return nil }
        let rest = text[start.upperBound...]
        return String(rest[..<(rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex)])
    }

    @Test func everySchemaFieldIsInTheManifestReference() throws {
        let reference = try String(contentsOf: Self.root.appendingPathComponent("docs/manifests.md"), encoding: .utf8)
        let kinds = ["outcome-weights": "OutcomeWeights", "template": "Template", "model": "Model", "serving-target": "ServingTarget",
                     "model-family": "ModelFamily"]
        var checked = 0
        for (file, kind) in kinds {
            let data = try Data(contentsOf: Self.root.appendingPathComponent("schemas/\(file).schema.json"))
            var paths: Set<String> = []
            Self.fieldPaths(try JSONSerialization.jsonObject(with: data), into: &paths)
            let own = try #require(Self.section(reference, kind), "docs/manifests.md has no '## \(kind)' section")
            let common = try #require(Self.section(reference, "Common fields"))
            for path in paths.sorted() {
                let where_ = path.hasPrefix("spec.") ? own : common
                #expect(where_.contains("`\(path)`"), "docs/manifests.md: \(kind) lacks `\(path)` (\(file).schema.json defines it)")
                checked += 1
            }
        }
        #expect(checked > 60, "the walk found the schemas' fields")
    }

    /// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
    static func anchor(_ heading: String) -> String {
        String(heading.lowercased().compactMap { c -> Character? in
            if c == " " { return "-" }
            return c.isLetter || c.isNumber || c == "-" || c == "_" ? c : nil
        })
    }

    static func markdownFiles() throws -> [URL] {
        var out: [URL] = []
        let skip: Set<String> = [".build", ".git", "bench-out", "reliability-out", "node_modules"]
        let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isDirectoryKey])!
        for case let url as URL in walker {
            if skip.contains(url.lastPathComponent) || url.lastPathComponent.hasPrefix(".build") {
                walker.skipDescendants()
                continue
            }
            if url.pathExtension == "md" { out.append(url) }
        }
        return out
    }

    /// The text outside fenced code blocks.
    static func prose(_ text: String) -> String {
        var inFence = false
        return text.split(separator: "\n", omittingEmptySubsequences: false).filter { line in
            if line.hasPrefix("```") { inFence.toggle(); return false }
            return !inFence
        }.joined(separator: "\n")
    }

    @Test func everyRelativeLinkResolves() throws {
        let files = try Self.markdownFiles()
        #expect(files.contains { $0.path.hasSuffix("docs/manifests.md") } && files.count >= 8, "\(files.map(\.lastPathComponent))")
        let link = try Regex(#"\]\(([^)\s]+)\)"#)
        var checked = 0
        for file in files {
            let text = Self.prose(try String(contentsOf: file, encoding: .utf8))
            for match in text.matches(of: link) {
                let target = String(text[match.output[1].range!])
                if target.hasPrefix("http://") || target.hasPrefix("https://") || target.hasPrefix("mailto:") { continue }
                let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                let resolved = parts[0].isEmpty ? file : file.deletingLastPathComponent().appendingPathComponent(parts[0]).standardizedFileURL
                let name = file.path.replacingOccurrences(of: Self.root.path + "/", with: "")
                guard FileManager.default.fileExists(atPath: resolved.path) else {
                    Issue.record("\(name): link to \(target): no such file")
                    continue
                }
                checked += 1
                if parts.count == 2, resolved.pathExtension == "md" {
                    let headings = try String(contentsOf: resolved, encoding: .utf8).split(separator: "\n")
                        .filter { $0.hasPrefix("#") }.map { Self.anchor($0.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces)) }
                    #expect(headings.contains(parts[1]), "\(name): link to \(target): no such heading (has \(headings))")
                }
            }
        }
        #expect(checked > 20)
    }

    @Test func theDocsAreLinkedFromTheReadme() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        for page in ["manifests", "reconcile", "cli", "trainers", "daemon", "security", "registry"] {
            #expect(readme.contains("(docs/\(page).md"), "README.md does not link docs/\(page).md")
        }
    }

    /// Every command `cairn --help` lists is on the command-line page, and the usage-error
    /// status the page documents is the one the binary gives.
    @Test func everyCommandAndExitStatusIsDocumented() throws {
        let page = try String(contentsOf: Self.root.appendingPathComponent("docs/cli.md"), encoding: .utf8)
        let help = try cairn(["--help"]).stdout
        let commands = help.components(separatedBy: "SUBCOMMANDS:").last!.split(separator: "\n")
            .compactMap { line -> String? in
                let words = line.split(separator: " ")
                guard line.hasPrefix("  "), !line.hasPrefix("    "), let first = words.first, first.first?.isLowercase == true else { return nil }
                return String(first)
            }
        #expect(commands.count >= 15, "\(commands)")
        for command in commands where command != "help" {
            #expect(page.contains("`cairn \(command)"), "docs/cli.md does not document `cairn \(command)`")
        }
        #expect(page.contains("**64** on a\nusage error"))
        for args in [["plan", "--no-such-option"], ["no-such-command"], ["reconcile", "--dry-run", "--wait"], ["versions"]] {
            #expect(try cairn(args).status == 64, "\(args)")
        }
        #expect(page.contains("0 applied or nothing to do, 3 applied with blocked items left"))
    }

    /// Where the README, RELIABILITY.md or docs/ name a test (`SuiteTests.testName`, a
    /// `…Tests.swift` file, a suite), it exists: a promise never points at a test that is gone
    /// or was renamed.
    @Test func everyTestTheDocsNameExists() throws {
        let tests = Self.root.appendingPathComponent("Tests/CairnTests")
        var source = ""
        for file in try FileManager.default.contentsOfDirectory(atPath: tests.path) where file.hasSuffix(".swift") {
            source += try String(contentsOf: tests.appendingPathComponent(file), encoding: .utf8)
        }
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: tests.path))
        let docs = ["README.md", "RELIABILITY.md"] + (try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("docs").path))
            .filter { $0.hasSuffix(".md") }.map { "docs/" + $0 }
        var named = 0
        for doc in docs {
            let text = try String(contentsOf: Self.root.appendingPathComponent(doc), encoding: .utf8)
            for match in text.matches(of: try Regex(#"\b([A-Z][A-Za-z]+Tests)\.([a-z][A-Za-z0-9]*)(…)?"#)) {
                let suite = String(text[match.output[1].range!]), test = String(text[match.output[2].range!])
                if test == "swift" {
                    #expect(files.contains(suite + ".swift"), "\(doc) names \(suite).swift, which does not exist")
                } else {
                    // `name…` abbreviates: the test's name starts so.
                    let declared = match.output[3].range != nil ? "func \(test)" : "func \(test)("
                    #expect(source.contains("struct \(suite)") && source.contains(declared), "\(doc) names \(suite).\(test), which does not exist")
                }
                named += 1
            }
            for match in text.matches(of: try Regex(#"`([A-Z][A-Za-z]+Tests)`"#)) {
                let suite = String(text[match.output[1].range!])
                #expect(source.contains("struct \(suite)"), "\(doc) names the suite \(suite), which does not exist")
                named += 1
            }
        }
        #expect(named >= 10, "the scan found the tests the docs name")
    }
}
