import CairnCore
import CairnStore
import Foundation
import Testing

/// Registry operations end to end through git, the built binary and a real SQLite registry:
/// tuning then training, discovery on drafts, quotas, deletion with garbage collection, and
/// portable bundles (the CLI and the HTTP download).
@Suite struct RegistryOperationsTests {
    static let key = ["CAIRN_SIGNING_KEY": "73657276652d6b65792d666f722d7465737473"]

    /// The example fleet in a repository, the registry beside it.
    final class Repo: @unchecked Sendable {
        let fleet: ReconcileEndToEndTests.Fleet
        init() throws { fleet = try ReconcileEndToEndTests.Fleet() }
        var db: String { fleet.dbPath }
        func run(_ args: [String], env: [String: String] = [:]) throws -> ProcessResult {
            try cairn(args + ["--repo", fleet.repo.path, "--db", db], cwd: fleet.repo.path, env: RegistryOperationsTests.key.merging(env) { $1 })
        }
        func runDB(_ args: [String], env: [String: String] = [:]) throws -> ProcessResult {
            try cairn(args + ["--db", db], cwd: fleet.repo.path, env: RegistryOperationsTests.key.merging(env) { $1 })
        }
        /// Commits `files` and reconciles until converged (training in process).
        @discardableResult
        func commitAndReconcile(_ message: String, _ files: [String: String]) throws -> ProcessResult {
            _ = try fleet.repo.commit(message, files: files)
            let r = try run(["reconcile", "--wait", "--timeout", "5m", "--no-color"])
            guard r.status == 0 || r.status == 3 else { throw FixtureError("reconcile: \(r.status) \(r.stdout)\(r.stderr)") }
            return r
        }
        func text(_ path: String) throws -> String { try String(contentsOfFile: fleet.repo.path + "/" + path, encoding: .utf8) }
        func observed() throws -> ObservedState { try RegistryDatabase(path: db).observedState() }
    }

    static let tunedTemplate = """
        apiVersion: cairn/v1
        kind: Template
        metadata: {name: search-knn}
        spec:
          displayName: Search neighbours
          events: [click, convert]
          outcomeWeights: clicks-only
          dataset: {path: data/interactions.csv}
          trainer: {kind: builtin, algorithm: item-knn, params: {neighbors: 20}}
          evaluation: {holdout: 0.25, metrics: [ndcg@10, precision@5], seed: 7}
          tuning:
            metric: ndcg@10
            trials: 4
            space: {neighbors: [2, 5, 10, 40], shrinkage: [0, 25]}
            strategy: random

        """

