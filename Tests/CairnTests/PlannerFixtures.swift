import CairnCore
import CairnManifests
import CairnRender
import Foundation
import Testing

/// A golden planner case: `Tests/Fixtures/planner/<case>/`
/// - `desired/`: the manifests of the revision being planned (plus data files),
/// - `previous/` (optional, defaults to `desired/`): the manifests as last applied,
/// - `observed.json`: what happened since (stages, versions, runs, live targets); see `ObservedFixture`,
/// - `plan.json`: the expected plan, byte for byte.
///
/// `CAIRN_UPDATE_GOLDEN=1 swift test` rewrites `plan.json` files and fails ("goldens updated: review the diff"); read the diff before committing.
struct PlannerCase: CustomStringConvertible, Sendable {
    let name: String
    var folder: URL { fixturesRoot.appendingPathComponent("planner/\(name)") }
    var description: String { name }

    static let now: Int64 = 1_800_000_000
    static let commit = CommitInfo(sha: String(repeating: "c", count: 40), authorName: "Ada Operator", authorEmail: "ada@example.com",
                                   time: 1_799_990_000, summary: "fixture")

    static var all: [PlannerCase] {
        let dir = fixturesRoot.appendingPathComponent("planner")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") }.sorted().map(PlannerCase.init)
    }

    /// Reads a folder of manifests into a loaded, validated set.
    static func load(_ dir: URL) throws -> (LoadedManifests, MemoryTree) {
        var tree = MemoryTree()
        let e = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil)
        while let url = e?.nextObject() as? URL {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            let relative = String(url.path.dropFirst(dir.path.count + 1))
            tree.files[relative] = try String(contentsOf: url, encoding: .utf8)
        }
        let loaded = ManifestLoader.load(tree.snapshot())
        guard loaded.isValid else { throw FixtureError("\(dir.lastPathComponent) is invalid: \(loaded.diagnostics.errors.map(\.oneLine))") }
        return (loaded, tree)
    }

    static func desiredState(_ loaded: LoadedManifests, _ tree: MemoryTree, commit: CommitInfo = commit) throws -> DesiredState {
        try loaded.desiredState(tree: tree, commit: commit, revisionName: "main")
    }

    func run() throws -> Plan {
        let (desiredLoaded, desiredTree) = try Self.load(folder.appendingPathComponent("desired"))
        let desired = try Self.desiredState(desiredLoaded, desiredTree)
        let previousDir = folder.appendingPathComponent("previous")
        let previous = FileManager.default.fileExists(atPath: previousDir.path)
            ? try Self.desiredState(Self.load(previousDir).0, Self.load(previousDir).1) : desired
        let fixtureData = try Data(contentsOf: folder.appendingPathComponent("observed.json"))
        let fixture = try JSONDecoder().decode(ObservedFixture.self, from: fixtureData)
        let observed = try fixture.build(previous: previous, desired: desired)
        let options = PlannerOptions(maxPromotions: fixture.maxPromotions ?? 20, allowBulk: false,
                                     modelQuotas: try ModelQuotas.parse(fixture.modelQuotas ?? []))
        // `evidence.json` (optional): the online evidence read for the plan.
        let evidenceFile = folder.appendingPathComponent("evidence.json")
        let evidence = FileManager.default.fileExists(atPath: evidenceFile.path)
            ? try JSONDecoder().decode(Evidence.self, from: Data(contentsOf: evidenceFile)) : .none
        return Planner.plan(desired: desired, observed: observed, evidence: evidence, now: Self.now, options: options)
    }
}

/// `observed.json`: the observed state as "the previous manifests, applied as they are", plus:
/// ```json
/// {"generation": 9, "models": {"m": {"stage": "champion", "firstReadyAt": 1, "notApplied": false,
///    "versions": [{"number": 1, "status": "approved", "metrics": {"ndcg@10": 0.3}, "fingerprint": "previous"}]}},
///  "runs": [{"id": 4, "model": "m", "state": "running", "fingerprint": "desired", "finishedAt": 1}],
///  "targets": {"t": {"routes": [{"model": "m", "version": 1, "weight": 100}], "drift": {...}}},
///  "notApplied": ["Template/x"], "maxPromotions": 20}
/// ```
/// A version or run is trained on the previous manifests' fingerprint unless it says
/// `"fingerprint": "desired"` or `"stale"` (older than both).
struct ObservedFixture: Decodable {
    struct VersionFixture: Decodable {
        var number: Int
        var status: ModelVersion.Status
        var metrics: [String: Double]?
        var fingerprint: Trained?
    }

    /// Which manifests a version or run was trained from: the previous ones (the default),
    /// the desired ones, or something older than both.
    enum Trained: String, Decodable {
        case previous, desired, stale
    }

    struct ModelFixture: Decodable {
        var stage: Model.Stage?
        var firstReadyAt: Int64?
        var versions: [VersionFixture]?
        var archived: Bool?
    }

    struct RunFixture: Decodable {
        var id: Int
        var model: String
        var state: TrainingRun.State
        var fingerprint: Trained?
        var reason: String?
        var finishedAt: Int64?
    }

