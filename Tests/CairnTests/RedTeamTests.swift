import CairnCore
import CairnTraining
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import Testing

/// The red-team suite (`make redteam`; RELIABILITY.md, "Security"): each attack on the promise
/// "what is live changed only through a reviewed commit, and no secret leaks" runs as a real
/// process against the built binary, and must be refused or detected with a clear message,
/// with nothing lost.
@Suite struct RedTeamTests {
    /// The example fleet in a fresh repository, reconciled once into its own registry.
    final class Fleet: @unchecked Sendable {
        let repo: GitFixture
        let registry: Registry
        var db: String { registry.db }

        init(_ label: String, reconcile: Bool = true) throws {
            repo = try GitFixture()
            try repo.copyExamples()
            try repo.commit("The example fleet")
            registry = try Registry(label)
            if reconcile {
                let first = try cairn(["reconcile", "--repo", repo.path, "--db", db], env: Registry.env)
                #expect(first.status == 0 || first.status == 3, "\(first.stdout)\(first.stderr)")
            }
        }

        func plan(_ extra: [String] = []) throws -> ProcessResult {
            try cairn(["plan", "--repo", repo.path, "--db", db, "--format", "json"] + extra, env: Registry.env)
        }
    }

    // MARK: 1. No secret or file content leaks into any output

    /// Everything a person or a machine can read back from a registry.
    static func everyOutput(_ fleet: Fleet) throws -> String {
        var out = ""
        for args in [["status"], ["status", "--format", "json"], ["history", "--limit", "1000"], ["history", "--format", "json", "--limit", "1000"],
                     ["plan", "--repo", fleet.repo.path, "--format", "markdown"], ["plan", "--repo", fleet.repo.path, "--format", "json"]] {
            let r = try cairn(args + ["--db", fleet.db], env: Registry.env)
            out += r.stdout + r.stderr
        }
        out += try fleet.registry.read { db in
            try String.fetchAll(db, sql: "SELECT COALESCE(reason, '') || COALESCE(log, '') FROM training_runs").joined()
                + (try String.fetchAll(db, sql: "SELECT COALESCE(reason, '') || COALESCE(before, '') || COALESCE(after, '') FROM audit_log").joined())
        }
        return out
    }