    @Test func tuningTriesEachConfigurationOnTheHoldoutAndTrainsTheBest() throws {
        let repo = try Repo()
        try repo.commitAndReconcile("fleet", [:])
        _ = try repo.fleet.repo.commit("tune search", files: ["templates/search-knn.yaml": Self.tunedTemplate])
        let plan = try repo.run(["plan", "--no-color"]).stdout
        #expect(plan.contains("tunes 4 trials (random over neighbors, shrinkage) on ndcg@10, then refits the best on all data"), "\(plan)")
        try repo.commitAndReconcile("nothing", [:])
        let versions = try JSONSerialization.jsonObject(with: Data(try repo.runDB(["versions", "search-knn", "--format", "json"]).stdout.utf8)) as! [[String: Any]]
        let tuned = try #require(versions.last?["tuning"] as? [String: Any], "\(versions.last ?? [:])")
        let trials = try #require(tuned["trials"] as? [[String: Any]])
        #expect(trials.count == 4 && Set(trials.compactMap { $0["trial"] as? Int }) == [1, 2, 3, 4])
        // Cairn chose the trial with the best ndcg@10, and the version's metrics are that trial's.
        let best = trials.max { ($0["metrics"] as! [String: Double])["ndcg@10"]! < ($1["metrics"] as! [String: Double])["ndcg@10"]! }!
        #expect(tuned["chosen"] as? Int == best["trial"] as? Int)
        #expect((versions.last?["metrics"] as? [String: Double]) == (best["metrics"] as? [String: Double]))
        // The same seed draws the same configurations (the plan and every worker agree).
        let configurations = trials.map { $0["params"] as! [String: Any] }.map { "\($0["neighbors"]!)/\($0["shrinkage"]!)" }
        let tuning = Tuning(metric: "ndcg@10", trials: 4, strategy: .random, space: ["neighbors": [.int(2), .int(5), .int(10), .int(40)], "shrinkage": [.int(0), .int(25)]])
        #expect(configurations == tuning.configurations(seed: 7).map { "\($0["neighbors"]!.canonicalText)/\($0["shrinkage"]!.canonicalText)" })
        // Visible in versions, status and the run's log.
        #expect(try repo.runDB(["versions", "search-knn", "--no-color"]).stdout.contains("trial \(best["trial"]!) of 4"))
        #expect(try repo.runDB(["status", "Model/search-knn", "--no-color"]).stdout.contains("tuning: v2: trial \(best["trial"]!) of 4"))
        // `refit: false`: the chosen trial's own model (fit without the held-out rows) is the artifact.
        try repo.commitAndReconcile("keep the trial's model", ["templates/search-knn.yaml": Self.tunedTemplate.replacingOccurrences(
            of: "    strategy: random\n", with: "    strategy: random\n    refit: false\n")])
        let kept = try #require(try repo.observed().models["search-knn"]?.versions.last)
        let refit = try #require(try repo.observed().models["search-knn"]?.version(2))
        #expect(kept.number == 3 && kept.tuning?.refit == false && kept.tuning?.chosen == refit.tuning?.chosen && kept.metrics == refit.metrics)
        #expect(kept.artifactHash != refit.artifactHash, "a model fit on the training part differs from the refit one")
        #expect(try repo.runDB(["logs", String(kept.runID)]).stdout.contains("kept the chosen trial's model (tuning.refit false)"))
    }

    /// Exec trainers get the trials in CAIRN_PARAMS and report them in trials.json
    /// (examples/fleet/train/train.py); a trainer that reports none fails with the reason.
    @Test func execTrainersRunTheTrialsTheyAreGivenAndReportThem() throws {
        let repo = try Repo()
        let template = try repo.text("templates/cooccurrence-py.yaml")
            .replacingOccurrences(of: "    seed: 7\n", with: "    seed: 7\n  tuning:\n    metric: ndcg@10\n    trials: 3\n    space: {min_support: [1, 2, 4]}\n")
        let models = try repo.text("models/search.yaml")
            .replacingOccurrences(of: "  template: cooccurrence-py\n", with: "  template: cooccurrence-py\n  lifecycle: active\n")
        try repo.commitAndReconcile("tune the python trainer", ["templates/cooccurrence-py.yaml": template, "models/search.yaml": models])
        let version = try #require(try repo.observed().models["search-experimental"]?.versions.last, "trained")
        let tuning = try #require(version.tuning)
        #expect(tuning.trials.map(\.trial) == [1, 2, 3] && tuning.trials.map { $0.params["min_support"] } == [.int(1), .int(2), .int(4)])
        let best = try #require(Tuning(metric: "ndcg@10", trials: 3, space: [:]).best(of: tuning.trials))
        #expect(tuning.chosen == best.trial && version.metrics == best.metrics, "Cairn picks the best and the trainer trained it")
        let log = try repo.runDB(["logs", String(version.runID)]).stdout
        #expect(log.contains("trial 1: min_support=1") && log.contains("trial 3: min_support=4"), "\(log)")
        // A trainer that ignores the trials fails the run with what to do.
        let lazy = template.replacingOccurrences(of: "command: [python3, train/train.py]", with: "command: [sh, -c, 'echo {\\\"ndcg@10\\\": 0.1, \\\"hit_rate@10\\\": 0.2} > $CAIRN_OUTPUT/metrics.json']")
        #expect(lazy != template)
        try repo.commitAndReconcile("a trainer that does not tune", ["templates/cooccurrence-py.yaml": lazy])
        let failed = try repo.runDB(["status", "Model/search-experimental", "--no-color"]).stdout
        #expect(failed.contains("the template tunes, but the trainer wrote no trials.json"), "\(failed)")
    }