    struct TargetFixture: Decodable {
        var tenant: String?
        var surface: String?
        var routes: [LiveRoute]
        var shadow: [LiveRoute]?
        var assigned: Bool?
        var drift: DriftRecord?
    }

    var generation: Int?
    var lastAppliedRevision: String?
    var suspended: Bool?
    var notApplied: [String]?
    var models: [String: ModelFixture]?
    var runs: [RunFixture]?
    var targets: [String: TargetFixture]?
    var maxPromotions: Int?
    /// `--model-quota` items (`["lab=1"]`).
    var modelQuotas: [String]?

    func build(previous: DesiredState, desired: DesiredState) throws -> ObservedState {
        let skip = Set(notApplied ?? [])
        var state = ObservedState(generation: generation ?? 1, lastAppliedRevision: lastAppliedRevision ?? String(repeating: "b", count: 40),
                                  suspended: suspended ?? false)
        let m = previous.manifests
        for w in m.outcomeWeights where !skip.contains("OutcomeWeights/\(w.metadata.name)") {
            state.weights[w.metadata.name] = ObservedWeights(spec: w)
        }
        for t in m.templates where !skip.contains("Template/\(t.metadata.name)") {
            state.templates[t.metadata.name] = ObservedTemplate(spec: t)
        }
        func inputs(_ name: String, _ trained: Trained?) throws -> FingerprintInputs {
            let source = trained == .desired ? desired : previous
            guard let model = source.manifests.models.first(where: { $0.metadata.name == name }),
                  let template = source.manifests.templates.first(where: { $0.metadata.name == model.template }),
                  let weights = source.manifests.outcomeWeights.first(where: { $0.metadata.name == template.outcomeWeights }) else {
                throw FixtureError("cannot compute the \(trained ?? .previous) fingerprint of \(name)")
            }
            var i = FingerprintInputs.forModel(model, template: template, weights: weights,
                                               datasetHash: source.datasetHashes[template.metadata.name])
            if trained == .stale { i.template = "stale-" + i.template }
            return i
        }
        for model in m.models where !skip.contains("Model/\(model.metadata.name)") {
            let name = model.metadata.name
            let f = models?[name]
            var spec = model
            if f?.archived == true { spec.lifecycle = .archived }
            let versions = try (f?.versions ?? []).map { v in
                let i = try inputs(name, v.fingerprint)
                return ModelVersion(model: name, number: v.number, systemName: "\(model.template) v\(v.number) · train-\(v.number)-1799000000",
                                    status: v.status, metrics: v.metrics ?? [:], fingerprint: i.fingerprint, fingerprintInputs: i,
                                    datasetHash: i.dataset, commit: String(repeating: "b", count: 40), trainerVersion: "builtin-1",
                                    runID: 100 + v.number, createdAt: 1_799_000_000)
            }
            state.models[name] = ObservedModel(spec: spec, stage: f?.stage ?? (spec.lifecycle == .active ? model.stage : Model.Stage.none),
                                               firstReadyAt: f?.firstReadyAt, versions: versions)
        }
        state.runs = try (runs ?? []).map { r in
            TrainingRun(id: r.id, model: r.model, fingerprint: try inputs(r.model, r.fingerprint).fingerprint, state: r.state, reason: r.reason,
                               createdAt: 1_799_000_000, finishedAt: r.finishedAt, version: nil)
        }
        for (name, t) in targets ?? [:] {
            let declared = m.servingTargets.first { $0.metadata.name == name }
            state.targets[name] = ObservedTarget(name: name, tenant: t.tenant ?? declared?.tenant ?? "acme", surface: t.surface ?? declared?.surface ?? "home",
                                                 routes: t.routes, shadow: t.shadow ?? [], assigned: t.assigned ?? true, drift: t.drift)
        }
        return state
    }
}

@Suite struct PlannerGoldenTests {
    @Test(arguments: PlannerCase.all)
    func planMatchesGolden(_ c: PlannerCase) throws {
        let plan = try c.run()
        let json = PlanRenderer.json(plan)
        let expectedURL = c.folder.appendingPathComponent("plan.json")
        if ProcessInfo.processInfo.environment["CAIRN_UPDATE_GOLDEN"] == "1" {
            // A recording run never passes: what it wrote is to be read before it is trusted.
            let old = try? String(contentsOf: expectedURL, encoding: .utf8)
            try Data(json.utf8).write(to: expectedURL)
            Issue.record("goldens updated: review the diff (\(c.name)/plan.json \(old == json ? "unchanged" : "rewritten"))")
            return
        }
        let expected = try String(contentsOf: expectedURL, encoding: .utf8)
        #expect(json == expected, "\(c.name): plan differs from plan.json (CAIRN_UPDATE_GOLDEN=1 rewrites it; review the diff)")
    }

    @Test(arguments: PlannerCase.all)
    func planIsDeterministic(_ c: PlannerCase) throws {
        #expect(PlanRenderer.json(try c.run()) == PlanRenderer.json(try c.run()))
    }

    @Test(arguments: PlannerCase.all)
    func planRoundTripsThroughJSON(_ c: PlannerCase) throws {
        let plan = try c.run()
        let decoded = try JSONDecoder().decode(Plan.self, from: Data(PlanRenderer.json(plan).utf8))
        #expect(decoded == plan)
    }
}
