import CairnCore
import CairnStore
import Foundation
import GRDB
import Testing

/// `cairn worker`, trainers, artifacts and `recommend`, on real repositories and databases.
@Suite struct WorkerEndToEndTests {
    typealias Fleet = ReconcileEndToEndTests.Fleet

    /// Every secret a worker may hold; none of it may reach a trainer (`env.sh` writes its environment out).
    static let secretEnv = ["CAIRN_SIGNING_KEY": "746f707365637265742d6b65792d3132333435", "CAIRN_WEBHOOK_SECRET": "whsec-worker-7171",
                            "CAIRN_GIT_TOKEN": "ghs-worker-7272", "CAIRN_TOKEN": "api-worker-7373", "CAIRN_GIT_TOKEN_FILE": "/run/credentials/git-token"]

    func execTemplate(_ name: String, script: String, timeout: String = "1m", env: String = "{}") -> String {
        """
        apiVersion: cairn/v1
        kind: Template
        metadata: {name: \(name)}
        spec:
          events: [click]
          outcomeWeights: w
          dataset: {path: data/i.csv}
          trainer: {kind: exec, command: [sh, trainers/\(script)], timeout: \(timeout), env: \(env), params: {depth: 3}}
          evaluation: {metrics: [auc], holdout: 0.25, seed: 5}

        """
    }

    func activeModel(_ name: String, template: String) -> String {
        "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: \(name)}\nspec: {template: \(template), lifecycle: active}\n"
    }

    /// A repository whose models each use an exec trainer that misbehaves in its own way.
    func execRepo(extraFiles: [String: String] = [:]) throws -> (GitFixture, String) {
        let repo = try GitFixture()
        var files: [String: String] = [
            "data/i.csv": "user_id,item_id,event,timestamp\nu1,a,click,1793491200\n",
            "w.yaml": weightsDoc,
            "trainers/fail.sh": "echo loading data\necho 'boom: out of memory' >&2\nexit 3\n",
            "trainers/slow.sh": "sleep 4141 &\nsleep 4142\n",
            "trainers/badjson.sh": "echo nope > \"$CAIRN_OUTPUT/metrics.json\"\n",
            "trainers/missing.sh": "echo '{\"other\": 1}' > \"$CAIRN_OUTPUT/metrics.json\"\n",
            "trainers/env.sh": """
                env | sort > "$CAIRN_OUTPUT/env.txt"
                cp "$CAIRN_PARAMS" "$CAIRN_OUTPUT/params.json"
                head -1 "$CAIRN_DATASET" > "$CAIRN_OUTPUT/header.txt"
                echo '{"auc": 0.7}' > "$CAIRN_OUTPUT/metrics.json"

                """,
        ]
        var manifests = ""
        for (name, script, timeout) in [("fail", "fail.sh", "1m"), ("slow", "slow.sh", "1s"), ("badjson", "badjson.sh", "1m"),
                                        ("missing", "missing.sh", "1m"), ("env", "env.sh", "1m")] {
            manifests += execTemplate("t-\(name)", script: script, timeout: timeout) + "---\n" + activeModel("m-\(name)", template: "t-\(name)") + "---\n"
        }
        files["models.yaml"] = String(manifests.dropLast(4))
        for (k, v) in extraFiles { files[k] = v }
        try repo.commit("exec trainers", files: files)
        return (repo, repo.dir.url.appendingPathComponent(".cairn/cairn.db").path)
    }