    @Test func aBadTuningBlockIsRefusedWithWhere() throws {
        let repo = try Repo()
        let bad = Self.tunedTemplate.replacingOccurrences(of: "metric: ndcg@10", with: "metric: recall@50")
            .replacingOccurrences(of: "shrinkage: [0, 25]", with: "alpha: [1]")
        _ = try repo.fleet.repo.commit("bad tuning", files: ["templates/search-knn.yaml": bad])
        let r = try cairn(["validate", "--no-color", "--repo", repo.fleet.repo.path], cwd: repo.fleet.repo.path)
        let out = r.stdout + r.stderr
        #expect(r.status != 0)
        #expect(out.contains("spec.tuning.metric 'recall@50' is not one of the evaluation's metrics") && out.contains("search-knn.yaml:"), "\(out)")
        #expect(out.contains("spec.tuning.space.alpha: the builtin item-knn trainer has no parameter 'alpha'"), "\(out)")
    }

    static let discoveringDraft = """
        apiVersion: cairn/v1
        kind: Model
        metadata: {name: search-next}
        spec:
          template: search-knn
          discover: true
          traits: [cold-start-ok]

        """

    @Test func discoveryMeasuresADraftsDataAndTheTraitsLockOnceTrained() throws {
        let repo = try Repo()
        try repo.commitAndReconcile("fleet", [:])
        _ = try repo.fleet.repo.commit("a draft to discover", files: ["models/next.yaml": Self.discoveringDraft])
        let plan = try repo.run(["plan", "--no-color"]).stdout
        #expect(plan.contains("discover (") && plan.contains("users,") && plan.contains("sparsity"), "\(plan)")
        try repo.commitAndReconcile("nothing", [:])
        let model = try #require(try repo.observed().models["search-next"])
        let traits = try #require(model.discovered)
        #expect(model.spec.lifecycle == .draft && model.versions.isEmpty, "back to draft, ready to train")
        #expect(traits.users > 100 && traits.items > 10 && traits.eventsByType["click"] ?? 0 > 0 && traits.sparsity > 0 && traits.sparsity < 1)
        #expect(traits.datasetHash == sha256Hex(Array(try repo.text("data/interactions.csv").utf8)))
        // Declared and discovered traits are told apart, in status and in the audit history.
        let status = try repo.runDB(["status", "Model/search-next", "--no-color"]).stdout
        #expect(status.contains("traits: declared [cold-start-ok] · discovered (\(traits.users) users"), "\(status)")
        let history = try repo.runDB(["history", "--model", "search-next", "--format", "json"]).stdout
        #expect(history.contains("\"discover\"") && history.contains("\"sparsity\""), "\(history.prefix(1500))")
        #expect(try repo.runDB(["audit", "verify"]).status == 0)
        // The same data again: nothing to do. New data while still a draft: measured again.
        #expect(try repo.run(["plan", "--no-color"]).stdout.contains("No changes"))
        let data = try repo.text("data/interactions.csv")
        _ = try repo.fleet.repo.commit("more data", files: ["data/interactions.csv": data + "u9001,i0001,click,2026-10-01T00:00:00Z\n"])
        #expect(try repo.run(["plan", "--no-color"]).stdout.contains("discover ("))
        // Once trained, traits are locked: changed data is not discovered again.
        try repo.commitAndReconcile("train it", ["models/next.yaml": Self.discoveringDraft.replacingOccurrences(of: "discover: true", with: "discover: true\n  lifecycle: active")])
        let trained = try #require(try repo.observed().models["search-next"])
        #expect(trained.versions.count == 1 && trained.discovered != nil)
        _ = try repo.fleet.repo.commit("a draft again", files: ["models/next.yaml": Self.discoveringDraft,
                                                                 "data/interactions.csv": data + "u9002,i0002,click,2026-10-02T00:00:00Z\n"])
        let later = try repo.run(["plan", "--no-color"]).stdout
        #expect(!later.contains("discover (") && later.contains("traits lock when a model is first trained"), "\(later)")
    }