    @Test func aDatasetPointedAtAnotherFileNeverQuotesIt() throws {
        let fleet = try Fleet("cairn-redteam-leak", reconcile: false)
        let canary = "CANARY_API_KEY=sk-live-7f3a9c1e"
        fleet.repo.write("data/notes.env", canary + "\nsecond line\n")
        try RedTeamTests.edit(fleet.repo, "templates/popular-now.yaml", "path: data/interactions.csv", "path: data/notes.env")
        try fleet.repo.commit("popular-now: dataset moved")
        let run = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db, "--wait"], env: Registry.env)
        #expect(run.status != 0)
        let failed = try fleet.registry.read { try String.fetchAll($0, sql: "SELECT reason FROM training_runs WHERE state = 'failed'") }
        #expect(failed.contains { $0.contains("dataset line 1") && $0.contains("has no 'user_id' column") }, "\(failed)")
        let outputs = try Self.everyOutput(fleet) + run.stdout + run.stderr
        #expect(outputs.contains("has no 'user_id' column"), "the failure is reported")
        #expect(!outputs.contains("CANARY") && !outputs.contains("sk-live"), "file content leaked")
    }

    @Test func fileDatasetsAreReadOnlyUnderRootsTheOperatorListsAndNeverFromTheStateDirectory() throws {
        let fleet = try Fleet("cairn-redteam-uri", reconcile: false)
        let outside = TempDir("cairn-redteam-datasets")
        try FileManager.default.copyItem(atPath: fleet.repo.path + "/data/interactions.csv", toPath: outside.path + "/interactions.csv")
        outside.write("secret.env", "CANARY_TOKEN=ghp_0123456789\n")
        func attempt(_ uri: String, roots: [String], _ label: String) throws -> (ProcessResult, [String]) {
            let text = try String(contentsOfFile: fleet.repo.path + "/templates/popular-now.yaml", encoding: .utf8)
            let edited = text.replacingOccurrences(of: #"(?m)^    (path|uri): .*$"#, with: "    uri: \(uri)", options: .regularExpression)
            fleet.repo.write("templates/popular-now.yaml", edited)
            try fleet.repo.commit(label)
            let r = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db, "--wait"] + roots.flatMap { ["--dataset-root", $0] },
                              env: Registry.env)
            let errors = try fleet.registry.read {
                try String.fetchAll($0, sql: "SELECT reason FROM training_runs WHERE state = 'failed' AND model IN ('homepage-recs-b', 'search-popular') ORDER BY id DESC LIMIT 1")
            }
            return (r, errors)
        }
        // No root listed: refused.
        let (_, none) = try attempt("file:///etc/passwd", roots: [], "dataset: /etc/passwd")
        #expect(none.first?.contains("outside the folders this worker may read datasets from (none are listed)") == true, "\(none)")
        // Listed root, but the file is the registry database: refused (the state directory is never a dataset).
        let (_, key) = try attempt("file://\(fleet.db)", roots: ["/"], "dataset: the registry database")
        #expect(key.first?.contains("inside Cairn's state directory") == true, "\(key)")
        // A listed root, a file that is not a dataset: fails without quoting it.
        let (_, secret) = try attempt("file://\(outside.path)/secret.env", roots: [outside.path], "dataset: a secret")
        #expect(secret.first?.contains("has no 'user_id' column") == true, "\(secret)")
        // A dataset under a listed root trains.
        let (ok, _) = try attempt("file://\(outside.path)/interactions.csv", roots: [outside.path], "dataset: outside the repository")
        #expect(ok.status == 0 || ok.status == 3, "\(ok.stdout)\(ok.stderr)")
        let trained = try fleet.registry.count("training_runs", "state = 'succeeded' AND model = 'search-popular'")
        #expect(trained >= 1)
        let outputs = try Self.everyOutput(fleet)
        #expect(!outputs.contains("root:x:0") && !outputs.contains("CANARY") && !outputs.contains("ghp_") && !outputs.contains("SQLite format"),
                "file content leaked")
    }

    @Test func credentialsInTheRepositoryAddressAreNeverShownOrStored() throws {
        let state = TempDir("cairn-redteam-credentials")
        let db = state.path + "/cairn.db"
        let secret = "s3cr3t-t0ken-4242"
        let port = freePort()
        let closed = freePort()
        let readToken = try cairn(["token", "create", "redteam", "--scope", "read", "--db", db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let logFile = state.path + "/serve.log"
        let serve = try CairnProcess(["serve", "--repo", "http://deploy:\(secret)@127.0.0.1:\(closed)/fleet.git", "--revision", "main", "--db", db,
                                      "--listen", "127.0.0.1:\(port)", "--workers", "0", "--interval", "1s"], env: Registry.env, log: logFile)
        defer { serve.stop() }
        var status = ""
        for _ in 0..<100 {
            if let answer = try? httpGet(port: port, "/v1/status", token: readToken), answer.1.contains("SourceUnavailable") {
                status = answer.1
                break
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(status.contains("SourceUnavailable") && status.contains("http://***@127.0.0.1"), "\(status)")
        let ready = try httpGet(port: port, "/readyz")
        let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        var stored = ""
        if let e = FileManager.default.enumerator(atPath: state.path) {
            while let file = e.nextObject() as? String {
                if let data = FileManager.default.contents(atPath: state.path + "/" + file) { stored += String(decoding: data, as: UTF8.self) }
            }
        }
        for (label, text) in [("status", status), ("readyz", ready.1), ("log", log), ("state directory", stored)] {
            #expect(!text.contains(secret), "\(label) holds the credential")
        }
        #expect(log.contains("***@127.0.0.1"), "\(log)")
    }

    // MARK: 2. Saved plans cannot be forged

    /// Rewrites a saved plan's JSON in place.
    static func forge(_ file: String, _ edit: (inout [String: Any]) -> Void) throws {
        var plan = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as! [String: Any]
        edit(&plan)
        try JSONSerialization.data(withJSONObject: plan, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: file))
    }

    @Test func anEditedPlanFileIsRefusedAndNamesTheEdit() throws {
        let fleet = try Fleet("cairn-redteam-forge", reconcile: false)
        let converge = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db, "--wait"], env: Registry.env)
        #expect(converge.status == 3, "the manual shadow waits for approval: \(converge.stdout)\(converge.stderr)")
        func pendingShadow() throws -> String? {
            try fleet.registry.read { try String.fetchOne($0, sql: "SELECT status FROM versions WHERE model = 'homepage-recs-c' AND number = 1") }
        }
        #expect(try pendingShadow() == "pending")
        // A retrain is due, so the saved plan has a train change to tamper with.
        try RedTeamTests.edit(fleet.repo, "models/search.yaml", "  label: Search re-ranking neighbours\n",
                              "  label: Search re-ranking neighbours\n  retrainToken: \"forge\"\n")
        try fleet.repo.commit("retrain search-knn")
        let planFile = fleet.registry.dir.path + "/plan.json"
        let made = try cairn(["plan", "--repo", fleet.repo.path, "--db", fleet.db, "--out", planFile], env: Registry.env)
        #expect(made.status == 0, "\(made.stderr)")
        let pristine = try Data(contentsOf: URL(fileURLWithPath: planFile))
        let audit = try fleet.registry.auditRows()
        let marker = fleet.registry.dir.path + "/pwned"

        // 1. An approval nobody committed, with a reason copied from a real one.
        try Self.forge(planFile) { plan in
            var changes = plan["changes"] as! [[String: Any]]
            changes.append(["action": "approve", "address": "Model/homepage-recs-c", "version": 1, "reason": "listed in decisions.approve",
                            "file": "models/homepage.yaml"])
            plan["changes"] = changes
        }
        let approve = try cairn(["apply", planFile, "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env)
        #expect(approve.status == 1)
        #expect(approve.stderr.contains("saved plan does not match what revision")
                && approve.stderr.contains(", approve Model/homepage-recs-c v1, which the revision does not give"), "\(approve.stderr)")

        // 2. A train change whose template now runs a command of the attacker's.
        try pristine.write(to: URL(fileURLWithPath: planFile))
        try Self.forge(planFile) { plan in
            var changes = plan["changes"] as! [[String: Any]]
            let i = changes.firstIndex { $0["action"] as? String == "train" }!
            var after = changes[i]["after"] as! [String: Any]
            var template = after["template"] as! [String: Any]
            template["trainer"] = ["exec": ["command": ["sh", "-c", "touch \(marker)"], "env": [:], "params": [:]]]
            after["template"] = template
            changes[i]["after"] = after
            plan["changes"] = changes
        }
        let exec = try cairn(["apply", planFile, "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env)
        #expect(exec.status == 1)
        #expect(exec.stderr.contains("(train Model/search-knn v2): its after is"), "\(exec.stderr)")

        // 3. The same plan pointed at another revision's commit id, or with a changed reason.
        try pristine.write(to: URL(fileURLWithPath: planFile))
        try Self.forge(planFile) { plan in
            var changes = plan["changes"] as! [[String: Any]]
            changes[0]["reason"] = "approved by the release manager"
            plan["changes"] = changes
        }
        let reason = try cairn(["apply", planFile, "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env)
        #expect(reason.status == 1 && reason.stderr.contains("its reason is approved by the release manager in the file"), "\(reason.stderr)")

        // Nothing of any of them was recorded or run.
        let worker = try cairn(["worker", "--once", "--db", fleet.db, "--repo", fleet.repo.path], env: Registry.env)
        #expect(worker.status == 0)
        #expect(!FileManager.default.fileExists(atPath: marker), "the injected command ran")
        #expect(try pendingShadow() == "pending")
        #expect(try fleet.registry.auditRows() == audit)

        // 4. The plan file swapped for an honest plan of an unreviewed branch.
        try fleet.repo.git(["checkout", "-q", "-b", "unreviewed"])
        try RedTeamTests.edit(fleet.repo, "models/homepage.yaml", "  retrainToken: \"2026-11-20\"\n",
                              "  retrainToken: \"2026-11-20\"\n  decisions: {approve: [1]}\n")
        try fleet.repo.commit("approve the shadow (not reviewed)")
        let branchPlan = fleet.registry.dir.path + "/branch-plan.json"
        #expect(try cairn(["plan", "--repo", fleet.repo.path, "--db", fleet.db, "--revision", "unreviewed", "--out", branchPlan], env: Registry.env).status == 0)
        try fleet.repo.git(["checkout", "-q", "main"])
        let swapped = try cairn(["apply", branchPlan, "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env)
        #expect(swapped.status == 1 && swapped.stderr.contains("the plan is for unreviewed at"), "\(swapped.stderr)")
        #expect(try pendingShadow() == "pending")
        #expect(try fleet.registry.auditRows() == audit)

        // The plan as made applies.
        try pristine.write(to: URL(fileURLWithPath: planFile))
        let applied = try cairn(["apply", planFile, "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env)
        #expect(applied.status == 0, "\(applied.stderr)")
        #expect(applied.stdout.contains("Applied 2 changes"), "\(applied.stdout)")
        #expect(try pendingShadow() == "pending")
    }

    // MARK: 3. Trainers are untrusted code

    /// A trainer that tries every way this suite knows to read the worker's secrets or write the
    /// registry, and reports each attempt on its output (kept as the run's log).
    static let hostileTrainer = #"""
    #!/bin/sh
    # Everything a hostile exec trainer might try. Prints LEAKED or refused for each attempt.
    try() { if (eval "$2") >/dev/null 2>&1; then echo "ATTEMPT $1: LEAKED"; else echo "ATTEMPT $1: refused"; fi; }
    found=""
    for f in /proc/[0-9]*/environ; do
      if grep -a -q -e "CAIRN_WEBHOOK_SECRET=$SECRET_WEBHOOK" -e "CAIRN_GIT_TOKEN=$SECRET_TOKEN" "$f" 2>/dev/null; then found="$found $f"; fi
    done
    if [ -n "$found" ]; then echo "ATTEMPT environ of other processes: LEAKED ($found)"; else echo "ATTEMPT environ of other processes: refused"; fi
    try "own environment" 'env | grep -q -e CAIRN_WEBHOOK_SECRET -e CAIRN_GIT_TOKEN -e CAIRN_SIGNING_KEY'
    try "read signing.key" 'cat "$STATE/signing.key"'
    try "read registry.db" 'cat "$STATE/registry.db"'
    try "read registry.db-wal" 'test -s "$STATE/registry.db-wal" && cat "$STATE/registry.db-wal"'
    try "write registry.db" ': >> "$STATE/registry.db"'
    try "create a file in the state directory" ': > "$STATE/planted"'
    try "write an artifact" 'for d in "$STATE"/artifacts/*/; do : > "$d/model.json" && exit 0; done; exit 1'
    # A child that should die with its worker.
    sleep "$CHILD" &
    mkdir -p "$CAIRN_OUTPUT" && echo '{"ndcg@10": 0.5, "recall@20": 0.5}' > "$CAIRN_OUTPUT/metrics.json"
    if [ -n "$HOLD" ]; then sleep "$HOLD"; fi
    """#

    /// The example fleet with popular-now's trainer replaced by `hostileTrainer`, given these
    /// variables. `state` is where it looks for the registry; `state: nil` means the fleet's own.
    static func hostileFleet(_ label: String, state: String? = nil, webhook: String = "-", token: String = "-", hold: String = "",
                             child: String) throws -> Fleet {
        let fleet = try Fleet(label, reconcile: false)
        fleet.repo.write("train/hostile.sh", Self.hostileTrainer)
        try RedTeamTests.edit(fleet.repo, "templates/popular-now.yaml", "  trainer:\n    kind: builtin\n    algorithm: popularity\n",
                              "  trainer:\n    kind: exec\n    command: [sh, train/hostile.sh]\n    timeout: 2m\n"
                              + "    env: {STATE: \"\(state ?? fleet.registry.dir.path)\", SECRET_WEBHOOK: \"\(webhook)\", SECRET_TOKEN: \"\(token)\", "
                              + "HOLD: \"\(hold)\", CHILD: \"\(child)\"}\n")
        try fleet.repo.commit("popular-now: our own training code")
        return fleet
    }

    /// Polls `pgrep -f pattern` until a process matches (`running`) or none does; true if it came to pass.
    static func processes(_ pattern: String, running: Bool, within seconds: Double) throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if (try runProcess("/usr/bin/pgrep", ["-f", pattern]).status == 0) == running { return true }
            Thread.sleep(forTimeInterval: 0.1)
        } while Date() < deadline
        return false
    }

    @Test(.enabled(if: getuid() == 0, "trainers run as another user only when cairn runs as root; run the suite as root (CI does)"))
    func aHostileTrainerReadsNoSecretAndWritesNoRegistry() throws {
        let webhook = "whsec-redteam-5151", token = "ghs-redteam-6262"
        let fleet = try Self.hostileFleet("cairn-redteam-trainer", webhook: webhook, token: token, child: "3137")
        let state = fleet.registry.dir.path
        // The key comes from its file (generated), the other secrets from the environment.
        let env = ["CAIRN_SIGNING_KEY": "", "CAIRN_WEBHOOK_SECRET": webhook, "CAIRN_GIT_TOKEN": token]
        let first = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db], env: env)
        #expect(first.status == 0 || first.status == 3, "\(first.stdout)\(first.stderr)")
        let train = try cairn(["worker", "--once", "--repo", fleet.repo.path, "--db", fleet.db], env: env)
        #expect(train.status == 0, "\(train.stderr)")
        #expect(!train.stderr.contains("warning: exec trainers run as"), "running as root, trainers are isolated: \(train.stderr)")
        let runs = try fleet.registry.read { try Row.fetchAll($0, sql: "SELECT id, model, state FROM training_runs WHERE model IN ('homepage-recs-b', 'search-popular')") }
        #expect(runs.count == 2 && runs.allSatisfy { $0["state"] as String == "succeeded" }, "\(runs)")
        for run in runs {
            let id: Int = run["id"]
            let log = try cairn(["logs", String(id), "--db", fleet.db]).stdout
            let attempts = log.split(separator: "\n").filter { $0.hasPrefix("ATTEMPT ") }
            #expect(attempts.count == 8, "\(log)")
            #expect(attempts.allSatisfy { $0.hasSuffix(": refused") }, "\(log)")
        }
        #expect(!FileManager.default.fileExists(atPath: state + "/planted"))
        let verify = try cairn(["audit", "verify", "--db", fleet.db])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        // Its child did not outlive the run.
        #expect(try runProcess("/usr/bin/pgrep", ["-f", "sleep 3137"]).status == 1, "a trainer's process outlived its run")
    }

    @Test(.enabled(if: getuid() == 0, "trainers run in a PID namespace of their own only when cairn runs as root; run the suite as root (CI does)"))
    func aTrainerKilledWithItsWorkerStopsAndItsFolderIsSwept() throws {
        let fleet = try Self.hostileFleet("cairn-redteam-orphan", hold: "3138", child: "3139")
        let first = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env)
        #expect(first.status == 0 || first.status == 3)
        let worker = try CairnProcess(["worker", "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env)
        #expect(try Self.processes("sleep 3138", running: true, within: 30), "the trainer started")
        worker.stop()
        #expect(try Self.processes("sleep 31(38|39)", running: false, within: 5), "the trainer and its child outlived their worker")
        let runs = fleet.registry.dir.path + "/runs"
        let left = (try? FileManager.default.contentsOfDirectory(atPath: runs)) ?? []
        #expect(!left.isEmpty, "the killed worker left its run folder")
        // The next worker sweeps it once its run is no longer running (here: ended by hand, with
        // the other slow run, so that the worker has nothing left to train).
        try fleet.registry.queue().write {
            try $0.execute(sql: "UPDATE training_runs SET state = 'failed', reason = 'ended by the test' WHERE state IN ('queued', 'running')")
        }
        let next = try cairn(["worker", "--once", "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env)
        #expect(next.stderr.contains("left by a stopped worker"), "\(next.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: runs)) ?? []).allSatisfy { !left.contains($0) })
        _ = try? runProcess("/usr/bin/pkill", ["-f", "sleep 31(38|39)"])
    }

    @Test(.enabled(if: getuid() == 0, "needs root to start cairn as another user; run the suite as root (CI does)"))
    func aWorkerThatCannotIsolateItsTrainersSaysSoAtStart() throws {
        let dir = TempDir("cairn-redteam-unprivileged")
        chmod(dir.path, 0o777)
        let worker = try runProcess("/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", cairnBinary, "worker", "--once",
                                                         "--db", dir.path + "/cairn.db"],
                                    env: ["CAIRN_SIGNING_KEY": String(repeating: "cd", count: 32)])
        #expect(worker.status == 0, "\(worker.stderr)")
        #expect(worker.stderr.contains("warning: exec trainers run as nobody, the user running cairn: they can read the signing key and write the registry database"),
                "\(worker.stderr)")
        // As root it isolates them, and says nothing.
        let root = try cairn(["worker", "--once", "--db", dir.path + "/root.db"], env: ["CAIRN_SIGNING_KEY": String(repeating: "cd", count: 32)])
        #expect(root.status == 0 && !root.stderr.contains("warning: exec trainers"), "\(root.stderr)")
        let missing = try cairn(["worker", "--once", "--trainer-user", "no-such-user-4711", "--db", dir.path + "/root.db"],
                                env: ["CAIRN_SIGNING_KEY": String(repeating: "cd", count: 32)])
        #expect(missing.status == 1 && missing.stderr.contains("the trainer user 'no-such-user-4711' does not exist"), "\(missing.stderr)")
    }

    @Test(.enabled(if: getuid() == 0, "needs root to start cairn as another user; run the suite as root (CI does)"))
    func aTrainerOfAnUnprivilegedWorkerAlsoDiesWithIt() throws {
        // The same as above for a worker that is not root: its trainers run as its own user, in a
        // user and PID namespace where the machine allows it, and still die with it.
        let fleet = try Self.hostileFleet("cairn-redteam-orphan-unprivileged", state: "/nonexistent", hold: "3141", child: "3142")
        try runProcess("/bin/chown", ["-R", "nobody:nogroup", fleet.repo.path, fleet.registry.dir.path])
        let asNobody = ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
        let env = ["HOME": fleet.registry.dir.path, "CAIRN_SIGNING_KEY": String(repeating: "cd", count: 32)]
        let first = try runProcess(asNobody[0], Array(asNobody.dropFirst()) + [cairnBinary, "reconcile", "--repo", fleet.repo.path, "--db", fleet.db], env: env)
        #expect(first.status == 0 || first.status == 3, "\(first.stdout)\(first.stderr)")
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: asNobody[0])
        worker.arguments = Array(asNobody.dropFirst()) + [cairnBinary, "worker", "--repo", fleet.repo.path, "--db", fleet.db]
        worker.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        #expect(try Self.processes("sleep 3141", running: true, within: 30), "the trainer started")
        kill(worker.processIdentifier, SIGKILL)
        worker.waitUntilExit()
        #expect(try Self.processes("sleep 314[12]", running: false, within: 5), "the trainer or its child outlived their unprivileged worker")
        _ = try? runProcess("/usr/bin/pkill", ["-f", "sleep 314[12]"])
    }

    @Test(.enabled(if: getuid() == 0, "needs root to start cairn and its attacker as another user; run the suite as root (CI does)"))
    func aProcessOfTheSameUserCannotReadCairnsSecretsFromProc() throws {
        let dir = TempDir("cairn-redteam-proc")
        chmod(dir.path, 0o777)
        let secret = "whsec-same-user-7373"
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        worker.arguments = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", cairnBinary, "worker", "--db", dir.path + "/cairn.db"]
        worker.environment = ["PATH": "/usr/bin:/bin", "CAIRN_WEBHOOK_SECRET": secret, "CAIRN_GIT_TOKEN": secret, "CAIRN_SIGNING_KEY": String(repeating: "cd", count: 32)]
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        defer {
            kill(worker.processIdentifier, SIGKILL)
            worker.waitUntilExit()
        }
        // The worker hardens itself first thing, then opens (creates) its database: once the file
        // exists, the secrets are out of its environment.
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: dir.path + "/cairn.db"), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        try #require(FileManager.default.fileExists(atPath: dir.path + "/cairn.db"), "the worker never started")
        let environ = "/proc/\(worker.processIdentifier)/environ"
        // Another process of the same user: the kernel refuses (cairn is not dumpable).
        let sameUser = try runProcess("/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "/bin/cat", environ])
        #expect(sameUser.status != 0, "same-user read of \(environ) succeeded")
        #expect(!sameUser.stdout.contains(secret))
        // Even root finds the values overwritten: they were taken out of the environment at start.
        let asRoot = try Data(contentsOf: URL(fileURLWithPath: environ))
        let text = String(decoding: asRoot, as: UTF8.self)
        #expect(text.contains("CAIRN_WEBHOOK_SECRET=") && !text.contains(secret), "\(text)")
        #expect(!text.contains("cdcdcdcd"))
    }

    // MARK: 4. Registry state is verifiable against the audit history

    @Test func anSQLEditToAnyStateTableIsNamedByAuditVerifyAndStallsTheReconciler() throws {
        let fleet = try Fleet("cairn-redteam-sql", reconcile: false)
        let converge = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db, "--wait"], env: Registry.env)
        #expect(converge.status == 3, "\(converge.stdout)\(converge.stderr)")
        // A queued run to tamper with: a retrain that no worker has taken yet.
        try RedTeamTests.edit(fleet.repo, "models/search.yaml", "  label: Search re-ranking neighbours\n",
                              "  label: Search re-ranking neighbours\n  retrainToken: \"sql\"\n")
        try fleet.repo.commit("retrain search-knn")
        #expect([0, 3].contains(try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env).status))
        let clean = try cairn(["audit", "verify", "--db", fleet.db])
        #expect(clean.status == 0 && clean.stdout.contains("registry state matches its audit history"), "\(clean.stdout)")

        let edits: [(String, String, String)] = [
            ("approve a pending version", "UPDATE versions SET status = 'approved' WHERE model = 'homepage-recs-c' AND number = 1",
             "versions homepage-recs-c v1: status is approved, the history says pending"),
            ("raise a version's metrics", "UPDATE versions SET metrics = '{\"ndcg@10\":0.99,\"recall@20\":0.99}' WHERE model = 'search-popular' AND number = 1",
             "versions search-popular v1: its metrics are not the audited ones"),
            ("make a challenger champion", "UPDATE models SET stage = 'champion' WHERE name = 'search-popular'",
             "models search-popular: stage is champion, the history says challenger"),
            ("activate a draft", "UPDATE models SET lifecycle = 'active' WHERE name = 'search-experimental'",
             "models search-experimental: lifecycle is active, the history says draft"),
            ("serve another version", "UPDATE serving_targets SET routes = replace(routes, '\"search-knn\"', '\"search-popular\"') WHERE name = 'acme-search'",
             "serving_targets acme-search: it serves search-popular v1 (100%), the history says search-knn v1 (100%)"),
            ("change a weight", "UPDATE outcome_weights SET spec = replace(spec, '1.2', '9.9') WHERE name = 'retail-default'",
             "outcome_weights retail-default: its spec is not the one last applied"),
            ("change a template's trainer", "UPDATE templates SET spec = replace(spec, '\"item-knn\"', '\"popularity\"') WHERE name = 'engagement-booster'",
             "templates engagement-booster: its spec is not the one last applied"),
            ("swap a queued run's trainer", "UPDATE training_runs SET request = replace(request, '\"item-knn\"', '\"popularity\"') WHERE state = 'queued'",
             "its request is not the one the audited fingerprint"),
            ("mark a run succeeded", "UPDATE training_runs SET state = 'succeeded', version = 9 WHERE state = 'queued'",
             "state succeeded (v9), the history says queued or running"),
            ("delete a version", "PRAGMA foreign_keys = OFF; DELETE FROM versions WHERE model = 'homepage-recs-b' AND number = 1",
             "versions homepage-recs-b v1: the history created it, but the row is gone"),
            ("insert a model", "INSERT INTO models(name, spec, family, stage, lifecycle, created_at, updated_at, revision) SELECT 'rogue', spec, family, 'none', 'active', 0, 0, revision FROM models WHERE name = 'search-knn'",
             "models rogue: no audited change created it"),
        ]
        let before = try Registry.dump(at: fleet.db)
        for (label, sql, named) in edits {
            let copy = try Registry("cairn-redteam-sql-copy")
            try fleet.registry.queue().writeWithoutTransaction { try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try FileManager.default.copyItem(atPath: fleet.db, toPath: copy.db)
            let queue = try copy.queue()
            try queue.writeWithoutTransaction { try $0.execute(sql: sql) }
            let verify = try cairn(["audit", "verify", "--db", copy.db])
            #expect(verify.status == 1, "\(label): \(verify.stdout)")
            #expect(verify.stdout.contains("audit chain intact"), "\(label): the chain alone does not see it")
            #expect(verify.stdout.contains(named), "\(label): \(verify.stdout)")
            let reconcile = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", copy.db], env: Registry.env)
            #expect(reconcile.status == 1 && reconcile.stderr.contains("the registry does not match its audit history"), "\(label): \(reconcile.stderr)")
        }
        #expect(try Registry.dump(at: fleet.db) == before)

        // `cairn serve` on an edited registry stalls, says why, and applies nothing.
        let copy = try Registry("cairn-redteam-sql-serve")
        try FileManager.default.copyItem(atPath: fleet.db, toPath: copy.db)
        try copy.queue().writeWithoutTransaction { try $0.execute(sql: edits[0].1) }
        let token = try cairn(["token", "create", "ops", "--db", copy.db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let audited = try copy.auditRows()
        let port = freePort()
        let serve = try CairnProcess(["serve", "--repo", fleet.repo.path, "--db", copy.db, "--listen", "127.0.0.1:\(port)", "--workers", "0",
                                      "--interval", "1s"], env: Registry.env)
        defer { serve.stop() }
        var status = ""
        for _ in 0..<100 where !status.contains("RegistryTampered") {
            status = (try? httpGet(port: port, "/v1/status", token: token))?.1 ?? ""
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(status.contains("RegistryTampered") && status.contains("versions homepage-recs-c v1: status is approved"), "\(status)")
        #expect(try httpGet(port: port, "/readyz").0 == 503)
        #expect(try copy.auditRows() == audited, "nothing was applied")
    }

    // MARK: 5. The registry cannot be committed or confused

    @Test func theDefaultRegistryIsIgnoredFoundFromSubFoldersAndBoundToItsRepository() throws {
        let repo = try GitFixture()
        try repo.copyExamples()
        try repo.commit("The example fleet")
        // No --db: the registry is .cairn/ at the top of the repository.
        let first = try cairn(["reconcile", "--wait"], cwd: repo.path, env: Registry.env)
        #expect(first.status == 0 || first.status == 3, "\(first.stdout)\(first.stderr)")
        #expect(FileManager.default.fileExists(atPath: repo.path + "/.cairn/cairn.db"))
        // `git add -A` does not take it (nor the key, nor the artifacts).
        try repo.git(["add", "-A"])
        #expect(try repo.git(["ls-files", "--cached", ".cairn"]).isEmpty)
        #expect(try repo.git(["status", "--porcelain"]).isEmpty)
        // From a sub-folder: the same registry, so nothing to do.
        let fromModels = try cairn(["plan", "--no-color"], cwd: repo.path + "/models", env: Registry.env)
        #expect(fromModels.status == 0, "\(fromModels.stderr)")
        #expect(fromModels.stdout.contains("\(repo.path)/.cairn/cairn.db") && fromModels.stdout.contains("No changes"), "\(fromModels.stdout)")
        let status = try cairn(["status"], cwd: repo.path + "/targets")
        #expect(status.stdout.contains("homepage-recs"), "\(status.stdout)")
        #expect(!FileManager.default.fileExists(atPath: repo.path + "/models/.cairn"))

        // Another repository pointed at this registry is refused, and so is another folder.
        let other = try GitFixture()
        try other.copyExamples()
        try other.commit("Someone else's fleet")
        let before = try Registry.dump(at: repo.path + "/.cairn/cairn.db")
        for args in [["reconcile"], ["plan"], ["reconcile", "--dry-run"]] {
            let wrong = try cairn(args + ["--repo", other.path, "--db", repo.path + "/.cairn/cairn.db"], env: Registry.env)
            #expect(wrong.status == 1, "\(args): \(wrong.stdout)")
            #expect(wrong.stderr.contains("follows another repository"), "\(args): \(wrong.stderr)")
        }
        // A clone of the same repository is the same source.
        let clone = TempDir("cairn-redteam-clone")
        try runProcess("/usr/bin/git", ["clone", "-q", repo.path, clone.path + "/fleet"])
        let cloned = try cairn(["plan", "--repo", clone.path + "/fleet", "--db", repo.path + "/.cairn/cairn.db"], env: Registry.env)
        #expect(cloned.status == 0, "\(cloned.stderr)")
        try repo.copyExamples(to: "other-team")
        try repo.commit("Another team's fleet in a folder of its own")
        let folder = try cairn(["reconcile", "--path", "other-team"], cwd: repo.path, env: Registry.env)
        #expect(folder.status == 1 && folder.stderr.contains("follows the manifest folder '(repository root)', not 'other-team'"),
                "\(folder.stdout)\(folder.stderr)")
        #expect(try Registry.dump(at: repo.path + "/.cairn/cairn.db") == before)
    }

    // MARK: 6. A typo never archives a live model

    @Test func anApiVersionTypoIsAnErrorNotARemovedModel() throws {
        let fleet = try Fleet("cairn-redteam-apiversion")
        let models = try String(contentsOfFile: fleet.repo.path + "/models/search.yaml", encoding: .utf8)
        let variants: [(String, String, String)] = [
            ("capitalised", "apiVersion: Cairn/v1\nkind: Model\nmetadata:\n  name: search-popular", "apiVersion 'Cairn/v1' is not Cairn's"),
            ("lower-case key", "apiversion: cairn/v1\nkind: Model\nmetadata:\n  name: search-popular", "looks like a misspelt apiVersion"),
            ("missing", "kind: Model\nmetadata:\n  name: search-popular", "is a Cairn kind, but the document has no apiVersion"),
            ("misspelt group", "apiVersion: carin/v1\nkind: Model\nmetadata:\n  name: search-popular", "apiVersion 'carin/v1' is not Cairn's"),
        ]
        let original = "apiVersion: cairn/v1\nkind: Model\nmetadata:\n  name: search-popular"
        #expect(models.contains(original))
        for (label, replacement, message) in variants {
            fleet.repo.write("models/search.yaml", models.replacingOccurrences(of: original, with: replacement))
            try fleet.repo.commit("search-popular: \(label) apiVersion")
            let validate = try cairn(["validate", "--repo", fleet.repo.path])
            #expect(validate.status == 1, "\(label): \(validate.stdout)")
            #expect(validate.stdout.contains("models/search.yaml:") && validate.stdout.contains(message), "\(label): \(validate.stdout)")
            #expect(validate.stdout.contains("hint:"), "\(label)")
            let plan = try fleet.plan()
            #expect(plan.status == 1, "\(label): the revision is refused, not planned")
            #expect(!plan.stdout.contains("\"archive\""), "\(label): \(plan.stdout)")
        }
        // Documents that are clearly another tool's are still skipped, and counted.
        fleet.repo.write("models/search.yaml", models)
        fleet.repo.write("ci/workflow.yaml", "name: ci\non: [push]\njobs: {}\n")
        fleet.repo.write("k8s/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
        try fleet.repo.commit("Other tools' YAML")
        let validate = try cairn(["validate", "--repo", fleet.repo.path])
        #expect(validate.status == 0, "\(validate.stdout)")
        #expect(validate.stdout.contains("2 documents skipped"), "\(validate.stdout)")
    }

    // MARK: 7. The bulk guard is symmetric

    @Test func removingManyTargetsAtOnceIsHeldByTheBulkGuard() throws {
        let fleet = try Fleet("cairn-redteam-bulk", reconcile: false)
        let converge = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db, "--wait"], env: Registry.env)
        #expect(converge.status == 0 || converge.status == 3, "\(converge.stdout)\(converge.stderr)")
        let names = (0..<25).map { "tenant-\($0)-search" }
        for name in names {
            fleet.repo.write("targets/bulk/\(name).yaml",
                             "apiVersion: cairn/v1\nkind: ServingTarget\nmetadata:\n  name: \(name)\nspec:\n  tenant: \(name)\n  surface: search\n  routes:\n    - {family: search, version: champion}\n")
        }
        try fleet.repo.commit("25 tenants on search")
        let add = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db, "--allow-bulk"], env: Registry.env)
        #expect(add.status == 0 || add.status == 3, "\(add.stdout)\(add.stderr)")
        #expect(!add.stdout.contains("bulk guard"))
        func liveTargets() throws -> Int {
            try fleet.registry.count("serving_targets", "assigned = 1 AND name LIKE 'tenant-%'")
        }
        #expect(try liveTargets() == 25)

        try fleet.repo.git(["rm", "-q", "-r", "targets/bulk"])
        try fleet.repo.commit("Clean up old tenants (one line in review: a folder removed)")
        let remove = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db], env: Registry.env)
        #expect(remove.status == 3, "\(remove.stdout)\(remove.stderr)")
        #expect(remove.stdout.contains("bulk guard: this plan promotes 0 and takes 25 off the air"), "\(remove.stdout)")
        #expect(try liveTargets() == 25, "nothing was taken off the air")
        let allowed = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", fleet.db, "--allow-bulk"], env: Registry.env)
        #expect(allowed.status == 0 || allowed.status == 3, "\(allowed.stdout)\(allowed.stderr)")
        #expect(!allowed.stdout.contains("bulk guard"))
        #expect(try liveTargets() == 0)
    }

    // MARK: 8. One key, one encoding

    @Test func theKeyFileAndTheEnvironmentAreOneKeyAndServeChecksIt() throws {
        let repo = try GitFixture()
        try repo.copyExamples()
        try repo.commit("The example fleet")
        let state = TempDir("cairn-redteam-key")
        let db = state.path + "/cairn.db"
        // No CAIRN_SIGNING_KEY: a key file is generated beside the database.
        let converge = try cairn(["reconcile", "--repo", repo.path, "--db", db, "--wait"], env: ["CAIRN_SIGNING_KEY": ""])
        #expect(converge.status == 0 || converge.status == 3, "\(converge.stdout)\(converge.stderr)")
        let fileKey = try String(contentsOfFile: state.path + "/signing.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // CAIRN_SIGNING_KEY=$(cat signing.key) is the same key.
        let verify = try cairn(["artifact", "verify", "homepage-recs@1", "--db", db], env: ["CAIRN_SIGNING_KEY": fileKey])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        // A passphrase is not a key: refused, and never quoted back.
        let passphrase = try cairn(["artifact", "verify", "homepage-recs@1", "--db", db], env: ["CAIRN_SIGNING_KEY": "correct horse battery staple"])
        #expect(passphrase.status == 1)
        #expect(passphrase.stderr.contains("is not a Cairn signing key") && !passphrase.stderr.contains("horse"), "\(passphrase.stderr)")
        // `cairn serve` started with another key is not ready, and says why.
        let port = freePort()
        let serve = try CairnProcess(["serve", "--repo", repo.path, "--db", db, "--listen", "127.0.0.1:\(port)", "--workers", "0", "--interval", "1s"],
                                     env: ["CAIRN_SIGNING_KEY": String(repeating: "ab", count: 32)])
        defer { serve.stop() }
        var ready: (Int, String)?
        for _ in 0..<100 {
            if let answer = try? httpGet(port: port, "/readyz"), answer.0 == 503, answer.1.contains("signing key") {
                ready = answer
                break
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(ready?.0 == 503, "\(String(describing: ready))")
        #expect(ready?.1.contains("did not sign the live artifact") == true, "\(String(describing: ready))")
    }

    // MARK: 9. Artifacts hash exactly what they contain

    @Test func artifactsThatDifferOnlyInLinksOrModesHaveDifferentAddresses() throws {
        let dir = TempDir("cairn-redteam-artifact")
        func folder(_ name: String, _ build: (URL) throws -> Void) throws -> URL {
            let url = dir.url.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            try Data("{\"k\": 1}".utf8).write(to: url.appendingPathComponent("model.json"))
            try build(url)
            return url
        }
        let plain = try folder("plain") { _ in }
        let linkToPasswd = try folder("link-a") { try FileManager.default.createSymbolicLink(atPath: $0.path + "/extra", withDestinationPath: "/etc/passwd") }
        let linkToHosts = try folder("link-b") { try FileManager.default.createSymbolicLink(atPath: $0.path + "/extra", withDestinationPath: "/etc/hosts") }
        let executable = try folder("exec") { chmod($0.path + "/model.json", 0o755) }
        let emptyFolder = try folder("empty") { try FileManager.default.createDirectory(atPath: $0.path + "/cache", withIntermediateDirectories: true) }
        let hashes = try [plain, linkToPasswd, linkToHosts, executable, emptyFolder].map { try ArtifactStore.contentHash(of: $0) }
        #expect(Set(hashes).count == hashes.count, "\(hashes)")
        // A folder of plain files hashes as it always has: `path<TAB>sha256<LF>` lines, sorted.
        #expect(hashes[0] == sha256Hex("model.json\t\(sha256Hex(Array("{\"k\": 1}".utf8)))\n"))
        // A FIFO is refused.
        let fifo = try folder("fifo") { mkfifo($0.path + "/pipe", 0o644) }
        #expect(throws: CairnError.self) { try ArtifactStore.contentHash(of: fifo) }
    }

    // MARK: 10. A registry from a newer Cairn is refused

    @Test func aRegistryFromANewerCairnIsRefused() throws {
        let fleet = try Fleet("cairn-redteam-schema")
        try fleet.registry.queue().write { try $0.execute(sql: "INSERT INTO grdb_migrations(identifier) VALUES ('v9')") }
        let before = try fleet.registry.dump()
        for args in [["status"], ["reconcile", "--repo", fleet.repo.path], ["plan", "--repo", fleet.repo.path], ["audit", "verify"]] {
            let result = try cairn(args + ["--db", fleet.db], env: Registry.env)
            #expect(result.status == 1, "\(args): \(result.stdout)")
            #expect(result.stderr.contains("has schema v9, newer than this Cairn knows (up to v6)"), "\(args): \(result.stderr)")
        }
        #expect(try fleet.registry.dump() == before)
    }

    // MARK: 11. The HTTP API is authenticated

    @Test func theHTTPAPIWantsATokenOfTheRightScope() throws {
        let fleet = try Fleet("cairn-redteam-http")
        let read = try cairn(["token", "create", "dashboard", "--scope", "read", "--db", fleet.db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let admin = try cairn(["token", "create", "ops", "--scope", "admin", "--db", fleet.db]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(read.hasPrefix("cairn_") && admin.hasPrefix("cairn_") && read != admin)
        // Only hashes are stored.
        let stored = try fleet.registry.read { try String.fetchAll($0, sql: "SELECT name || scope || hash FROM api_tokens") }.joined()
        #expect(!stored.contains(read) && !stored.contains(String(read.dropFirst(6))))
        let list = try cairn(["token", "list", "--db", fleet.db])
        #expect(list.stdout.contains("dashboard\tread") && list.stdout.contains("ops\tadmin") && !list.stdout.contains(read))

        let port = freePort()
        let serve = try CairnProcess(["serve", "--repo", fleet.repo.path, "--db", fleet.db, "--listen", "127.0.0.1:\(port)", "--workers", "0",
                                      "--interval", "1h"], env: Registry.env)
        defer { serve.stop() }
        for _ in 0..<100 where (try? httpGet(port: port, "/healthz"))?.0 != 200 { Thread.sleep(forTimeInterval: 0.1) }
        #expect(try httpGet(port: port, "/healthz").0 == 200)
        for path in ["/v1/status", "/v1/plan", "/v1/targets/acme-search", "/v1/targets/acme-search/recommendations?user=u0001", "/metrics"] {
            #expect(try httpGet(port: port, path).0 == 401, "\(path) without a token")
            #expect(try httpGet(port: port, path, token: "cairn_" + String(repeating: "0", count: 64)).0 == 401, "\(path) with an unknown token")
            #expect(try httpGet(port: port, path, token: read).0 != 401, "\(path) with a read token")
        }
        #expect(try httpRequest(port: port, "POST", "/v1/reconcile").0 == 401)
        let narrow = try httpRequest(port: port, "POST", "/v1/reconcile", token: read)
        #expect(narrow.0 == 403 && narrow.1.contains("scope is read"), "\(narrow)")
        #expect(try httpRequest(port: port, "POST", "/v1/reconcile", token: admin).0 == 202)
        // A revoked token is refused from the next request on.
        #expect(try cairn(["token", "revoke", "dashboard", "--db", fleet.db]).status == 0)
        #expect(try httpGet(port: port, "/v1/status", token: read).0 == 401)
        #expect(try httpGet(port: port, "/v1/status", token: admin).0 == 200)
        let history = try cairn(["history", "--db", fleet.db, "--limit", "5"]).stdout
        #expect(history.contains("Cairn/token/dashboard"), "\(history)")

        // No tokens, a public address: refused before listening.
        let bare = try Registry("cairn-redteam-http-bare")
        let open = try cairn(["serve", "--repo", fleet.repo.path, "--db", bare.db, "--listen", "0.0.0.0:\(freePort())"], env: Registry.env)
        #expect(open.status == 1 && open.stderr.contains("refusing to listen on 0.0.0.0:"), "\(open.stderr)")
    }
}

extension RedTeamTests {
    static func edit(_ repo: GitFixture, _ file: String, _ old: String, _ new: String) throws {
        try ReliabilityFleet.edit(repo, file, old, new)
    }
}

/// GET on 127.0.0.1 with a bearer token, if any; (status, body).
func httpGet(port: Int, _ path: String, token: String? = nil) throws -> (Int, String) {
    try httpRequest(port: port, "GET", path, token: token)
}

/// One HTTP request to 127.0.0.1; (status, body).
func httpRequest(port: Int, _ method: String, _ path: String, token: String? = nil, body: Data? = nil,
                 headers: [String: String] = [:]) throws -> (Int, String) {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.httpMethod = method
    request.httpBody = body
    request.timeoutInterval = 10
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
    let done = DispatchSemaphore(value: 0)
    let box = ServeEndToEndTests.ResultBox()
    URLSession.shared.dataTask(with: request) { data, response, error in
        box.value = (response as? HTTPURLResponse).map { ($0.statusCode, String(decoding: data ?? Data(), as: UTF8.self)) }
        box.error = error
        done.signal()
    }.resume()
    done.wait()
    guard let value = box.value else { throw FixtureError("\(method) \(path): \(box.error.map { "\($0)" } ?? "no response")") }
    return value
}

/// A `cairn` process running in the background (a daemon, a worker), with the test's
/// environment plus `env`; its output goes to `log` or nowhere. `stop()` kills it (SIGKILL).
final class CairnProcess: @unchecked Sendable {
    let process = Process()

    init(_ arguments: [String], env: [String: String] = [:], log: String? = nil) throws {
        process.executableURL = URL(fileURLWithPath: cairnBinary)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment.merge(env) { $1 }
        process.environment = environment
        if let log {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = FileHandle(forWritingAtPath: log)
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

/// The fast JSON reader that checking the registry against its history relies on agrees with
/// Foundation's on what it reads, escapes and numbers included, and refuses what is not JSON.
@Test func jsonParserAgreesWithFoundation() throws {
    let samples = [
        #"{"a": [1, 2.5, -3, 1e3, true, false, null], "b": {"c": "d\"e\\f\/g\n\t\u00e9\ud83d\ude00"}, "": ""}"#,
        #"[]"#, #"{}"#, #""plain""#, #"  {"spec":{"name":"x","weights":{"click":0.3,"renewed":1.2,"x":1}}}  "#,
        #"{"big": 12345678901234567890}"#,
    ]
    for text in samples {
        let parsed = try #require(JSONValue.parse(text), "\(text)")
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(parsed.isSame(as: foundation), "\(text): \(parsed) vs \(foundation)")
    }
    for bad in [#"{"a": }"#, #"[1, 2"#, #"{"a" 1}"#, #""unterminated"#, #"tru"#, #"{} extra"#, #""\ud800""#] {
        #expect(JSONValue.parse(bad) == nil, "\(bad)")
    }
}
