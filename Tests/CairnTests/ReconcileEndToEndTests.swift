import CairnCore
import CairnReconcile
import CairnStore
import Foundation
import GRDB
import Testing

/// The built `cairn` binary on real git repositories and real database files.
@Suite struct ReconcileEndToEndTests {
    /// The example's acme-search target, routed to the search-popular model instead of the family champion.
    static let acmeSearchOnPopular = """
        apiVersion: cairn/v1
        kind: ServingTarget
        metadata: {name: acme-search}
        spec:
          tenant: acme
          surface: search
          routes:
            - {model: search-popular, version: latest-approved}

        """

    /// A repository holding the example fleet, and a database path beside it.
    final class Fleet: @unchecked Sendable {
        let repo: GitFixture
        let dbPath: String

        init() throws {
            repo = try GitFixture()
            try repo.copyExamples()
            try repo.commit("fleet: homepage and search families")
            dbPath = repo.dir.url.appendingPathComponent(".cairn/cairn.db").path
            repo.write(".gitignore", ".cairn/\n")
            try repo.commit("ignore the database")
        }

        func run(_ args: [String]) throws -> ProcessResult {
            try cairn(args + ["--repo", repo.path, "--db", dbPath], cwd: repo.path)
        }

        /// Commands that take no --repo.
        func runDB(_ args: [String]) throws -> ProcessResult {
            try cairn(args + ["--db", dbPath], cwd: repo.path)
        }

        func database() throws -> RegistryDatabase { try RegistryDatabase(path: dbPath) }

        /// Plays the worker: finishes every queued run with the given metrics.
        func trainAll(metrics: [String: Double] = ["ndcg@10": 0.3, "recall@20": 0.4, "coverage": 0.5, "precision@5": 0.2],
                      per model: [String: [String: Double]] = [:]) throws {
            let db = try database()
            while let run = try db.claimRun(holder: "test-worker", now: unixNowForTests()) {
                try TrainingWorker.record(store: db, run: run, holder: "test-worker", artifacts: nil,
                                 success: RunSuccess(metrics: model[run.model] ?? metrics, datasetHash: run.request.inputs.dataset, trainerVersion: "test"),
                                 now: unixNowForTests())
            }
        }
    }

