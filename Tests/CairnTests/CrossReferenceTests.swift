import CairnCore
import CairnManifests
import Foundation
import Testing

let weightsDoc = "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: 1}}\n"

func templateDoc(_ name: String, weights: String = "w", dataset: String = "data/i.csv", metrics: String = "[ndcg@10]") -> String {
    """
    apiVersion: cairn/v1
    kind: Template
    metadata: {name: \(name)}
    spec:
      events: [click, convert]
      outcomeWeights: \(weights)
      dataset: {path: \(dataset)}
      trainer: {kind: builtin, algorithm: popularity}
      evaluation: {metrics: \(metrics)}

    """
}

func modelDoc(_ name: String, template: String = "t", extra: String = "") -> String {
    "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: \(name)}\nspec:\n  template: \(template)\n\(extra)"
}

@Suite struct CrossReferenceTests {
    func load(_ files: [String: String], links: [String: String] = [:], root: String = "") -> LoadedManifests {
        var tree = MemoryTree(files: files, links: links)
        if tree.files["data/i.csv"] == nil { tree.files["data/i.csv"] = "user_id,item_id,event,timestamp\n" }
        return ManifestLoader.load(tree.snapshot(root: root))
    }

    func messages(_ loaded: LoadedManifests) -> [String] { loaded.diagnostics.map(\.oneLine) }

    @Test func missingReferencesAreReportedAtTheField() {
        let loaded = load([
            "a.yaml": templateDoc("t", weights: "retail"),
            "b.yaml": modelDoc("m", template: "tmpl"),
            "c.yaml": "apiVersion: cairn/v1\nkind: ServingTarget\nmetadata: {name: s}\nspec:\n  tenant: a\n  surface: b\n  routes: [{model: nope, version: 1}]\n",
        ])
        #expect(!loaded.isValid)
        #expect(messages(loaded).contains { $0.hasPrefix("a.yaml:6:19: error: Template/t: spec.outcomeWeights refers to OutcomeWeights/retail") })
        #expect(messages(loaded).contains { $0.hasPrefix("b.yaml:5:13: error: Model/m: spec.template refers to Template/tmpl") && $0.contains("did you mean") == false })
        #expect(messages(loaded).contains { $0.hasPrefix("c.yaml:7:20: error: ServingTarget/s: spec.routes[0].model refers to Model/nope") }, "\(messages(loaded))")
    }