    /// The example's Python trainer under `--path examples/fleet`: exec trainers run from the
    /// manifest root of the snapshot, where the template's relative paths point.
    @Test func theExamplePythonTrainerRunsUnderAManifestFolder() throws {
        let repo = try GitFixture()
        try repo.copyExamples(to: "examples/fleet")
        let models = repo.dir.url.appendingPathComponent("examples/fleet/models/search.yaml")
        let text = try String(contentsOf: models, encoding: .utf8)
        try text.replacingOccurrences(of: "  template: cooccurrence-py\n", with: "  template: cooccurrence-py\n  lifecycle: active\n")
            .write(to: models, atomically: true, encoding: .utf8)
        try repo.commit("the fleet under examples/fleet, with the Python model active")
        let db = repo.dir.url.appendingPathComponent(".cairn/cairn.db").path
        let reconcile = try cairn(["reconcile", "--repo", repo.path, "--path", "examples/fleet", "--db", db])
        #expect([0, 3].contains(reconcile.status), "\(reconcile.stdout)\(reconcile.stderr)")
        let worker = try cairn(["worker", "--once", "--repo", repo.path, "--db", db])
        #expect(worker.status == 0, "\(worker.stdout)\(worker.stderr)")
        let versions = try cairn(["versions", "search-experimental", "--db", db, "--format", "json"])
        #expect(versions.stdout.contains("\"number\" : 1"), "the Python run made v1: \(worker.stderr)")
    }

    @Test func execTrainerFailuresAreRecordedWithReasons() throws {
        let (repo, db) = try execRepo()
        #expect(try cairn(["reconcile", "--repo", repo.path, "--db", db]).status == 0)
        let worker = try cairn(["worker", "--once", "--repo", repo.path, "--db", db], env: Self.secretEnv)
        #expect(worker.status == 0, "\(worker.stderr)")
        #expect(worker.stdout.contains("1 run succeeded, 4 failed."))
        let runs = Dictionary(uniqueKeysWithValues: try RegistryDatabase(path: db).recentRuns().map { ($0.model, $0) })
        #expect(runs["m-fail"]?.reason == "trainer exited with status 3")
        #expect(runs["m-slow"]?.reason == "trainer timed out after 1s")
        // The timed-out trainer's whole process group is gone, its background child too.
        #expect(try RedTeamTests.processes("sleep 414[12]", running: false, within: 10), "a timed-out trainer's process outlived its run")
        #expect(runs["m-badjson"]?.reason == "metrics.json is not a JSON object such as {\"ndcg@10\": 0.31}")
        #expect(runs["m-missing"]?.reason == "metrics.json lacks auc (the template's evaluation lists them)")
        #expect(runs["m-env"]?.state == "succeeded")
        let logs = try cairn(["logs", String(runs["m-fail"]!.id), "--db", db])
        #expect(logs.stdout.contains("loading data") && logs.stdout.contains("boom: out of memory"))
        #expect(logs.stderr.contains("failed: trainer exited with status 3"))
        // Rule 6: the failed fingerprint is not retried blindly.
        let plan = try cairn(["plan", "--repo", repo.path, "--db", db, "--no-color"])
        #expect(plan.stdout.contains("! Model/m-fail     train: training run \(runs["m-fail"]!.id) failed: trainer exited with status 3; fix the template or data, or change retrainToken to try again"))
        #expect(plan.stdout.contains("Model/m-slow") && plan.stdout.contains("trainer timed out after 1s"))
    }