    @Test func firstReconcileQueuesTrainingAndBlocksPromotions() throws {
        let fleet = try Fleet()
        let result = try fleet.run(["reconcile", "--no-color"])
        #expect(result.status == 3, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("Plan: 12 create, 5 stage, 5 train, 4 blocked."))
        #expect(result.stdout.contains("  » Model/homepage-recs            train v1 (fingerprint "))
        #expect(result.stdout.contains("! ServingTarget/acme-search      promote: route family search: champion search-knn has no approved version yet (training is queued by this plan)"))
        // Definitions in one step, training in another.
        #expect(result.stdout.contains("Applied 22 changes in 2 steps."))
        let status = try fleet.runDB(["status", "--no-color"])
        #expect(status.stdout.contains("busy: training run 1 is queued"))
        #expect(status.stdout.contains("search-experimental  draft      none"))
        // Declared targets blocked before their first promotion are listed, with why (they were left out).
        #expect(status.stdout.contains("acme-search"), "\(status.stdout)")
        #expect(status.stdout.contains("not live yet: route family search: champion search-knn has no approved version yet"), "\(status.stdout)")
        let json = try fleet.runDB(["status", "--format", "json"])
        let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any] ?? [:]
        let targets = report["targets"] as? [[String: Any]] ?? []
        #expect(Set(targets.compactMap { $0["name"] as? String }) == ["acme-homepage", "acme-search", "globex-homepage"])
        #expect((report["blocked"] as? [Any])?.count == 4)
        let one = try fleet.runDB(["status", "ServingTarget/acme-search", "--no-color"])
        #expect(one.status == 0 && one.stdout.contains("not live yet:"), "\(one.stdout)\(one.stderr)")
        // Once trained and promoted, the target is live and nothing is left blocked.
        try fleet.trainAll()
        _ = try fleet.run(["reconcile"])
        let after = try fleet.runDB(["status", "--no-color"])
        #expect(!after.stdout.contains("not live yet: route family search"), "\(after.stdout)")
    }

    @Test func aDatabaseWhoseCreationWasInterruptedHoldsNothingAndIsCompletedByTheNextReconcile() throws {
        let fleet = try Fleet()
        // What a process killed while creating the database leaves: a file without a schema.
        try FileManager.default.createDirectory(atPath: (fleet.dbPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = try DatabaseQueue(path: fleet.dbPath).write { try $0.execute(sql: "PRAGMA journal_mode = WAL") }
        let verify = try fleet.runDB(["audit", "verify"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(verify.stdout.contains("audit chain intact: 0 rows verified (the registry holds nothing yet)"))
        let plan = try fleet.run(["plan", "--no-color"])
        #expect(plan.status == 0 && plan.stdout.contains("Plan: 12 create, 5 stage, 5 train, 4 blocked."), "\(plan.stdout)\(plan.stderr)")
        #expect(try fleet.run(["reconcile"]).status == 3)
        #expect(try fleet.runDB(["audit", "verify"]).stdout.contains("audit chain intact: 22 rows verified"))
        // A path with no file at all is still a mistake worth saying.
        let missing = try cairn(["audit", "verify", "--db", fleet.dbPath + ".nope"])
        #expect(missing.status == 1 && missing.stderr.contains("no registry database at"))
    }

    /// Eight `cairn` processes (workers and reconcilers) released together by a FIFO barrier on a
    /// database that does not exist yet, as when a reconciler and workers start at the same
    /// moment: all succeed; one creates the schema.
    @Test func processesCreatingTheSameDatabaseAtOnceAllSucceed() throws {
        let fleet = try Fleet()
        for round in 0..<3 {
            let dir = TempDir("cairn-create-\(round)")
            let db = dir.path + "/registry.db", barrier = dir.path + "/barrier"
            var processes: [(Process, String)] = []
            for i in 0..<8 {
                let args = i % 4 == 0
                    ? ["reconcile", "--repo", fleet.repo.path, "--db", db, "--lock-timeout", "60"]
                    : ["worker", "--once", "--repo", fleet.repo.path, "--db", db]
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/bin/sh")
                // Say it is at the barrier, wait there, then become cairn.
                p.arguments = ["-c", ": > \"$1.ready\"; read _ < \"$1\"; shift; exec \"$@\"", "sh", barrier + "-\(i)", cairnBinary] + args
                p.environment = ProcessInfo.processInfo.environment.merging(Registry.env) { $1 }
                let log = dir.path + "/out-\(i)"
                _ = FileManager.default.createFile(atPath: log, contents: nil)
                p.standardOutput = FileHandle(forWritingAtPath: log)
                p.standardError = p.standardOutput
                processes.append((p, log))
                // Each process has a barrier of its own, all opened at once below.
                try #require(mkfifo(barrier + "-\(i)", 0o600) == 0)
                try p.run()
            }
            let deadline = Date().addingTimeInterval(30)
            while (0..<8).contains(where: { !FileManager.default.fileExists(atPath: barrier + "-\($0).ready") }), Date() < deadline {
                Thread.sleep(forTimeInterval: 0.01)
            }
            // Release: open every barrier for writing, then close them all together.
            let writers = (0..<8).map { open(barrier + "-\($0)", O_WRONLY) }
            writers.forEach { close($0) }
            for (p, log) in processes {
                p.waitUntilExit()
                let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                #expect(p.terminationStatus == 0 || p.terminationStatus == 3, "round \(round): \(p.arguments ?? []) exited \(p.terminationStatus): \(output)")
            }
            #expect(try cairn(["audit", "verify", "--db", db]).status == 0)
        }
    }

    @Test func secondApplyOfTheSameRevisionWritesNothing() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        let db = try fleet.database()
        let rows = try db.auditCount()
        let generation = try db.observedState().generation
        let again = try fleet.run(["reconcile", "--no-color"])
        #expect(again.stdout.contains("No changes; 4 blocked."))
        #expect(again.stdout.contains("Nothing to apply."))
        #expect(try db.auditCount() == rows)
        #expect(try db.observedState().generation == generation)
    }

    @Test func planAndDryRunNeverWrite() throws {
        let fleet = try Fleet()
        // No database yet: planning must not create one.
        #expect(try fleet.run(["plan"]).status == 0)
        #expect(try fleet.run(["reconcile", "--dry-run"]).status == 3)
        #expect(!FileManager.default.fileExists(atPath: fleet.dbPath))
        _ = try fleet.run(["reconcile"])
        try fleet.trainAll()
        let before = try Data(contentsOf: URL(fileURLWithPath: fleet.dbPath))
        let plan = try fleet.run(["plan", "--no-color"])
        #expect(plan.stdout.contains("⇡ ServingTarget/acme-homepage"))
        // Exit 3: the manual-approval shadow of acme-homepage stays blocked.
        #expect(try fleet.run(["reconcile", "--dry-run"]).status == 3)
        #expect(try fleet.runDB(["status"]).status == 0)
        #expect(try fleet.runDB(["history"]).status == 0)
        let after = try Data(contentsOf: URL(fileURLWithPath: fleet.dbPath))
        #expect(before == after)
    }

    @Test func trainedVersionsArePromotedAndOutputsAreDeterministic() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        try fleet.trainAll()
        let versions = try fleet.runDB(["versions", "homepage-recs", "--no-color"])
        #expect(versions.stdout.contains("Engagement booster v2 · train-1-"), "the template display name, then the run: no doubled version")
        #expect(versions.stdout.contains("approved  coverage=0.5000 ndcg@10=0.3000 precision@5=0.2000 recall@20=0.4000"))
        let versionsJSON = try JSONSerialization.jsonObject(with: Data(try fleet.runDB(["versions", "homepage-recs", "--format", "json"]).stdout.utf8)) as! [[String: Any]]
        #expect(versionsJSON.first?["statusReason"] as? String == "gates: ndcg@10 0.3 ≥ min 0.05; ndcg@10 0.3: no approved version to regress from")
        #expect((versionsJSON.first?["commit"] as? String)?.count == 40)
        #expect(try fleet.runDB(["versions", "nope"]).stderr.contains("Model/nope has never been applied"))
        let first = try fleet.run(["plan", "--format", "json"])
        let second = try fleet.run(["plan", "--format", "json"])
        #expect(first.stdout == second.stdout)
        let text1 = try fleet.run(["plan", "--no-color"]).stdout
        let text2 = try fleet.run(["plan", "--no-color"]).stdout
        #expect(text1 == text2)
        #expect(text1.contains("⇡ ServingTarget/acme-homepage    homepage-recs v1 (90%), homepage-recs-b v1 (10%)\n"))
        // The shadow's model is manual-approval: it waits, and does not hold the routes back.
        #expect(text1.contains("! ServingTarget/acme-homepage    promote: shadow homepage-recs-c: no approved version yet; v1 is pending approval"))
        let json = try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as! [String: Any]
        #expect(json["formatVersion"] as? String == "1")
        #expect((json["revision"] as? String)?.count == 40)
        let summary = json["summary"] as! [String: Int]
        #expect(summary["promote"] == 3)
        let apply = try fleet.run(["reconcile", "--no-color"])
        #expect(apply.status == 3, "\(apply.stdout)\(apply.stderr)")
        let status = try fleet.runDB(["status", "ServingTarget/acme-homepage", "--format", "json"])
        #expect(status.stdout.contains("\"model\" : \"homepage-recs-b\""))
        #expect(try fleet.run(["plan", "--detailed-exitcode"]).status == 0)
        // Approving the shadow's version in git lets the last piece go live.
        let models = fleet.repo.dir.url.appendingPathComponent("models/homepage.yaml")
        let text = try String(contentsOf: models, encoding: .utf8).replacingOccurrences(
            of: "  retrainToken: \"2026-11-20\"\n", with: "  retrainToken: \"2026-11-20\"\n  decisions: {approve: [1]}\n")
        try fleet.repo.commit("Approve homepage-recs-c v1 for shadowing", files: ["models/homepage.yaml": text])
        let converged = try fleet.run(["reconcile", "--no-color"])
        #expect(converged.status == 0, "\(converged.stdout)")
        #expect(converged.stdout.contains("✓ Model/homepage-recs-c        approve v1 (listed in decisions.approve)"))
        #expect(converged.stdout.contains("shadow homepage-recs-c v1"))
    }

    @Test func savedPlansApplyOnceAndStalePlansAreRefused() throws {
        let fleet = try Fleet()
        let planFile = fleet.repo.dir.url.appendingPathComponent("plan.json").path
        #expect(try fleet.run(["plan", "--out", planFile, "--detailed-exitcode"]).status == 2)
        let applied = try cairn(["apply", planFile, "--repo", fleet.repo.path, "--db", fleet.dbPath])
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains("Applied 22 changes"))
        // The same file again: the observed state moved.
        let again = try cairn(["apply", planFile, "--repo", fleet.repo.path, "--db", fleet.dbPath])
        #expect(again.status == 1)
        #expect(again.stderr.contains("saved plan is stale: the observed state moved"))
        // A plan whose branch moved on.
        _ = try fleet.run(["plan", "--revision", "main", "--out", planFile])
        try fleet.repo.commit("another commit")
        let moved = try cairn(["apply", planFile, "--repo", fleet.repo.path, "--db", fleet.dbPath])
        #expect(moved.status == 1)
        #expect(moved.stderr.contains("saved plan is stale: main has moved"))
    }

    @Test func invalidRevisionAppliesNothingAndIsRecorded() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        let good = try fleet.database().observedState().lastAppliedRevision
        fleet.repo.write("models/broken.yaml", "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: broken}\nspec: {template: nope}\n")
        fleet.repo.write("targets/acme-search.yaml", "")
        try fleet.repo.commit("break it")
        let result = try fleet.run(["reconcile", "--no-color"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("models/broken.yaml:4:18: error: Model/broken: spec.template refers to Template/nope"))
        let db = try fleet.database()
        #expect(try db.observedState().lastAppliedRevision == good)
        #expect(try db.observedState().targets.isEmpty)
        #expect(try db.lastPass()?.result == "invalid")
        let missing = try fleet.run(["reconcile", "--revision", "no-such-branch"])
        #expect(missing.status == 1)
        #expect(try db.lastPass()?.result == "source_error")
        #expect(try db.observedState().models.count == 6)
    }

    @Test func tamperedOrDeletedAuditRowsAreFound() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        let ok = try fleet.runDB(["audit", "verify"])
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("audit chain intact: 22 rows verified"))
        // Someone with the file edits a row (dropping the append-only trigger first).
        try runSQL(fleet.dbPath, "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET reason = 'nothing to see' WHERE id = 7;")
        let altered = try fleet.runDB(["audit", "verify"])
        #expect(altered.status == 1)
        #expect(altered.stdout.contains("audit chain BROKEN at row 7: row 7 was altered"))
    }

    @Test func deletingTheNewestAuditRowIsFound() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        try runSQL(fleet.dbPath, "DROP TRIGGER audit_log_no_delete; DELETE FROM audit_models WHERE audit_id IN (3, 22); DELETE FROM audit_log WHERE id = 22;")
        let result = try fleet.runDB(["audit", "verify"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("newest rows were deleted or replaced"))
        try runSQL(fleet.dbPath, "DELETE FROM audit_log WHERE id = 3;")
        #expect(try fleet.runDB(["audit", "verify"]).stdout.contains("row 3 is missing"))
    }

    @Test func twoConcurrentReconcilesNeverInterleave() throws {
        let fleet = try Fleet()
        try FileManager.default.createDirectory(atPath: (fleet.dbPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = try fleet.database()
        let results = ConcurrentResults()
        let group = DispatchGroup()
        for _ in 0..<2 {
            group.enter()
            Thread.detachNewThread {
                results.append(try? cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.dbPath, "--lock-timeout", "0"]))
                group.leave()
            }
        }
        group.wait()
        let all = results.values.compactMap { $0 }
        #expect(all.count == 2)
        // Whoever lost the race either found the lease taken or, arriving after, nothing to do.
        let appliedAll = all.filter { $0.stdout.contains("Applied 22 changes") }
        #expect(appliedAll.count == 1, "\(all.map { $0.stdout + $0.stderr })")
        let other = all.first { !$0.stdout.contains("Applied 22 changes") }!
        #expect(other.stderr.contains("reconcile already running: pid") || other.stdout.contains("Nothing to apply."), "\(other.stdout)\(other.stderr)")
        let db = try fleet.database()
        #expect(try db.auditCount() == 22)
        #expect(try db.verifyAudit() == nil)
        // Every change exactly once.
        let history = try db.history(RegistryDatabase.HistoryFilter(limit: 100))
        #expect(Set(history.map { "\($0.action) \($0.address)" }).count == 22)
    }

    @Test func rollbackIsDriftThatTheNextReconcileReverts() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        try fleet.trainAll()
        _ = try fleet.run(["reconcile"])
        // Retrain search-knn to v2 and promote it (family champion route).
        fleet.repo.write("models/search.yaml", try String(contentsOf: packageRoot.appendingPathComponent("examples/fleet/models/search.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "  label: Search re-ranking neighbours\n", with: "  label: Search re-ranking neighbours\n  retrainToken: \"two\"\n"))
        try fleet.repo.commit("retrain search-knn")
        _ = try fleet.run(["reconcile"])
        try fleet.trainAll()
        let promote = try fleet.run(["reconcile", "--no-color"])
        #expect(promote.stdout.contains("search-knn v1 → v2 (100%)"))
        let rollback = try fleet.runDB(["rollback", "acme-search", "--to", "1"])
        #expect(rollback.status == 0, "\(rollback.stderr)")
        #expect(rollback.stdout.contains("search-knn v2 → v1"))
        let plan = try fleet.run(["plan", "--no-color"])
        #expect(plan.stdout.contains("Drift (changed outside git; the plan puts the declared state back):"))
        #expect(plan.stdout.contains("ServingTarget/acme-search  live search-knn v1 (100%), declared search-knn v2 (100%) — by "))
        #expect(plan.stdout.contains("revert drift: search-knn v1 → v2 (100%)"))
        let history = try fleet.runDB(["history", "--target", "acme-search", "--format", "json"])
        #expect(history.stdout.contains("break-glass rollback: search-knn v2 → v1"))
        // Suspended: plans still show, nothing applies; resumed: the revert applies.
        #expect(try fleet.runDB(["suspend"]).status == 0)
        let suspended = try fleet.run(["reconcile"])
        #expect(suspended.stderr.contains("applying is suspended"))
        #expect(try fleet.database().observedState().targets["acme-search"]?.routes.first?.version == 1)
        #expect(try fleet.runDB(["resume"]).status == 0)
        _ = try fleet.run(["reconcile"])
        let target = try fleet.database().observedState().targets["acme-search"]
        #expect(target?.routes.first?.version == 2)
        #expect(target?.drift == nil)
    }

    /// A plan against a registry that does not exist says so in its first line, in every format,
    /// and `--require-registry` makes it an error (a missing snapshot in CI must not yield a PR
    /// comment that re-creates the whole fleet).
    @Test func aPlanWithoutARegistrySaysSoFirst() throws {
        let fleet = try Fleet()
        let missing = fleet.repo.dir.url.appendingPathComponent("no-such/registry.db").path
        let text = try cairn(["plan", "--repo", fleet.repo.path, "--db", missing, "--no-color"])
        #expect(text.stdout.hasPrefix("warning: no registry database at \(missing): this plan is against an empty registry"), "\(text.stdout.prefix(300))")
        let markdown = try cairn(["plan", "--repo", fleet.repo.path, "--db", missing, "--format", "markdown"])
        #expect(markdown.stdout.hasPrefix("> **Warning:** no registry database"), "\(markdown.stdout.prefix(300))")
        let json = try cairn(["plan", "--repo", fleet.repo.path, "--db", missing, "--format", "json"])
        #expect(json.stdout.contains("\"registryMissing\" : true"))
        let required = try cairn(["plan", "--repo", fleet.repo.path, "--db", missing, "--require-registry"])
        #expect(required.status == 1)
        #expect(required.stderr.contains("no registry database at \(missing): nothing to plan against (--require-registry)"))
        // With a registry, none of it.
        _ = try fleet.run(["reconcile"])
        let planned = try fleet.run(["plan", "--no-color", "--require-registry", "--format", "json"])
        #expect(planned.status == 0 && !planned.stdout.contains("registryMissing"))
    }

    /// `--format markdown` on status, versions and history gives GitHub tables, not the text layout.
    @Test func statusVersionsAndHistoryInMarkdown() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        try fleet.trainAll()
        let status = try fleet.runDB(["status", "--format", "markdown"])
        #expect(status.status == 0)
        #expect(status.stdout.hasPrefix("## Cairn status · "), "\(status.stdout.prefix(300))")
        #expect(status.stdout.contains("### Models\n\n| NAME | LIFECYCLE | STAGE | PHASE | VERSIONS | LIVE ON |\n|---|---|---|---|---|---|\n"))
        #expect(status.stdout.contains("| search-knn | active | champion (search) | "))
        let versions = try fleet.runDB(["versions", "search-knn", "--format", "markdown"])
        #expect(versions.stdout.hasPrefix("| N | SYSTEM NAME | STATUS | METRICS | SAMPLES | TUNING | FINGERPRINT | COMMIT | LABEL | DESCRIPTION |\n|---|"))
        let history = try fleet.runDB(["history", "--format", "markdown"])
        #expect(history.stdout.hasPrefix("| ID | TIME | ACTION | ADDRESS | REASON | ACTOR | REVISION |\n|---|"))
    }

    /// A champion swap in a pull-request plan compares the new model with the one it replaces
    /// (the live column was blank: only the same model's earlier version was looked for), shows
    /// the delta and flags the regression, in markdown, text and JSON.
    @Test func aChampionSwapIsComparedWithWhatItReplaces() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        let base = ["recall@20": 0.4, "coverage": 0.5, "precision@5": 0.2]
        try fleet.trainAll(per: ["search-knn": base.merging(["ndcg@10": 0.211]) { $1 },
                                 "search-popular": base.merging(["ndcg@10": 0.147, "recall@20": 0.45]) { $1 }])
        _ = try fleet.run(["reconcile"])
        let search = try String(contentsOf: fleet.repo.dir.url.appendingPathComponent("models/search.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "  approval: {mode: manual}\n", with: "  approval: {mode: manual}\n  decisions: {approve: [1]}\n")
        try fleet.repo.git(["checkout", "-q", "-b", "swap"])
        try fleet.repo.commit("acme search: route to search-popular", files: ["models/search.yaml": search, "targets/acme-search.yaml": Self.acmeSearchOnPopular])
        let md = try fleet.run(["plan", "--revision", "swap", "--format", "markdown"])
        #expect(md.status == 0, "\(md.stderr)")
        #expect(md.stdout.contains("> **1 candidate below what is live** on at least one metric"), "\(md.stdout)")
        #expect(md.stdout.contains("| `acme-search` | search-popular v1 | ndcg@10 | 0.1470 | search-knn v1 | 0.2110 | ⚠️ **−0.0640** |"), "\(md.stdout)")
        #expect(md.stdout.contains("| `acme-search` | search-popular v1 | recall@20 | 0.4500 | search-knn v1 | 0.4000 | +0.0500 |"))
        let text = try fleet.run(["plan", "--revision", "swap", "--no-color"])
        #expect(text.stdout.contains("ServingTarget/acme-search  search-popular v1 vs live search-knn v1: ndcg@10 0.1470 vs 0.2110"), "\(text.stdout)")
        let json = try fleet.run(["plan", "--revision", "swap", "--format", "json"])
        let plan = try JSONDecoder().decode(Plan.self, from: Data(json.stdout.utf8))
        let swap = plan.candidates.first { $0.target == "acme-search" }
        #expect(swap?.liveModel == "search-knn" && swap?.liveVersion == 1 && swap?.regressions == ["ndcg@10"] && swap?.deltas?["ndcg@10"] == -0.064)
    }

    /// A version's label and description are set in git, planned and audited as the model's
    /// update, and shown by `versions`, `status` and the PR plan; removing them clears them.
    /// System names no longer double the version (`… v1 · train-…`).
    @Test func versionLabelsComeFromGitAndAreAudited() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        try fleet.trainAll()
        _ = try fleet.run(["reconcile"])
        let file = fleet.repo.dir.url.appendingPathComponent("models/search.yaml")
        let original = try String(contentsOf: file, encoding: .utf8)
        let labelled = original.replacingOccurrences(of: "  label: Search re-ranking neighbours\n", with: """
              label: Search re-ranking neighbours
              versionLabels:
                - version: 1
                  label: first catalogue
                  description: |
                    Trained on the first catalogue export.
                    Coverage is low; see the notebook.

            """)
        try fleet.repo.commit("label search-knn v1", files: ["models/search.yaml": labelled])
        let plan = try fleet.run(["plan", "--no-color"])
        #expect(plan.stdout.contains("~ Model/search-knn             update (v1 label \"first catalogue\"; v1 description set)"), "\(plan.stdout)")
        #expect(plan.stdout.contains("Plan: 1 update, 1 blocked."), "a label retrains nothing: \(plan.stdout)")
        let applied = try fleet.run(["reconcile"])
        #expect(applied.status == 3, "\(applied.stdout)\(applied.stderr)")
        let versions = try fleet.runDB(["versions", "search-knn", "--no-color"])
        #expect(versions.stdout.contains("first catalogue  Trained on the first catalogue export.…"), "\(versions.stdout)")
        #expect(!versions.stdout.contains(" v1 · train-") && versions.stdout.contains(" · train-"), "system name without a doubled version: \(versions.stdout)")
        let json = try JSONSerialization.jsonObject(with: Data(try fleet.runDB(["versions", "search-knn", "--format", "json"]).stdout.utf8)) as? [[String: Any]]
        #expect(json?.first?["description"] as? String == "Trained on the first catalogue export.\nCoverage is low; see the notebook.\n")
        let status = try fleet.runDB(["status", "--no-color"])
        #expect(status.stdout.contains("1, v1 approved “first catalogue”"), "\(status.stdout)")
        let history = try fleet.runDB(["history", "--model", "search-knn", "--format", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rows.first?["action"] as? String == "update" && (rows.first?["reason"] as? String)?.hasPrefix("v1 label \"first catalogue\"") == true,
                "\(history.stdout.prefix(1500))")
        #expect(try fleet.runDB(["audit", "verify"]).status == 0)
        // The PR plan shows the label beside a candidate it labels.
        try fleet.repo.git(["checkout", "-q", "-b", "swap"])
        let swapped = labelled.replacingOccurrences(of: "  approval: {mode: manual}\n", with: "  approval: {mode: manual}\n  decisions: {approve: [1]}\n  versionLabels: [{version: 1, label: popular baseline}]\n")
        try fleet.repo.commit("route acme-search to the baseline", files: ["models/search.yaml": swapped, "targets/acme-search.yaml": Self.acmeSearchOnPopular])
        let md = try fleet.run(["plan", "--revision", "swap", "--format", "markdown"])
        #expect(md.stdout.contains("| `acme-search` | search-popular v1 “popular baseline” | ndcg@10 |"), "\(md.stdout)")
        // Removing the labels from git clears them.
        try fleet.repo.git(["checkout", "-q", "main"])
        try fleet.repo.commit("drop the label", files: ["models/search.yaml": original])
        #expect(try fleet.run(["reconcile"]).status == 3)
        let cleared = try JSONSerialization.jsonObject(with: Data(try fleet.runDB(["versions", "search-knn", "--format", "json"]).stdout.utf8)) as? [[String: Any]]
        #expect(cleared?.first?["label"] == nil && cleared?.first?["description"] == nil)
    }

    /// `history --model X` lists the promotion that took X off a target, not only those that put it on.
    @Test func historyOfAModelIncludesThePromotionThatTookItOff() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        try fleet.trainAll()
        _ = try fleet.run(["reconcile"])
        #expect(try fleet.database().observedState().targets["acme-search"]?.routes.map(\.model) == ["search-knn"])
        let search = try String(contentsOf: fleet.repo.dir.url.appendingPathComponent("models/search.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "  approval: {mode: manual}\n", with: "  approval: {mode: manual}\n  decisions: {approve: [1]}\n")
        try fleet.repo.commit("acme search: route to search-popular", files: ["models/search.yaml": search, "targets/acme-search.yaml": Self.acmeSearchOnPopular])
        let swap = try fleet.run(["reconcile", "--no-color"])
        #expect(swap.status == 0 || swap.status == 3, "\(swap.stdout)\(swap.stderr)")
        #expect(try fleet.database().observedState().targets["acme-search"]?.routes.map(\.model) == ["search-popular"])
        let history = try fleet.runDB(["history", "--model", "search-knn", "--format", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(history.stdout.utf8)) as? [[String: Any]] ?? []
        let promotions = rows.filter { $0["action"] as? String == "promote" && $0["address"] as? String == "ServingTarget/acme-search" }
        #expect(promotions.count == 2, "put on, then taken off: \(history.stdout.prefix(2000))")
    }

    /// `reconcile --wait` while applying is suspended: it prints the plan once, waits instead of
    /// re-planning (it ran hundreds of passes a second, re-printing the plan each time), and its
    /// timeout names the cause and the way out.
    @Test func waitWhileSuspendedWaitsAndSaysWhy() throws {
        let fleet = try Fleet()
        #expect(try fleet.runDB(["suspend"]).status == 0)
        let result = try fleet.run(["reconcile", "--wait", "--timeout", "3s", "--no-color"])
        #expect(result.status == 1)
        #expect(result.stdout.components(separatedBy: "Plan: ").count - 1 == 1, "the plan is printed once:\n\(result.stdout.prefix(3000))")
        #expect(result.stderr.contains("timed out after 3s before converging: applying is suspended"), "\(result.stderr)")
        #expect(result.stderr.contains("hint: run `cairn resume` to apply again"))
        // Not a terminal: a plain progress line when what it says changes, not one per check.
        #expect(result.stderr.components(separatedBy: "s] pass 1 · training: 0/0 runs done, 0 running, 0 queued\n").count - 1 == 1, "\(result.stderr)")
        #expect(try fleet.database().observedState().models.isEmpty, "nothing applied")
    }

    @Test func pullRequestPlanInMarkdown() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        try fleet.trainAll()
        _ = try fleet.run(["reconcile"])
        try fleet.repo.git(["checkout", "-q", "-b", "tune-weights"])
        let weights = fleet.repo.dir.url.appendingPathComponent("weights/retail-default.yaml")
        let text = try String(contentsOf: weights, encoding: .utf8).replacingOccurrences(of: "renewed: 1.2", with: "renewed: 1.5")
        try fleet.repo.commit("Weigh renewals more", files: ["weights/retail-default.yaml": text])
        let md = try fleet.run(["plan", "--revision", "tune-weights", "--format", "markdown"])
        #expect(md.status == 0)
        #expect(md.stdout.hasPrefix("### Cairn plan for `tune-weights` @ `"))
        #expect(md.stdout.contains("**Plan: 1 update, 4 train, 1 blocked.**"))
        #expect(md.stdout.contains("| ~ | `OutcomeWeights/retail-default` | update (renewed 1.2 → 1.5) |"))
        #expect(md.stdout.contains("| » | `Model/search-popular` | train v2 (fingerprint "))
        #expect(md.stdout.contains("outcome weights changed) |"))
    }

    @Test func bulkPromotionsNeedToBeAskedFor() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        try fleet.trainAll()
        let guarded = try fleet.run(["reconcile", "--max-promotions", "2", "--no-color"])
        #expect(guarded.status == 3)
        #expect(guarded.stdout.contains("promote: bulk guard: this plan promotes 4 routes, more than --max-promotions 2; review it and pass --allow-bulk"))
        #expect(try fleet.database().observedState().targets.isEmpty)
        let allowed = try fleet.run(["reconcile", "--max-promotions", "2", "--allow-bulk", "--no-color"])
        #expect(allowed.stdout.contains("Plan: 3 promote, 1 blocked."))
        #expect(try fleet.database().observedState().targets.count == 3)
    }

    @Test func historyFilters() throws {
        let fleet = try Fleet()
        _ = try fleet.run(["reconcile"])
        let model = try fleet.runDB(["history", "--model", "search-knn", "--format", "json"])
        let rows = try JSONSerialization.jsonObject(with: Data(model.stdout.utf8)) as! [[String: Any]]
        #expect(rows.map { $0["action"] as! String } == ["train", "stage", "create"])
        #expect(rows.allSatisfy { ($0["revision"] as? String)?.count == 40 && ($0["author"] as? String) == "Ada Operator <ada@example.com>" })
        #expect(rows.allSatisfy { ($0["file"] as? String) == "models/search.yaml" })
        let since = try fleet.runDB(["history", "--since", "1h", "--limit", "3", "--no-color"])
        #expect(since.stdout.split(separator: "\n").count == 4)
        #expect(try fleet.runDB(["history", "--since", "yesterday"]).status == 1)
    }
}

func unixNowForTests() -> Int64 { Int64(Date().timeIntervalSince1970) }

/// Runs SQL on a database file directly (as someone tampering with it would).
func runSQL(_ path: String, _ sql: String) throws {
    let db = try DatabaseQueue(path: path)
    try db.writeWithoutTransaction { try $0.execute(sql: sql) }
}

final class ConcurrentResults: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [ProcessResult?] = []

    func append(_ value: ProcessResult?) {
        lock.lock()
        values.append(value)
        lock.unlock()
    }
}