    @Test func quotasBlockCreatesBeyondTheCapAndShowTheCountAndTheLimit() throws {
        let repo = try Repo()
        try repo.commitAndReconcile("fleet", [:])
        let count = try repo.observed().models.count
        let extra = (1...2).map { "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: extra-\($0)}\nspec: {template: search-knn}\n" }.joined(separator: "---\n")
        _ = try repo.fleet.repo.commit("two more", files: ["models/extra.yaml": extra])
        let plan = try repo.run(["plan", "--no-color", "--model-quota", "*=\(count + 1)"])
        #expect(plan.stdout.contains("+ Model/extra-1") && !plan.stdout.contains("+ Model/extra-2"), "\(plan.stdout)")
        #expect(plan.stdout.contains("quota: tenant default has \(count + 1) registered models of the \(count + 1) allowed (--model-quota '*=\(count + 1)'"), "\(plan.stdout)")
        // The environment sets it too, per tenant; a malformed quota is refused with what to write.
        let env = try repo.run(["plan", "--no-color"], env: ["CAIRN_MODEL_QUOTA": "default=\(count)"])
        #expect(env.stdout.contains("Model/extra-1") && env.stdout.contains("quota: tenant default has \(count) registered models of the \(count) allowed"), "\(env.stdout)")
        let bad = try repo.run(["plan", "--model-quota", "lots"])
        #expect(bad.status != 0 && bad.stderr.contains("model quota 'lots' is not TENANT=N"))
        // Tenants count separately.
        let other = extra.replacingOccurrences(of: "{template: search-knn}", with: "{template: search-knn, tenant: lab}")
        _ = try repo.fleet.repo.commit("in the lab", files: ["models/extra.yaml": other])
        let lab = try repo.run(["reconcile", "--no-color", "--model-quota", "*=\(count)", "--model-quota", "lab=1"])
        #expect(lab.stdout.contains("quota: tenant lab has 1 registered model of the 1 allowed"), "\(lab.stdout)")
        #expect(Set(try repo.observed().models.keys).intersection(["extra-1", "extra-2"]) == ["extra-1"])
    }

    /// A model of its own template (so its artifact is its own), served nowhere.
    static let scratch = """
        apiVersion: cairn/v1
        kind: Template
        metadata: {name: knn-scratch}
        spec:
          events: [click, convert]
          outcomeWeights: clicks-only
          dataset: {path: data/interactions.csv}
          trainer: {kind: builtin, algorithm: item-knn, params: {neighbors: 7}}
          evaluation: {metrics: [ndcg@10]}
        ---
        apiVersion: cairn/v1
        kind: Model
        metadata: {name: scratch}
        spec: {template: knn-scratch, lifecycle: active}

        """