    @Test func execTrainerGetsTheContractAndNoSecrets() throws {
        let (repo, db) = try execRepo()
        _ = try cairn(["reconcile", "--repo", repo.path, "--db", db])
        _ = try cairn(["worker", "--once", "--repo", repo.path, "--db", db], env: Self.secretEnv)
        let version = try #require(try RegistryDatabase(path: db).versions(of: "m-env")?.first)
        let artifact = repo.dir.url.appendingPathComponent(".cairn/artifacts/\(version.artifactHash!)")
        let env = try String(contentsOf: artifact.appendingPathComponent("env.txt"), encoding: .utf8)
        for (name, value) in Self.secretEnv {
            #expect(!env.contains(name) && !env.contains(value), "\(name) reached the trainer")
        }
        for name in ["CAIRN_DATASET=", "CAIRN_PARAMS=", "CAIRN_OUTPUT=", "CAIRN_RUN_ID=", "CAIRN_MODEL=m-env", "CAIRN_VERSION=1"] {
            #expect(env.contains("\n" + name) || env.hasPrefix(name), "missing \(name)")
        }
        #expect(try String(contentsOf: artifact.appendingPathComponent("header.txt"), encoding: .utf8) == "user_id,item_id,event,timestamp\n")
        let params = try String(contentsOf: artifact.appendingPathComponent("params.json"), encoding: .utf8)
        #expect(params.contains("\"params\":{\"depth\":3}"))
        #expect(params.contains("\"outcomeWeights\":{\"click\":1}"))
        #expect(version.metrics == ["auc": 0.7])
        #expect(version.trainerVersion == "exec-1 sh trainers/env.sh")
        #expect(version.datasetHash == sha256Hex(Array("user_id,item_id,event,timestamp\nu1,a,click,1793491200\n".utf8)))
        // The signing key never reached the trainer, yet the artifact is signed with it.
        #expect(try cairn(["artifact", "verify", "m-env@1", "--db", db], env: Self.secretEnv).status == 0)
        let wrongKey = try cairn(["artifact", "verify", "m-env@1", "--db", db], env: ["CAIRN_SIGNING_KEY": "6f746865722d6b65792d6f662d31362d6279746573"])
        #expect(wrongKey.status == 1)
        #expect(wrongKey.stdout.contains("TAMPERED: artifact of m-env v1 has a signature this key did not make"))
    }

    /// Attack: a trainer reads the registry's PostgreSQL password from its environment
    /// (PGPASSWORD, or an address in CAIRN_DB) and writes to the registry directly, approving
    /// its own version. The worker must never hand either to a trainer.
    @Test func theRegistryPasswordNeverReachesATrainer() throws {
        let (repo, db) = try execRepo()
        _ = try cairn(["reconcile", "--repo", repo.path, "--db", db])
        let env = ["PGPASSWORD": "pg-7474-secret", "PGPASSWORD_FILE": "/run/credentials/cairn/db-password",
                   "CAIRN_DB": "postgres://cairn:db-7575-secret@db.internal/cairn"]
        let worker = try cairn(["worker", "--once", "--repo", repo.path, "--db", db], env: env.merging(Self.secretEnv) { a, _ in a })
        #expect(worker.status == 0, "\(worker.stdout)\(worker.stderr)")
        let version = try #require(try RegistryDatabase(path: db).versions(of: "m-env")?.first)
        let seen = try String(contentsOf: repo.dir.url.appendingPathComponent(".cairn/artifacts/\(version.artifactHash!)/env.txt"), encoding: .utf8)
        for (name, value) in env {
            #expect(!seen.contains(name + "=") && !seen.contains(value), "\(name) reached the trainer")
        }
    }

    /// A worker without the signing key (`--unsigned`) trains and submits; nothing is signed or
    /// recorded until a process holding the key (here `cairn reconcile --wait`) reads each
    /// artifact again from the store, signs and records it.
    @Test func anUnsignedWorkersRunsAreSignedAndRecordedWhereTheKeyIs() throws {
        let fleet = try ReconcileEndToEndTests.Fleet()
        let first = try fleet.run(["reconcile"])
        #expect(first.status == 0 || first.status == 3, "\(first.stdout)\(first.stderr)")
        let worker = try cairn(["worker", "--unsigned", "--once", "--repo", fleet.repo.path, "--db", fleet.dbPath])
        #expect(worker.status == 0, "\(worker.stdout)\(worker.stderr)")
        #expect(worker.stdout.contains("0 runs succeeded, 0 failed, 5 trained and left for the control plane to record."), "\(worker.stdout)")
        // No key was needed, and none was made.
        #expect(!FileManager.default.fileExists(atPath: fleet.repo.dir.url.appendingPathComponent(".cairn/signing.key").path))
        let db = try fleet.database()
        #expect(try db.runStateCounts() == ["running": 5])
        #expect(try db.versions(of: "homepage-recs")?.isEmpty == true)
        let status = try cairn(["status", "--db", fleet.dbPath])
        #expect(status.stdout.components(separatedBy: "trained; waits for cairn serve to verify, sign and record it").count == 6, "\(status.stdout)")
        let converged = try cairn(["reconcile", "--wait", "--repo", fleet.repo.path, "--db", fleet.dbPath], env: Self.secretEnv)
        #expect(converged.status == 3, "\(converged.stdout)\(converged.stderr)")
        #expect(try db.runStateCounts() == ["succeeded": 5])
        let verify = try cairn(["artifact", "verify", "homepage-recs@1", "--db", fleet.dbPath], env: Self.secretEnv)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(try db.verifyAudit() == nil && db.verifyState().isEmpty)
    }