    /// A document that fails to decode but whose kind and name can be read still exists for
    /// references: its own error is the one reported, not a "does not exist" in every file
    /// that refers to it (which sorted first and led serve's Stalled message).
    @Test func aDocumentThatFailsToDecodeStillCountsForReferences() {
        let broken = templateDoc("t").replacingOccurrences(of: "  events: [click, convert]\n", with: "  events: [click, convert]\n  evnets: [view]\n")
        let loaded = load(["a.yaml": weightsDoc, "b.yaml": broken, "c.yaml": modelDoc("m", template: "t")])
        #expect(!loaded.isValid)
        #expect(loaded.diagnostics.errors.count == 1, "\(messages(loaded))")
        #expect(messages(loaded).first?.hasPrefix("b.yaml:6:3: error: Template/t: unknown field 'spec.evnets' (did you mean 'events'? remove it; "
                                                  + "known fields here: displayName, events, outcomeWeights, dataset, trainer, evaluation, items, tuning)") == true, "\(messages(loaded))")
        #expect(!messages(loaded).contains { $0.contains("does not exist") })
    }

    /// A dataset committed as a Git LFS pointer is caught by validation, not at training time.
    @Test func aDatasetThatIsAGitLFSPointerIsAnError() {
        let pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"
        let loaded = load(["a.yaml": weightsDoc + "---\n" + templateDoc("t"), "data/i.csv": pointer])
        #expect(!loaded.isValid)
        #expect(messages(loaded).contains { $0.contains("spec.dataset.path 'data/i.csv' is a Git LFS pointer, not the data") }, "\(messages(loaded))")
    }

    @Test func suggestsTheNearestName() {
        let loaded = load(["a.yaml": weightsDoc + "---\n" + templateDoc("engagement"), "b.yaml": modelDoc("m", template: "engagment")])
        #expect(messages(loaded).contains { $0.contains("did you mean 'engagement'?") })
    }

    @Test func namesAreUniquePerKind() {
        let loaded = load(["a.yaml": weightsDoc, "b.yaml": weightsDoc + "---\n" + templateDoc("w")])
        let dup = loaded.diagnostics.errors
        #expect(dup.count == 1)
        #expect(dup.first?.oneLine.hasPrefix("b.yaml:1:1: error: OutcomeWeights/w: OutcomeWeights/w is defined twice (first at a.yaml:1:1)") == true)
    }

    @Test func oneChampionPerFamily() {
        let champion = "  lifecycle: active\n  family: home\n  stage: champion\n"
        let loaded = load(["a.yaml": weightsDoc + "---\n" + templateDoc("t"), "m.yaml": modelDoc("m1", extra: champion) + "---\n" + modelDoc("m2", extra: champion)])
        #expect(messages(loaded).contains { $0.contains("Model/m2: family home has two champions: Model/m1 and Model/m2") })
    }

    @Test func familyRouteNeedsAChampion() {
        let challenger = "  lifecycle: active\n  family: home\n  stage: challenger\n"
        let target = "apiVersion: cairn/v1\nkind: ServingTarget\nmetadata: {name: s}\nspec:\n  tenant: a\n  surface: b\n  routes: [{family: home, version: champion}]\n"
        let loaded = load(["a.yaml": weightsDoc + "---\n" + templateDoc("t"), "m.yaml": modelDoc("m1", extra: challenger), "s.yaml": target])
        #expect(messages(loaded).contains { $0.contains("asks for the champion of family home, which has none") && $0.contains("set `stage: champion` on one of m1") })
    }

    @Test func gateMetricsMustBeMeasured() {
        let gated = "  approval:\n    mode: gated\n    gates: [{metric: recall@20, min: 0.1}]\n"
        let loaded = load(["a.yaml": weightsDoc + "---\n" + templateDoc("t"), "m.yaml": modelDoc("m", extra: gated)])
        #expect(messages(loaded).contains { $0.contains("checks recall@20, which Template/t does not measure") })
    }

    @Test func unweightedEventsWarn() {
        let loaded = load(["a.yaml": weightsDoc + "---\n" + templateDoc("t")])
        #expect(loaded.isValid)
        #expect(loaded.diagnostics.warnings.first?.summary.contains("events convert have no weight") == true)
    }

    @Test func datasetPathsStayInTheRepository() {
        func problem(_ path: String, links: [String: String] = [:], root: String = "") -> String? {
            let prefix = root.isEmpty ? "" : root + "/"
            let loaded = load([prefix + "a.yaml": weightsDoc + "---\n" + templateDoc("t", dataset: path), "data/i.csv": "x\n",
                               "secret/s.csv": "x\n"], links: links, root: root)
            return loaded.diagnostics.errors.first?.summary
        }
        #expect(problem("data/i.csv") == nil)
        #expect(problem("./data/../data/i.csv") == nil)
        #expect(problem("../data/i.csv", root: "fleet") == nil)
        #expect(problem("data/missing.csv")?.contains("does not exist at this revision") == true)
        #expect(problem("../../etc/passwd", root: "fleet")?.contains("leaves the repository") == true)
        #expect(problem("data")?.contains("is not a file") == true)
        #expect(problem("link.csv", links: ["link.csv": "/etc/passwd"])?.contains("points outside the repository") == true)
        #expect(problem("link.csv", links: ["link.csv": "../outside.csv"])?.contains("points outside the repository") == true)
        #expect(problem("inner/i.csv", links: ["inner": "data"]) == nil)
        #expect(problem("loop.csv", links: ["loop.csv": "loop.csv"])?.contains("more than 40 symlinks") == true)
    }

    @Test func theExampleFleetIsValid() throws {
        let repo = try GitFixture()
        try repo.copyExamples(to: "fleet")
        try repo.commit("fleet")
        let result = try cairn(["validate", "--repo", repo.path, "--path", "fleet", "--format", "json"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("\"documents\" : 15"))
        #expect(result.stdout.contains("\"errors\" : 0"))
    }
}
