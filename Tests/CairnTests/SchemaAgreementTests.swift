import CairnManifests
import CairnYAML
import Foundation
import Testing

/// The JSON Schemas in schemas/ and the Swift decoder must agree: every example and valid
/// fixture passes both, every invalid fixture fails both. Documents reach the schema as JSON
/// made by Cairn's own loader, so both sides judge the same values.
@Suite struct SchemaAgreementTests {
    struct Case {
        var name: String
        var json: String
        var decoderAccepts: Bool
    }

    func cases(_ urls: [URL]) throws -> [Case] {
        var out: [Case] = []
        for url in urls {
            let text = try String(contentsOf: url, encoding: .utf8)
            for (i, document) in try YAMLLoader.load(text).enumerated() {
                let result = DocumentDecoder.decode(document, file: url.lastPathComponent)
                let accepted: Bool
                switch result.outcome {
                case .decoded: accepted = true
                case .invalid: accepted = false
                case .skipped: continue
                }
                out.append(Case(name: "\(url.lastPathComponent)#\(i)", json: document.root.jsonValue.canonicalText, decoderAccepts: accepted))
            }
        }
        return out
    }

    /// Runs Tests/schema_check.py over the cases; returns name → (valid, message).
    func schemaVerdicts(_ cases: [Case]) throws -> [String: (Bool, String)] {
        let dir = TempDir("cairn-schema")
        var paths: [String] = []
        var names: [String: String] = [:]
        for (i, c) in cases.enumerated() {
            let path = dir.url.appendingPathComponent("\(i).json").path
            try Data(c.json.utf8).write(to: URL(fileURLWithPath: path))
            paths.append(path)
            names[path] = c.name
        }
        let script = packageRoot.appendingPathComponent("Tests/schema_check.py").path
        let result = try runProcess("/usr/bin/env", ["python3", script, packageRoot.appendingPathComponent("schemas").path] + paths)
        try #require(result.status == 0, "schema_check.py failed (is python3-jsonschema installed?): \(result.stderr)")
        var verdicts: [String: (Bool, String)] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 2).map(String.init)
            verdicts[names[parts[0]]!] = (parts[1] == "valid", parts.count > 2 ? parts[2] : "")
        }
        try #require(verdicts.count == cases.count)
        return verdicts
    }

    func exampleFiles() -> [URL] {
        let root = packageRoot.appendingPathComponent("examples/fleet")
        let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
        var out: [URL] = []
        while let url = e?.nextObject() as? URL {
            if url.pathExtension == "yaml" { out.append(url) }
        }
        return out.sorted { $0.path < $1.path }
    }

    @Test func validDocumentsPassBoth() throws {
        let all = try cases(exampleFiles() + fixtureFiles("valid"))
        #expect(all.count >= 19)
        let verdicts = try schemaVerdicts(all)
        for c in all {
            #expect(c.decoderAccepts, "decoder rejects \(c.name)")
            #expect(verdicts[c.name]?.0 == true, "schema rejects \(c.name): \(verdicts[c.name]?.1 ?? "")")
        }
    }

    @Test func invalidDocumentsFailBoth() throws {
        let all = try cases(fixtureFiles("invalid"))
        #expect(all.count >= 30)
        let verdicts = try schemaVerdicts(all)
        for c in all {
            #expect(!c.decoderAccepts, "decoder accepts \(c.name)")
            #expect(verdicts[c.name]?.0 == false, "schema accepts \(c.name)")
        }
    }

    /// Rules a JSON Schema cannot state (sums, overlaps between lists): the decoder alone
    /// rejects these, and the schema must at least not reject them for another reason.
    @Test func beyondSchemaRulesAreTheDecoders() throws {
        let all = try cases(fixtureFiles("beyond-schema"))
        #expect(all.count >= 4)
        let verdicts = try schemaVerdicts(all)
        for c in all {
            #expect(!c.decoderAccepts, "decoder accepts \(c.name)")
            #expect(verdicts[c.name]?.0 == true, "schema rejects \(c.name), so it belongs in invalid/: \(verdicts[c.name]?.1 ?? "")")
        }
    }

    /// Editors and `check-jsonschema` read `.nan` and `.inf` as IEEE floats; the decoder refuses
    /// them, so the schemas must too. (Cairn's own JSON of a document cannot hold them, so these
    /// documents are written with Python's NaN and Infinity literals, as those tools see them.)
    @Test func nonFiniteNumbersAreRefusedByBoth() throws {
        let weights = { (value: String) in #"{"apiVersion": "cairn/v1", "kind": "OutcomeWeights", "metadata": {"name": "w"}, "spec": {"weights": {"click": 1, "view": \#(value)}}}"# }
        let gate = { (value: String) in
            #"{"apiVersion": "cairn/v1", "kind": "Model", "metadata": {"name": "m"}, "spec": {"template": "t", "approval": {"mode": "gated", "gates": [{"metric": "ndcg@10", "min": \#(value)}]}}}"#
        }
        let documents = ["weights-nan": weights("NaN"), "weights-inf": weights("Infinity"), "gate-nan": gate("NaN"), "gate-inf": gate("-Infinity"),
                         "weights-finite": weights("0.5"), "gate-finite": gate("0.2")]
        let dir = TempDir("cairn-schema-nan")
        var names: [String: String] = [:]
        for (name, text) in documents {
            let path = dir.url.appendingPathComponent("\(name).json").path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            names[path] = name
        }
        let script = packageRoot.appendingPathComponent("Tests/schema_check.py").path
        let result = try runProcess("/usr/bin/env", ["python3", script, packageRoot.appendingPathComponent("schemas").path] + names.keys.sorted())
        try #require(result.status == 0, "\(result.stderr)")
        var verdicts: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 2).map(String.init)
            verdicts[names[parts[0]]!] = parts[1]
        }
        #expect(verdicts == ["weights-nan": "invalid", "weights-inf": "invalid", "gate-nan": "invalid", "gate-inf": "invalid",
                             "weights-finite": "valid", "gate-finite": "valid"])
        // The decoder, on the YAML spelling of the same values.
        for value in [".nan", ".inf", "-.inf"] {
            let yaml = "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: 1, view: \(value)}}\n"
            let result = DocumentDecoder.decode(try YAMLLoader.load(yaml)[0], file: "w.yaml")
            guard case .invalid = result.outcome else {
                Issue.record("the decoder accepted a weight of \(value)")
                continue
            }
        }
    }

    @Test func schemasAreUpToDateWithTheirGenerator() throws {
        let result = try runProcess("/usr/bin/env", ["python3", packageRoot.appendingPathComponent("schemas/generate.py").path, "--check"])
        #expect(result.status == 0, "\(result.stdout)")
    }
}
