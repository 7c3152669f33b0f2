import CairnCore
import CairnManifests
import CairnYAML
import Foundation
import Testing

/// A fixture's first line says what it must produce: `# expect: LINE:COLUMN text`.
struct ExpectedError {
    var line: Int
    var column: Int
    var text: String

    init(fixture: String) throws {
        let first = fixture.split(separator: "\n", maxSplits: 1)[0]
        guard first.hasPrefix("# expect: ") else { throw FixtureError("fixture has no `# expect:` line") }
        let rest = first.dropFirst("# expect: ".count)
        let parts = rest.split(separator: " ", maxSplits: 1)
        let pos = parts[0].split(separator: ":")
        line = Int(pos[0])!
        column = Int(pos[1])!
        text = String(parts[1])
    }
}

func fixtureFiles(_ folder: String) -> [URL] {
    let dir = fixturesRoot.appendingPathComponent("manifests/\(folder)")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    return names.filter { $0.hasSuffix(".yaml") }.sorted().map { dir.appendingPathComponent($0) }
}

func decodeDocuments(_ text: String, file: String) throws -> [DocumentDecoder.Result] {
    try YAMLLoader.load(text).map { DocumentDecoder.decode($0, file: file) }
}

@Suite struct DecoderFixtureTests {
    static let invalid = fixtureFiles("invalid") + fixtureFiles("beyond-schema")

    @Test(arguments: invalid)
    func invalidFixtureGivesThePreciseError(_ url: URL) throws {
        let text = try String(contentsOf: url, encoding: .utf8)
        let expected = try ExpectedError(fixture: text)
        let results = try decodeDocuments(text, file: url.lastPathComponent)
        #expect(results.count == 1)
        guard case .invalid = results[0].outcome else {
            Issue.record("\(url.lastPathComponent) decoded without error")
            return
        }
        let errors = results[0].diagnostics.errors
        let match = errors.first {
            $0.location?.line == expected.line && $0.location?.column == expected.column && $0.oneLine.contains(expected.text)
        }
        #expect(match != nil, "\(url.lastPathComponent): wanted \(expected.line):\(expected.column) '\(expected.text)', got \(errors.map(\.oneLine))")
        // Every error says what to do, not only what is wrong.
        for error in errors where error.hint == nil && !error.summary.contains("must be") {
            Issue.record("\(url.lastPathComponent): error without a hint: \(error.oneLine)")
        }
    }

    @Test func errorsCarryTheDocumentAddress() throws {
        let text = "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: m}\nspec: {template: t, stage: chmpion}\n"
        let result = try decodeDocuments(text, file: "models.yaml")[0]
        let error = try #require(result.diagnostics.errors.first)
        #expect(error.address == "Model/m")
        #expect(error.oneLine == "models.yaml:4:28: error: Model/m: spec.stage has unknown value 'chmpion' (did you mean 'champion'? use one of: none, shadow, challenger, champion)")
    }

    @Test func allErrorsOfADocumentAreCollected() throws {
        let text = """
        apiVersion: cairn/v1
        kind: Template
        metadata: {name: many}
        spec:
          events: [click, click]
          outcomeWeights: Retail
          dataset: {}
          trainer: {kind: builtin, algorithm: knn}
          evaluation: {metrics: [], holdout: 2}
          extra: 1
        """
        let result = try decodeDocuments(text, file: "t.yaml")[0]
        let lines = result.diagnostics.errors.compactMap(\.location?.line)
        #expect(Set(lines) == [5, 6, 7, 8, 9, 10])
    }

    @Test(arguments: fixtureFiles("valid"))
    func validFixtureDecodes(_ url: URL) throws {
        let text = try String(contentsOf: url, encoding: .utf8)
        for result in try decodeDocuments(text, file: url.lastPathComponent) {
            #expect(result.diagnostics.errors.isEmpty, "\(url.lastPathComponent): \(result.diagnostics.map(\.oneLine))")
            guard case .decoded = result.outcome else { Issue.record("\(url.lastPathComponent) did not decode"); continue }
        }
    }