    @Test func aKilledWorkersRunIsRecoveredByAnother() throws {
        let scratch = TempDir("cairn-marker")
        // The trainer writes its marker here; it runs as an unprivileged user when the tests run as root.
        chmod(scratch.path, 0o777)
        let marker = scratch.url.appendingPathComponent("marker").path
        let (repo, db) = try execRepo(extraFiles: [
            "trainers/once-slow.sh": """
                if [ ! -f "$MARKER" ]; then echo $$ > "$MARKER"; sleep 30; fi
                echo '{"auc": 0.8}' > "$CAIRN_OUTPUT/metrics.json"

                """,
            "models.yaml": execTemplate("t-once", script: "once-slow.sh", env: "{MARKER: \(marker)}") + "---\n" + activeModel("m-once", template: "t-once"),
        ])
        _ = try cairn(["reconcile", "--repo", repo.path, "--db", db])
        let first = Process()
        first.executableURL = URL(fileURLWithPath: cairnBinary)
        first.arguments = ["worker", "--once", "--lease", "2s", "--retry-delay", "1s", "--repo", repo.path, "--db", db]
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: marker), Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        try #require(FileManager.default.fileExists(atPath: marker), "the trainer never started")
        Thread.sleep(forTimeInterval: 0.2)
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        if let pid = Int32((try String(contentsOfFile: marker, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)) { kill(pid, SIGKILL) }
        let store = try RegistryDatabase(path: db)
        #expect(try store.recentRuns().first?.state == "running")
        // Let the dead worker's lease expire (as recorded), then another worker takes the run over.
        let expiry = { try DatabaseQueue(path: db).read { try Int64.fetchOne($0, sql: "SELECT lease_expires_at FROM training_runs") } ?? 0 }
        let recorded = try expiry()
        while Int64(Date().timeIntervalSince1970) <= recorded + 1 { Thread.sleep(forTimeInterval: 0.2) }
        #expect(try expiry() == recorded, "the lease moved after its worker was killed")
        let second = try cairn(["worker", "--once", "--lease", "2s", "--retry-delay", "1s", "--repo", repo.path, "--db", db])
        let afterwards = try store.recentRuns()
        #expect(second.stdout.contains("1 run succeeded, 0 failed."),
                "\(second.stdout)\(second.stderr) runs: \(afterwards) now \(Int64(Date().timeIntervalSince1970))")
        let run = try #require(try store.recentRuns().first)
        #expect(run.state == "succeeded")
        #expect(run.attempts == 2)
        #expect(try store.versions(of: "m-once")?.map(\.number) == [1])
        #expect(try store.verifyAudit() == nil)
    }

    @Test func tamperedArtifactsAreRefused() throws {
        let fleet = try Fleet()
        let reconcile = try fleet.run(["reconcile", "--wait", "--no-color"])
        #expect(reconcile.status == 3, "\(reconcile.stdout)\(reconcile.stderr)")
        #expect(reconcile.stdout.contains("Converged after 3 passes"))
        let ok = try fleet.runDB(["recommend", "--target", "acme-search", "--user", "u0001", "-k", "3", "--format", "json"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let answer = try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as! [String: Any]
        #expect(answer["model"] as? String == "search-knn")
        #expect((answer["items"] as? [[String: Any]])?.count == 3)
        #expect(try fleet.runDB(["recommend", "--target", "acme-search", "--user", "u0001", "-k", "3", "--format", "json"]).stdout == ok.stdout)
        let version = try #require(try fleet.database().versions(of: "search-knn")?.first)
        let model = fleet.repo.dir.url.appendingPathComponent(".cairn/artifacts/\(version.artifactHash!)/model.json")
        var bytes = try Data(contentsOf: model)
        bytes[bytes.count / 2] = bytes[bytes.count / 2] == UInt8(ascii: "1") ? UInt8(ascii: "2") : UInt8(ascii: "1")
        try bytes.write(to: model)
        let refused = try fleet.runDB(["recommend", "--target", "acme-search", "--user", "u0001"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("artifact of search-knn v1 was tampered with"))
        let verify = try fleet.runDB(["artifact", "verify", "search-knn@1"])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("TAMPERED"))
        #expect(try fleet.runDB(["artifact", "verify", "homepage-recs@1"]).status == 0)
    }

    @Test func retrainServesTheOldVersionUntilTheNewOneIsApprovedAndPromoted() throws {
        let fleet = try Fleet()
        // search-popular is manual-approval; route acme-search to it and approve v1 in git.
        fleet.repo.write("targets/acme-search.yaml", "apiVersion: cairn/v1\nkind: ServingTarget\nmetadata: {name: acme-search}\nspec:\n  tenant: acme\n  surface: search\n  routes: [{model: search-popular, version: latest-approved}]\n")
        let search = fleet.repo.dir.url.appendingPathComponent("models/search.yaml")
        let original = try String(contentsOf: search, encoding: .utf8)
        func models(_ extra: String) -> String {
            original.replacingOccurrences(of: "  label: Search popularity fallback\n", with: "  label: Search popularity fallback\n\(extra)")
        }
        try fleet.repo.commit("serve search-popular", files: ["models/search.yaml": models("  decisions: {approve: [1]}\n")])
        _ = try fleet.run(["reconcile", "--wait"])
        #expect(try fleet.database().observedState().targets["acme-search"]?.routes == [LiveRoute(model: "search-popular", version: 1, weight: 100)])

        try fleet.repo.commit("retrain", files: ["models/search.yaml": models("  retrainToken: \"second\"\n  decisions: {approve: [1]}\n")])
        let retrain = try fleet.run(["reconcile", "--wait", "--no-color"])
        #expect(retrain.stdout.contains("» Model/search-popular") && retrain.stdout.contains("train v2 (fingerprint"))
        let versions = try fleet.database().versions(of: "search-popular")
        #expect(versions?.map(\.status) == [.approved, .pending])
        #expect(try fleet.database().observedState().targets["acme-search"]?.routes.first?.version == 1)
        let served = try fleet.runDB(["recommend", "--target", "acme-search", "--user", "u0001"])
        #expect(served.stdout.hasPrefix("ServingTarget/acme-search → search-popular v1"))

        try fleet.repo.commit("approve v2", files: ["models/search.yaml": models("  retrainToken: \"second\"\n  decisions: {approve: [1, 2]}\n")])
        let promote = try fleet.run(["reconcile", "--no-color"])
        #expect(promote.stdout.contains("✓ Model/search-popular") && promote.stdout.contains("search-popular v1 → v2 (100%)"))
        #expect(try fleet.runDB(["recommend", "--target", "acme-search", "--user", "u0001"]).stdout.hasPrefix("ServingTarget/acme-search → search-popular v2"))
    }

    @Test func phasesFollowTheRuns() throws {
        let (repo, db) = try execRepo()
        _ = try cairn(["reconcile", "--repo", repo.path, "--db", db])
        let busy = try cairn(["status", "Model/m-fail", "--db", db, "--format", "json"])
        #expect(busy.stdout.contains("\"phase\" : \"busy\""))
        _ = try cairn(["worker", "--once", "--repo", repo.path, "--db", db])
        let status = try cairn(["status", "--db", db, "--no-color"])
        #expect(status.stdout.contains("failed: training run"))
        #expect(status.stdout.split(separator: "\n").contains { $0.hasPrefix("m-env ") && $0.contains("pending: v1 awaits approval") })
    }
}
