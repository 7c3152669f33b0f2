import CairnCore
import CairnManifests
@testable import CairnTraining
import Foundation
import Testing

/// The planner's rules for deletion, discovery and quotas (golden case 23), and the pure parts
/// of tuning, discovery and bundles.
@Suite struct RegistryOperationsUnitTests {
    @Test func deletionDiscoveryAndQuotasFollowTheirRules() throws {
        let p = try PlannerCase(name: "23-registry-operations").run()
        func blocked(_ address: String, _ action: Action) -> [String] {
            p.blocked.filter { $0.address.description == address && $0.action == action }.map(\.reason)
        }
        // A live version and a routed model are not deleted; the message names the targets.
        #expect(blocked("Model/home-a", .delete) == ["Cannot delete a version with active deployments. Remove it from serving targets first. "
                                                     + "(v1 is served by ServingTarget/acme, ServingTarget/globex)"])
        #expect(blocked("Model/home-b", .delete).first?.hasPrefix("Cannot delete model with active deployments. Remove it from serving targets first.") == true)
        // What serves nothing is deleted: a rejected version, a model nobody routes to.
        let deletes = p.changes.filter { $0.action == .delete }.map { "\($0.address)\($0.version.map { " v\($0)" } ?? "")" }
        #expect(deletes == ["Model/home-a v2", "Model/home-c"])
        // The draft asking for discovery gets its data measured; the other lab model is over quota.
        let discover = try #require(p.changes.first { $0.action == .discover })
        let traits = try #require(try discover.after?.decode(DiscoveredTraits.self))
        #expect(discover.address.description == "Model/lab-next" && traits.users == 3 && traits.items == 3 && traits.eventsByType == ["click": 3, "convert": 1] && traits.otherEvents == 1)
        #expect(blocked("Model/lab-other", .create) == ["quota: tenant lab has 1 registered model of the 1 allowed (--model-quota lab=1; "
                                                        + "archived models count until deleted): delete a model for good (`lifecycle: deleted`), or ask the operator to raise the quota"])
        #expect(!p.changes.contains { $0.address.description == "Model/lab-other" })
    }

    /// A model with a running trainer is deleted only once the run ends (nothing it started may
    /// outlive the model); the in-memory twin refuses the same.
    @Test func aRunningRunHoldsAModelsDeletion() throws {
        let c = PlannerCase(name: "23-registry-operations")
        let (loaded, tree) = try PlannerCase.load(c.folder.appendingPathComponent("desired"))
        let desired = try PlannerCase.desiredState(loaded, tree)
        var observed = try JSONDecoder().decode(ObservedFixture.self, from: Data(contentsOf: c.folder.appendingPathComponent("observed.json")))
            .build(previous: desired, desired: desired)
        observed.runs = [TrainingRun(id: 9, model: "home-c", fingerprint: "f", state: .running, createdAt: 1)]
        let p = Planner.plan(desired: desired, observed: observed, now: PlannerCase.now)
        #expect(!p.changes.contains { $0.action == .delete && $0.address.description == "Model/home-c" })
        #expect(p.blocked.contains { $0.address.description == "Model/home-c" && $0.reason.hasPrefix("training run 9 is running: the model is deleted once it ends") })
    }

    @Test func aGridTriesCombinationsInOrderAndRandomDrawsAreSeeded() {
        let grid = Tuning(metric: "ndcg@10", trials: 4, space: ["b": [.int(1), .int(2)], "a": [.string("x"), .string("y"), .string("z")]])
        #expect(grid.combinations == 6)
        #expect(grid.configurations(seed: 1).map { "\($0["a"]!.canonicalText)\($0["b"]!.canonicalText)" } == ["\"x\"1", "\"x\"2", "\"y\"1", "\"y\"2"])
        var random = grid
        random.strategy = .random
        random.trials = 10
        let drawn = random.configurations(seed: 7)
        #expect(drawn.count == 6 && Set(drawn.map { JSONValue.object($0).canonicalText }).count == 6, "a budget above the space tries every combination once")
        random.trials = 3
        #expect(random.configurations(seed: 7).map { JSONValue.object($0).canonicalText } == random.configurations(seed: 7).map { JSONValue.object($0).canonicalText })
        #expect(random.configurations(seed: 7).map { JSONValue.object($0).canonicalText } != random.configurations(seed: 8).map { JSONValue.object($0).canonicalText }
                || random.configurations(seed: 9).map { JSONValue.object($0).canonicalText } != random.configurations(seed: 7).map { JSONValue.object($0).canonicalText })
        var min = grid
        min.goal = .minimize
        let trials = [TuningTrial(trial: 1, params: [:], metrics: ["ndcg@10": 0.3], seconds: 1), TuningTrial(trial: 2, params: [:], metrics: ["ndcg@10": 0.2], seconds: 1),
                      TuningTrial(trial: 3, params: [:], metrics: ["ndcg@10": 0.3], seconds: 1)]
        #expect(grid.best(of: trials)?.trial == 1, "the earliest of equals")
        #expect(min.best(of: trials)?.trial == 2)
    }

    /// Hostile input: a space whose combinations overflow an integer is refused with its place,
    /// not a crash.
    @Test func aHugeTuningSpaceIsRefusedWithItsPlace() {
        let space = (1...30).map { "p\($0): [\((1...10).map(String.init).joined(separator: ", "))]" }.joined(separator: ", ")
        let template = """
            apiVersion: cairn/v1
            kind: Template
            metadata: {name: t}
            spec:
              events: [click]
              outcomeWeights: w
              dataset: {path: d.csv}
              trainer: {kind: exec, command: [sh, x.sh]}
              evaluation: {metrics: [auc]}
              tuning: {metric: auc, trials: 5, space: {\(space)}}

            """
        var tree = MemoryTree()
        tree.files = ["w.yaml": weightsDoc, "t.yaml": template, "d.csv": "user_id,item_id,event,timestamp\n"]
        let loaded = ManifestLoader.load(tree.snapshot())
        let errors = loaded.diagnostics.errors.map(\.oneLine)
        #expect(errors.count == 1 && errors[0].hasPrefix("t.yaml:10:") && errors[0].contains("combinations, more than 100000"), "\(errors)")
    }

    @Test func discoveredTraitsMeasureTheData() throws {
        var csv = "user_id,item_id,event,timestamp\n"
        // 10 users; item i0 takes most events (a long tail); a view the template ignores.
        for u in 0..<10 { csv += "u\(u),i0,click,\(1_790_000_000 + u * 86400)\n" }
        csv += "u0,i1,click,1790000000\nu1,i2,convert,1790000000\nu2,i3,view,1790000000\n"
        let t = try DiscoveredTraits.measure(Array(csv.utf8), events: ["click", "convert"], datasetHash: "h", commit: "c")
        #expect(t.users == 10 && t.items == 3 && t.eventsByType == ["click": 11, "convert": 1] && t.otherEvents == 1)
        // Attack: event names the template does not list are the file's content: never named.
        let secret = try DiscoveredTraits.measure(Array("user_id,item_id,event,timestamp\nu1,i1,hunter2-password,1\nu1,i1,click,1\n".utf8),
                                                  events: ["click"], datasetHash: "h", commit: "c")
        #expect(!secret.summary.contains("hunter2") && !JSONValue.from(secret).canonicalText.contains("hunter2") && secret.otherEvents == 1)
        #expect(t.sparsity == 0.6 && t.spanDays == 9 && t.coldUserShare == 1 && t.coldItemShare == (2.0 / 3.0).rounded(toPlaces: 4))
        #expect(t.popularitySkew == 0.5 && t.traits.contains("long-tail") && t.traits.contains("multi-event") && t.traits.contains("short-history"))
        #expect(throws: CairnError.self) { try DiscoveredTraits.measure(Array("a,b\n".utf8), events: [], datasetHash: "", commit: "") }
    }

    /// Collection never takes a referenced artifact, a new one, or one changed since the oldest
    /// active run began (a run writing or reusing it is not recorded yet); reusing touches it.
    @Test func garbageCollectionKeepsWhatARunMayStillRecord() throws {
        let dir = TempDir("cairn-gc")
        let store = ArtifactStore(root: dir.url)
        let now = Int64(Date().timeIntervalSince1970)
        func artifact(_ text: String, changed: Int64) throws -> String {
            let staging = dir.url.appendingPathComponent("staging-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
            try text.write(to: staging.appendingPathComponent("model.json"), atomically: true, encoding: .utf8)
            let hash = try store.store(staging: staging)
            var times = [timeval(tv_sec: Int(changed), tv_usec: 0), timeval(tv_sec: Int(changed), tv_usec: 0)]
            #expect(utimes(store.folder(hash).path, &times) == 0)
            return hash
        }
        let referenced = try artifact("a", changed: now - 7200)
        let old = try artifact("b", changed: now - 7200)
        let duringRun = try artifact("c", changed: now - 1800)
        let fresh = try artifact("d", changed: now - 60)
        // A run created 40 minutes ago is still active: what changed since then may be its own.
        let first = try store.collectGarbage(referenced: [referenced], activeSince: now - 2400, minAge: 600, now: now, dryRun: false)
        #expect(first.removed == [old] && Set(first.kept) == [duringRun, fresh])
        // Once no run is active, only the minimum age protects.
        let second = try store.collectGarbage(referenced: [referenced], activeSince: nil, minAge: 600, now: now, dryRun: false)
        #expect(second.removed == [duringRun] && second.kept == [fresh])
        #expect(FileManager.default.fileExists(atPath: store.folder(referenced).path))
        // A run that reuses an old unreferenced artifact touches it, so it is not collected before it is recorded.
        let reused = try artifact("e", changed: now - 7200)
        let staging = dir.url.appendingPathComponent("again")
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        try "e".write(to: staging.appendingPathComponent("model.json"), atomically: true, encoding: .utf8)
        #expect(try store.store(staging: staging) == reused)
        let third = try store.collectGarbage(referenced: [referenced], activeSince: now - 5, minAge: 0, now: now, dryRun: false)
        #expect(third.kept.contains(reused) && FileManager.default.fileExists(atPath: store.folder(reused).path))
    }

    @Test func aTarWrittenHereReadsBackAndRefusesClimbingNames() throws {
        var tar = Tar()
        let long = String(repeating: "d", count: 120) + "/model.bin"
        try tar.add(TarEntry(path: "a.json", kind: .file(bytes: Array("{}".utf8), executable: false)))
        try tar.add(TarEntry(path: long, kind: .file(bytes: [0, 1, 2], executable: true)))
        try tar.add(TarEntry(path: "link", kind: .symlink(target: "a.json")))
        try tar.add(TarEntry(path: "empty", kind: .directory))
        let entries = try Tar.read(tar.finish())
        #expect(entries.map(\.path) == ["a.json", long, "link", "empty"])
        #expect(entries.map(\.hashLine)[1] == "\(long)\t\(sha256Hex([0, 1, 2]))\texec\n")
        var evil = Tar()
        try evil.add(TarEntry(path: "artifact/../../etc/passwd", kind: .file(bytes: [], executable: false)))
        #expect(throws: CairnError.self) { try Tar.read(evil.finish()) }
        #expect(throws: CairnError.self) { try Tar.read(Array(tar.finish().prefix(700))) }
    }
}

private extension Double {
    func rounded(toPlaces n: Int) -> Double { (self * pow(10, Double(n))).rounded() / pow(10, Double(n)) }
}