    @Test func decodedValuesMatchTheText() throws {
        let url = fixturesRoot.appendingPathComponent("manifests/valid/model-everything.yaml")
        let result = try decodeDocuments(try String(contentsOf: url, encoding: .utf8), file: "m.yaml")[0]
        guard case let .decoded(.model(m)) = result.outcome else { Issue.record("not a model"); return }
        #expect(m.lifecycle == .active)
        #expect(m.stage == .challenger)
        #expect(m.family == "search")
        #expect(m.traits == ["a", "b-c", "d_e"])
        #expect(m.learning == Model.Learning(mode: .scheduled, every: ManifestDuration(seconds: 7 * 86400)))
        #expect(m.retrainToken == "2026-11-20")
        #expect(m.approval.gates == [Model.Gate(metric: "auc", min: 0.6, max: 1), Model.Gate(metric: "ndcg@10", maxRegression: 0)])
        #expect(m.decisions == Model.Decisions(approve: [1, 3], reject: [2]))
        #expect(m.metadata.labels == ["team": "search"])

        let exec = fixturesRoot.appendingPathComponent("manifests/valid/exec-template.yaml")
        let t = try decodeDocuments(try String(contentsOf: exec, encoding: .utf8), file: "t.yaml")[0]
        guard case let .decoded(.template(template)) = t.outcome else { Issue.record("not a template"); return }
        #expect(template.dataset == .uri("file:///srv/data/interactions.csv"))
        guard case let .exec(command, timeout, env, params) = template.trainer else { Issue.record("not exec"); return }
        #expect(command == ["python3", "train/train.py", "--epochs", "3"])
        #expect(timeout == ManifestDuration(seconds: 5400))
        #expect(env == ["OMP_NUM_THREADS": "2"])
        #expect(params["layers"] == .array([.int(64), .int(32)]))
        #expect(template.evaluation == Template.Evaluation(holdout: 0.1, metrics: ["auc", "ndcg@10"], seed: 0))
    }

    @Test func defaultsAreInert() throws {
        let result = try decodeDocuments("apiVersion: cairn/v1\nkind: Model\nmetadata: {name: m}\nspec: {template: t}\n", file: "m.yaml")[0]
        guard case let .decoded(.model(m)) = result.outcome else { Issue.record("not a model"); return }
        #expect(m.lifecycle == .draft)
        #expect(m.stage == .none)
        #expect(m.learning.mode == .none)
        #expect(m.approval.mode == .manual)
    }

    @Test func yaml11BooleanStringsWarn() throws {
        let text = "apiVersion: cairn/v1\nkind: ServingTarget\nmetadata: {name: s}\nspec: {tenant: no, surface: home, routes: [{model: m, version: 1}]}\n"
        let result = try decodeDocuments(text, file: "s.yaml")[0]
        guard case let .decoded(.servingTarget(t)) = result.outcome else { Issue.record("not decoded"); return }
        #expect(t.tenant == "no")
        #expect(result.diagnostics.warnings.first?.oneLine.contains("YAML 1.1 tools read it as a boolean") == true)
    }

    @Test func foreignDocumentsAreSkipped() throws {
        let result = try decodeDocuments("name: CI\non: [push]\njobs: {}\n", file: ".github/ci.yaml")[0]
        guard case .skipped = result.outcome else { Issue.record("not skipped"); return }
        #expect(result.diagnostics.isEmpty)
    }

    @Test func durations() {
        #expect(ManifestDuration(parsing: "1h30m")?.seconds == 5400)
        #expect(ManifestDuration(parsing: "7d")?.seconds == 604_800)
        #expect(ManifestDuration(seconds: 5400).description == "1h30m")
        #expect(ManifestDuration(parsing: "30") == nil)
        #expect(ManifestDuration(parsing: "m") == nil)
        #expect(ManifestDuration(parsing: "5w") == nil)
        #expect(ManifestDuration(parsing: "99999999999999999999d") == nil)
    }
}