    @Test func deletionIsRefusedWhileServedKeepsTheRecordAndGarbageCollectsTheArtifact() throws {
        let repo = try Repo()
        try repo.commitAndReconcile("fleet and a scratch model", ["models/scratch.yaml": Self.scratch])
        let before = try repo.observed()
        let live = try #require(before.targets["acme-search"]?.routes.first)
        // Deleting the live version is refused with the reason, and nothing changes.
        let models = try repo.text("models/search.yaml")
        let deleting = models.replacingOccurrences(of: "  label: Search re-ranking neighbours\n",
                                                   with: "  label: Search re-ranking neighbours\n  decisions: {delete: [\(live.version)]}\n")
        #expect(deleting != models && live.model == "search-knn")
        _ = try repo.fleet.repo.commit("delete the live version", files: ["models/search.yaml": deleting])
        let refused = try repo.run(["reconcile", "--no-color"])
        #expect(refused.stdout.contains("Cannot delete a version with active deployments. Remove it from serving targets first."), "\(refused.stdout)")
        #expect(try repo.observed().models[live.model]?.version(live.version) != nil)
        // So is deleting a model a target routes to.
        let homepage = try repo.text("models/homepage.yaml")
        let routed = homepage.replacingOccurrences(of: "  template: popular-now\n  lifecycle: active\n  family: homepage\n  stage: challenger\n",
                                                   with: "  template: popular-now\n  lifecycle: deleted\n")
        #expect(routed != homepage)
        _ = try repo.fleet.repo.commit("delete a routed model", files: ["models/search.yaml": models, "models/homepage.yaml": routed])
        let refusedModel = try repo.run(["plan", "--no-color"])
        let out = refusedModel.stdout + refusedModel.stderr
        #expect(out.contains("Cannot delete model with active deployments. Remove it from serving targets first. (served by ServingTarget/acme-homepage"), "\(out)")
        // A model nobody serves is deleted for good; its artifact is then collected.
        let version = try #require(before.models["scratch"]?.versions.first)
        let hash = try #require(version.artifactHash)
        let artifacts = repo.fleet.repo.path + "/.cairn/artifacts/"
        #expect(FileManager.default.fileExists(atPath: artifacts + hash))
        let r = try repo.commitAndReconcile("delete scratch", ["models/search.yaml": models, "models/homepage.yaml": homepage,
                                                              "models/scratch.yaml": Self.scratch.replacingOccurrences(of: "lifecycle: active", with: "lifecycle: deleted")])
        #expect(r.stdout.contains("Model/scratch") && r.stdout.contains("delete ("), "\(r.stdout)")
        #expect(try repo.observed().models["scratch"] == nil)
        let history = try repo.runDB(["history", "--model", "scratch", "--format", "json"]).stdout
        #expect(history.contains("\"delete\"") && history.contains(version.fingerprint), "the audit history keeps what was deleted")
        #expect(try repo.runDB(["audit", "verify"]).status == 0, "the state still matches the history")
        // The manifest may stay: a deleted model that is gone stays gone.
        #expect(try repo.run(["plan", "--no-color"]).stdout.contains("No changes"))
        // Garbage collection: referenced artifacts stay; the deleted model's goes.
        Thread.sleep(forTimeInterval: 1.1)
        let dry = try repo.runDB(["artifact", "gc", "--dry-run", "--min-age", "1s"])
        #expect(dry.stdout.contains("would remove \(hash)") && FileManager.default.fileExists(atPath: artifacts + hash), "\(dry.stdout)")
        let young = try repo.runDB(["artifact", "gc", "--min-age", "1h"])
        #expect(young.stdout.contains("too new") && FileManager.default.fileExists(atPath: artifacts + hash), "\(young.stdout)")
        let collected = try repo.runDB(["artifact", "gc", "--min-age", "1s"])
        #expect(collected.status == 0 && collected.stdout.contains("removed \(hash)"), "\(collected.stdout)\(collected.stderr)")
        #expect(!FileManager.default.fileExists(atPath: artifacts + hash))
        for v in try repo.observed().models.values.flatMap(\.versions) {
            if let h = v.artifactHash { #expect(FileManager.default.fileExists(atPath: artifacts + h), "\(v.model) v\(v.number)") }
        }
        #expect(try repo.runDB(["artifact", "verify", "search-knn@\(live.version)"]).status == 0)
    }

    @Test func anExportedBundleVerifiesOfflineAndTamperingIsCaught() throws {
        let repo = try Repo()
        try repo.commitAndReconcile("fleet", [:])
        let version = try #require(try repo.observed().models["search-knn"]?.versions.last)
        let dir = TempDir("cairn-bundle")
        let bundle = dir.path + "/search.tar"
        let export = try repo.runDB(["artifact", "export", "search-knn@\(version.number)", "-o", bundle])
        #expect(export.status == 0, "\(export.stderr)")
        let publicKey = try repo.runDB(["artifact", "public-key"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(publicKey.count == 64)
        // Offline: no database, no signing key, only the public key.
        let ok = try cairn(["artifact", "verify", "--bundle", bundle, "--public-key", publicKey], cwd: dir.path)
        #expect(ok.status == 0 && ok.stdout.contains("search-knn v\(version.number): bundle intact"), "\(ok.stdout)\(ok.stderr)")
        // Standard tools read it: the statement and the artifact's files.
        let listed = try runProcess("/usr/bin/tar", ["tf", bundle]).stdout
        #expect(listed.contains("cairn-bundle.json") && listed.contains("artifact/model.json"), "\(listed)")
        let statement = try runProcess("/usr/bin/tar", ["xOf", bundle, "cairn-bundle.json"]).stdout
        for field in ["\"datasetHash\"", "\"fingerprint\"", "\"systemName\"", "\"commit\"", "\"params\"", "\"template\"", "\"metrics\""] {
            #expect(statement.contains(field), "\(field) in \(statement.prefix(400))")
        }
        // Attack: change the model file inside the bundle (same size), and the statement.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bundle)))
        let needle = Array("\"popularity\"".utf8)
        if let at = (0..<(bytes.count - needle.count)).first(where: { Array(bytes[$0..<$0 + needle.count]) == needle }) {
            bytes[at + 1] = UInt8(ascii: "q")
            try Data(bytes).write(to: URL(fileURLWithPath: dir.path + "/edited.tar"))
            let edited = try cairn(["artifact", "verify", "--bundle", dir.path + "/edited.tar", "--public-key", publicKey], cwd: dir.path)
            #expect(edited.status == 1 && edited.stdout.contains("TAMPERED"), "\(edited.stdout)\(edited.stderr)")
        } else {
            Issue.record("no model bytes found to edit")
        }
        let other = try cairn(["artifact", "verify", "--bundle", bundle, "--public-key", String(repeating: "ab", count: 32)], cwd: dir.path)
        #expect(other.status == 1 && other.stdout.contains("not signed by this public key"), "\(other.stdout)\(other.stderr)")
        // A hostile archive climbing out of the bundle is refused before anything is hashed.
        try runProcess("/bin/sh", ["-c", "cd \(dir.path) && mkdir -p x && echo hi > x/evil && tar --format=ustar -cf climb.tar -C x evil --transform 's,^,../,'"])
        let climb = try cairn(["artifact", "verify", "--bundle", dir.path + "/climb.tar", "--public-key", publicKey], cwd: dir.path)
        #expect(climb.status == 1 && climb.stdout.contains("climbing out"), "\(climb.stdout)\(climb.stderr)")
    }

    /// `cairn serve`: tuning and discovered traits on the API and the dashboard, and unreferenced
    /// artifacts collected on its schedule after a commit deletes a model.
    @Test func serveShowsTuningAndTraitsAndCollectsArtifactsOnASchedule() throws {
        let served = try DashboardTests.Served(files: ["templates/search-knn.yaml": Self.tunedTemplate, "models/next.yaml": Self.discoveringDraft,
                                                       "models/scratch.yaml": Self.scratch],
                                               extra: ["--artifact-gc-every", "1s", "--artifact-gc-min-age", "1s"])
        let s = served.setup
        try s.waitFor("search-next to be discovered and scratch trained") {
            let models = try RegistryDatabase(path: s.dbPath).observedState().models
            return models["search-next"]?.discovered != nil && models["scratch"]?.versions.isEmpty == false && models["search-knn"]?.versions.last?.tuning != nil
        }
        let record = try JSONSerialization.jsonObject(with: Data(try s.http("GET", "/v1/models/search-next").body.utf8)) as? [String: Any]
        let discovered = try #require((record?["record"] as? [String: Any] ?? record)?["discoveredTraits"] as? [String: Any], "\(String(describing: record))")
        #expect(discovered["users"] as? Int ?? 0 > 0)
        let cookie = try served.signIn(served.readToken)
        let page = try served.get("/ui/models/search-knn", cookie: cookie).2
        #expect(page.contains("<dt>Tuning (v") && page.contains("(chosen)") && page.contains("neighbors="), "\(page.prefix(4000))")
        let draft = try served.get("/ui/models/search-next", cookie: cookie).2
        #expect(draft.contains("<dt>Declared traits</dt><dd>cold-start-ok</dd>") && draft.contains("<dt>Discovered traits</dt><dd>"), "\(draft.prefix(3000))")
        // A commit deletes scratch; serve's collector removes its artifact.
        let hash = try #require(try RegistryDatabase(path: s.dbPath).observedState().models["scratch"]?.versions.first?.artifactHash)
        let folder = s.dbPath.replacingOccurrences(of: "cairn.db", with: "artifacts/") + hash
        #expect(FileManager.default.fileExists(atPath: folder), "\(folder)")
        try s.push("delete scratch", files: ["models/scratch.yaml": Self.scratch.replacingOccurrences(of: "lifecycle: active", with: "lifecycle: deleted")])
        try s.waitFor("the deleted model's artifact to be collected") { !FileManager.default.fileExists(atPath: folder) }
        #expect(try RegistryDatabase(path: s.dbPath).observedState().models["scratch"] == nil)
        #expect(s.log.contains("artifact gc removed 1 unreferenced artifact(s)"), "\(s.log.suffix(2000))")
    }

    @Test func theBundleEndpointServesTheSameBundleToAnExportToken() throws {
        let s = try ServeEndToEndTests.Setup(files: [:])
        try s.start()
        try s.waitFor("the fleet to be live", timeout: 120) {
            let db = try RegistryDatabase(path: s.dbPath)
            return try db.activeRunCounts() == (0, 0) && db.observedState().targets["acme-search"]?.routes.isEmpty == false
        }
        let version = try #require(try RegistryDatabase(path: s.dbPath).observedState().models["search-knn"]?.versions.last)
        let path = "/v1/models/search-knn/versions/\(version.number)/bundle"
        let reader = try LearningTests.token(s, "reader", scope: "read")
        let exporter = try LearningTests.token(s, "exporter", scope: "export")
        #expect(try httpRequest(port: s.port, "GET", path, token: reader).0 == 403, "a read token may not download weights")
        let (status, body) = try httpRequest(port: s.port, "GET", path, token: exporter)
        #expect(status == 200)
        let dir = TempDir("cairn-bundle-http")
        try Data(body.utf8).write(to: URL(fileURLWithPath: dir.path + "/b.tar"))
        let local = dir.path + "/local.tar"
        _ = try cairn(["artifact", "export", "search-knn@\(version.number)", "-o", local, "--db", s.dbPath], env: Self.key)
        #expect(try Data(contentsOf: URL(fileURLWithPath: local)) == Data(body.utf8), "the CLI and the API export the same bytes")
        let key = try cairn(["artifact", "public-key", "--db", s.dbPath], env: Self.key).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try cairn(["artifact", "verify", "--bundle", dir.path + "/b.tar", "--public-key", key]).status == 0)
        #expect(try httpRequest(port: s.port, "GET", "/v1/models/search-knn/versions/99/bundle", token: exporter).0 == 404)
        // The model record shows traits apart and tuning (none here).
        let record = try s.http("GET", "/v1/models/search-knn").body
        #expect(record.contains("\"declaredTraits\""), "\(record.prefix(600))")
    }
}
