import CairnTesting
import CairnCore
import CairnStore
import Crypto
import Foundation
import GRDB
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `cairn serve` as a real process on 127.0.0.1, following a bare git remote that receives pushes.
@Suite(.serialized) struct ServeEndToEndTests {
    /// A bare remote, a clone to push from, and a daemon following the remote.
    final class Setup: @unchecked Sendable {
        let dir = TempDir("cairn-serve")
        let remote: String
        let work: GitFixture
        var daemon: Process?
        var port = 0
        /// An admin API token, created before the daemon first starts; sent with every request.
        var token: String?
        var dbPath: String { dir.url.appendingPathComponent("state/cairn.db").path }
        var base: String { "http://127.0.0.1:\(port)" }

        init(files: [String: String]? = nil, copyExamples: Bool = true) throws {
            remote = dir.url.appendingPathComponent("remote.git").path
            try runProcess("/usr/bin/git", ["init", "-q", "--bare", "-b", "main", remote])
            work = try GitFixture()
            if copyExamples { try work.copyExamples() }
            try work.commit("first", files: files ?? [:])
            try work.git(["remote", "add", "origin", remote])
            try work.git(["push", "-q", "origin", "main"])
        }

        deinit {
            if let daemon, daemon.isRunning {
                kill(daemon.processIdentifier, SIGKILL)
                daemon.waitUntilExit()
            }
        }

        @discardableResult
        func push(_ message: String, files: [String: String] = [:], remove: [String] = []) throws -> String {
            for path in remove { try work.git(["rm", "-q", path]) }
            let sha = try work.commit(message, files: files)
            try work.git(["push", "-q", "origin", "main"])
            return sha
        }

        func start(interval: String = "1s", extra: [String] = [], env: [String: String] = [:], repo: String? = nil) throws {
            if token == nil {
                let created = try cairn(["token", "create", "serve-tests", "--scope", "admin", "--db", dbPath], env: ["USER": "test"])
                token = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            port = freePort()
            let p = Process()
            p.executableURL = URL(fileURLWithPath: cairnBinary)
            p.arguments = ["serve", "--repo", repo ?? "file://\(remote)", "--db", dbPath, "--listen", "127.0.0.1:\(port)", "--interval", interval] + extra
            var environment = ProcessInfo.processInfo.environment
            environment["CAIRN_WEBHOOK_SECRET"] = "hook-secret"
            environment["CAIRN_SIGNING_KEY"] = "73657276652d6b65792d666f722d7465737473"
            for (k, v) in env { environment[k] = v }
            p.environment = environment
            p.standardOutput = FileHandle.nullDevice
            let logPath = dir.url.appendingPathComponent("serve.log").path
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            p.standardError = FileHandle(forWritingAtPath: logPath)
            try p.run()
            daemon = p
            try waitFor("the daemon to answer /healthz") { (try? http("GET", "/healthz"))?.status == 200 }
        }

        var log: String { (try? String(contentsOf: dir.url.appendingPathComponent("serve.log"), encoding: .utf8)) ?? "" }

        func http(_ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:]) throws -> (status: Int, body: String) {
            try httpRequest(port: port, method, path, token: token, body: body, headers: headers)
        }

        func status() throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(try http("GET", "/v1/status").body.utf8)) as! [String: Any]
        }

        /// A counter's value on `/metrics` (the sum over its labels).
        func counter(_ name: String) throws -> Int {
            try http("GET", "/metrics").body.split(separator: "\n").filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
                .compactMap { Double($0.split(separator: " ").last ?? "").map(Int.init) }.reduce(0, +)
        }

        /// Waits until the loop has looked `times` more times (passes and skipped polls): the
        /// positive signal that it had its chance to do something.
        func waitForPolls(_ times: Int, timeout: Double = 30) throws {
            let start = try counter("cairn_polls_total")
            try waitFor("\(times) more polls", timeout: timeout) { try counter("cairn_polls_total") >= start + times }
        }

        func condition(_ type: String) throws -> [String: Any]? {
            (try status()["conditions"] as? [[String: Any]])?.first { $0["type"] as? String == type }
        }

        func waitFor(_ what: String, timeout: Double = 60, _ check: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if (try? check()) == true { return }
                Thread.sleep(forTimeInterval: 0.2)
            }
            throw FixtureError("timed out waiting for \(what); daemon log:\n\(log.suffix(3000))")
        }
    }

    final class ResultBox: @unchecked Sendable {
        var value: (Int, String)?
        var error: Error?
    }

    @Test func pushedCommitsAreReconciledAndABadOneStallsUntilFixed() throws {
        let s = try Setup()
        let first = try s.work.git(["rev-parse", "HEAD"])
        try s.start()
        try s.waitFor("the first revision to be applied and served") {
            try s.status()["lastAppliedRevision"] as? String == first && (try s.http("GET", "/v1/targets/acme-search/recommendations?user=u0001&k=3")).status == 200
        }
        #expect(try s.http("GET", "/readyz").status == 200)
        let target = try s.http("GET", "/v1/targets/acme-search")
        #expect(target.body.contains("\"artifactHash\" : \"") && target.body.contains("\"model\" : \"search-knn\""))
        // A version label set in git reaches the API.
        let models = try String(contentsOf: s.work.dir.url.appendingPathComponent("models/search.yaml"), encoding: .utf8)
        let labelled = try s.push("label search-knn v1", files: ["models/search.yaml": models.replacingOccurrences(
            of: "  label: Search re-ranking neighbours\n", with: "  label: Search re-ranking neighbours\n  versionLabels: [{version: 1, label: first catalogue}]\n")])
        try s.waitFor("the label to be applied") { try s.status()["lastAppliedRevision"] as? String == labelled }
        #expect(try s.http("GET", "/v1/targets/acme-search").body.contains("\"label\" : \"first catalogue\""))
        let plan = try s.http("GET", "/v1/plan")
        #expect(plan.status == 200 && plan.body.contains("\"formatVersion\" : \"1\"") && plan.body.contains("\"revision\" : \"\(labelled)\""))

        let broken = try s.push("a broken model", files: ["models/broken.yaml": "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: broken}\nspec: {template: nope}\n"])
        try s.waitFor("the bad revision to stall") { try s.condition("Stalled")?["status"] as? String == "True" }
        let stalled = try s.condition("Stalled")
        #expect(stalled?["reason"] as? String == "ValidationFailed")
        #expect((stalled?["message"] as? String)?.contains("models/broken.yaml:4:18: error: Model/broken: spec.template refers to Template/nope") == true)
        #expect(try s.status()["lastAttemptedRevision"] as? String == broken)
        #expect(try s.status()["lastAppliedRevision"] as? String == labelled)
        #expect(try s.http("GET", "/readyz").status == 503)
        #expect(try s.http("GET", "/metrics").body.contains("\ncairn_ready 0.0\n"), "the alerting gauge agrees with /readyz")
        // The last applied state keeps serving.
        #expect(try s.http("GET", "/v1/targets/acme-search/recommendations?user=u0001").status == 200)
        // A change of observed state (here: suspend, resume) does not make an invalid revision worth reading again.
        let store = try RegistryDatabase(path: s.dbPath)
        _ = try store.setSuspended(true, actor: "test", at: Int64(Date().timeIntervalSince1970))
        _ = try store.setSuspended(false, actor: "test", at: Int64(Date().timeIntervalSince1970))
        // The loop sees the generation move within 2 s and looks again: once it has, the invalid
        // revision was still not read again.
        try s.waitForPolls(3)
        #expect(try s.http("GET", "/metrics").body.contains("cairn_reconcile_total{result=\"invalid\"} 1\n"))

        let fixed = try s.push("remove the broken model", remove: ["models/broken.yaml"])
        try s.waitFor("the fix to be applied") { try s.status()["lastAppliedRevision"] as? String == fixed }
        #expect(try s.condition("Stalled")?["status"] as? String == "False")
        #expect(try s.condition("Ready")?["status"] as? String == "True")
        let metrics = try s.http("GET", "/metrics").body
        for name in ["cairn_reconcile_duration_seconds_bucket", "cairn_reconcile_total{result=\"invalid\"} 1", "cairn_plan_changes{action=",
                     "cairn_training_runs{state=\"succeeded\"} 5", "cairn_drift_items", "cairn_last_applied_revision_info{revision=\"\(fixed)\"} 1",
                     "cairn_suspended 0"] {
            #expect(metrics.contains(name), "metrics lack \(name)")
        }
        let db = try RegistryDatabase(path: s.dbPath)
        #expect(try db.verifyAudit() == nil)
        #expect(try db.history(RegistryDatabase.HistoryFilter(limit: 500)).allSatisfy { ["reconciler", "worker", "test"].contains($0.actor) })

        // Fast path: with nothing new, several polls later nothing was parsed or written.
        func passes() throws -> Int { try s.counter("cairn_reconcile_total") }
        let (generation, rows, counted) = (try db.generation(), try db.auditCount(), try passes())
        try s.waitForPolls(3)
        #expect(try db.generation() == generation)
        #expect(try db.auditCount() == rows)
        #expect(try passes() == counted)

        // An unreachable remote with a cache: passes go on from the cache, prune nothing, and
        // Ready says SourceStale, stably (it used to flap between stalled and ready); back when it is.
        let moved = s.remote + ".away"
        try FileManager.default.moveItem(atPath: s.remote, toPath: moved)
        try s.waitFor("the fetch failure to show") { try s.condition("Ready")?["reason"] as? String == "SourceStale" }
        for _ in 0..<6 {
            #expect(try s.condition("Ready")?["reason"] as? String == "SourceStale")
            #expect(try s.http("GET", "/readyz").status == 200)
            #expect(try s.condition("Stalled")?["status"] as? String == "False")
            Thread.sleep(forTimeInterval: 0.5)
        }
        #expect(try s.http("GET", "/metrics").body.contains("cairn_source_stale 1"))
        #expect(try db.observedState().models.values.filter { !$0.archived }.count == 6)
        #expect(try s.http("GET", "/v1/targets/acme-search/recommendations?user=u0001").status == 200)
        try FileManager.default.moveItem(atPath: moved, toPath: s.remote)
        try s.waitFor("the source to come back") { try s.condition("Ready")?["reason"] as? String != "SourceStale" }
        #expect(try s.http("GET", "/metrics").body.contains("cairn_source_stale 0"))
    }

    /// `/metrics` passes Prometheus's own linter, and every labelled series exists from the start.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool"),
                   "needs promtool (Debian's prometheus package; scripts/test.sh installs it)"))
    func metricsPassPromtool() throws {
        let s = try Setup()
        let first = try s.work.git(["rev-parse", "HEAD"])
        try s.start(interval: "1h", extra: ["--workers", "0"])
        try s.waitFor("the first pass") { try s.status()["lastAppliedRevision"] as? String == first }
        let metrics = try s.http("GET", "/metrics")
        #expect(metrics.status == 200)
        let file = s.dir.url.appendingPathComponent("metrics.txt")
        try Data(metrics.body.utf8).write(to: file)
        let check = try runProcess("/bin/sh", ["-c", "promtool check metrics < '\(file.path)'"])
        #expect(check.status == 0, "promtool: \(check.stdout)\(check.stderr)")
        for series in [#"cairn_reconcile_total{result="failed"} 0"#, #"cairn_reconcile_total{result="applied"} 1"#, "cairn_ready 1.0\n",
                       #"cairn_training_runs{state="failed"} 0"#, "# HELP cairn_suspended "] {
            #expect(metrics.body.contains(series), "\(series) in\n\(metrics.body)")
        }
    }

    /// Failed passes back off (1 s, 2 s, 4 s … up to the interval) whatever failed: an unknown
    /// branch, an unreachable remote, a repository path that does not exist. The daemon used to
    /// retry each of them every 200 ms, forever.
    @Test(arguments: [("an unknown branch", ["--revision", "no-such-branch"]), ("an unreachable remote", ["--repo", "file:///nonexistent/remote.git"]),
                      ("a missing repository path", ["--repo", "/nonexistent/repository"])])
    func failingPassesBackOffWhateverFailed(_ cause: String, _ extra: [String]) throws {
        let s = try Setup(copyExamples: false)
        try s.start(interval: "1m", extra: extra + ["--workers", "0", "--log-format", "json"])
        // Four failures, then the daemon's own times of them: the gaps double (1 s, 2 s, 4 s,
        // ±10%). A gap can only come out longer than its backoff on a loaded machine, never
        // shorter, so the lower bounds are exact; at 200 ms the gaps were 0.2 s each.
        func failures() -> [Date] {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return s.log.split(separator: "\n").compactMap { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      object["message"] as? String == "pass failed", let time = object["time"] as? String else { return nil }
                return formatter.date(from: time)
            }
        }
        try s.waitFor("four failed passes (\(cause))", timeout: 30) { failures().count >= 4 }
        let times = failures()
        let gaps = zip(times.dropFirst(), times).map { $0.timeIntervalSince($1) }
        for (gap, backoff) in zip(gaps, [1.0, 2.0, 4.0]) {
            #expect(gap >= backoff * 0.9 - 0.01, "\(cause): \(gaps) s between failed passes\n\(s.log.suffix(2000))")
        }
        #expect(try s.condition("Stalled")?["status"] as? String == "True")
    }

    /// The `X-Hub-Signature-256` header GitHub sends for `body`, with the test daemon's secret.
    func signed(_ body: Data) -> [String: String] {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array("hook-secret".utf8)))
        return ["X-Hub-Signature-256": "sha256=" + mac.map { String(format: "%02x", $0) }.joined()]
    }

    /// Pull-request CI asks the daemon for the plan of a merge commit no branch names (GitHub
    /// keeps it at refs/pull/N/merge): fetched by id, planned against the live registry, in the
    /// format asked for; with a read token only, over the CLI and the API alike.
    @Test func pullRequestPlansComeFromTheLiveRegistry() throws {
        let s = try Setup()
        let first = try s.work.git(["rev-parse", "HEAD"])
        try s.start(extra: ["--workers", "0"])
        try s.waitFor("the first revision to be applied") { try s.status()["lastAppliedRevision"] as? String == first }
        let read = try cairn(["token", "create", "ci-plan", "--scope", "read", "--db", s.dbPath], env: ["USER": "test"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // The merge commit GitHub builds: on a ref outside refs/heads, so the daemon's mirror lacks it.
        let weights = try String(contentsOf: s.work.dir.url.appendingPathComponent("weights/retail-default.yaml"), encoding: .utf8)
        try s.work.git(["checkout", "-q", "-b", "pr"])
        let merge = try s.work.commit("Weigh renewals more", files: ["weights/retail-default.yaml": weights.replacingOccurrences(of: "renewed: 1.2", with: "renewed: 1.5")])
        try s.work.git(["push", "-q", "origin", "HEAD:refs/pull/7/merge"])
        let md = try cairn(["plan", "--server", s.base, "--revision", merge, "--format", "markdown"], env: ["CAIRN_TOKEN": read])
        #expect(md.status == 0, "\(md.stderr)")
        #expect(md.stdout.hasPrefix("### Cairn plan for `\(merge)` @ `\(merge.prefix(7))`"), "\(md.stdout.prefix(400))")
        #expect(md.stdout.contains("| ~ | `OutcomeWeights/retail-default` | update (renewed 1.2 → 1.5) |"), "\(md.stdout)")
        #expect(md.stdout.contains("last applied `\(first.prefix(7))`"), "against the live registry: \(md.stdout.prefix(400))")
        #expect(!md.stdout.contains("Warning"))
        let exit = try cairn(["plan", "--server", s.base, "--revision", merge, "--detailed-exitcode", "--out", s.dir.url.appendingPathComponent("pr.json").path],
                             env: ["CAIRN_TOKEN": read])
        #expect(exit.status == 2 && exit.stdout.contains("Plan: 1 update, 4 train"), "\(exit.stdout)\(exit.stderr)")
        #expect(FileManager.default.fileExists(atPath: s.dir.url.appendingPathComponent("pr.json").path))
        // The API itself, in any format.
        let text = try httpRequest(port: s.port, "GET", "/v1/plan?revision=\(merge)&format=text", token: read)
        #expect(text.0 == 200 && text.1.contains("~ OutcomeWeights/retail-default"), "\(text)")
        // Nothing was applied or recorded: the daemon still serves main.
        #expect(try s.status()["lastAppliedRevision"] as? String == first)
        #expect(try s.status()["lastAttemptedRevision"] as? String == first)
        // An invalid merge commit: 422 with the diagnostics, exit 1 with them.
        let broken = try s.work.commit("broken", files: ["models/broken.yaml": "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: broken}\nspec: {template: nope}\n"])
        try s.work.git(["push", "-q", "origin", "HEAD:refs/pull/8/merge"])
        let invalid = try cairn(["plan", "--server", s.base, "--revision", broken], env: ["CAIRN_TOKEN": read])
        #expect(invalid.status == 1 && invalid.stderr.contains("(422): \(broken.prefix(7)) is invalid: 1 error"), "\(invalid.stderr)")
        #expect(invalid.stderr.contains("models/broken.yaml:4:18: error: Model/broken: spec.template refers to Template/nope"))
        // What is refused: a commit the remote does not have, anything but a full commit id,
        // no token, a token over plain http to another host.
        let missing = try httpRequest(port: s.port, "GET", "/v1/plan?revision=\(String(repeating: "ab", count: 20))", token: read)
        #expect(missing.0 == 404 && missing.1.contains("commit abababababababababababababababababababab is not in file://"), "\(missing)")
        for revision in ["main", "HEAD~1", "pr", String(merge.prefix(12)), "--upload-pack=x"] {
            let answer = try httpRequest(port: s.port, "GET", "/v1/plan?revision=\(revision.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)", token: read)
            #expect(answer.0 == 400, "\(revision): \(answer)")
        }
        #expect(try httpRequest(port: s.port, "GET", "/v1/plan?revision=\(merge)").0 == 401)
        let noToken = try cairn(["plan", "--server", s.base, "--revision", merge])
        #expect(noToken.status == 1 && noToken.stderr.contains("no API token: set CAIRN_TOKEN"), "\(noToken.stderr)")
        let clear = try cairn(["plan", "--server", "http://cairn.example.com", "--revision", merge], env: ["CAIRN_TOKEN": read])
        #expect(clear.status == 1 && clear.stderr.contains("plain http to another host"), "\(clear.stderr)")
        let short = try cairn(["plan", "--server", s.base, "--revision", "pr"], env: ["CAIRN_TOKEN": read])
        #expect(short.status == 1 && short.stderr.contains("needs --revision as a full commit id"), "\(short.stderr)")
    }

    /// A plain-path repository (no fetch), polled hourly: only `--resync` can make the daemon
    /// look again, and it does, applying a new commit and then running a pass with nothing new.
    @Test func aPlainPathRepositoryIsFollowedAndResyncRuns() throws {
        let s = try Setup()
        let first = try s.work.git(["rev-parse", "HEAD"])
        try s.start(interval: "1h", extra: ["--workers", "0", "--resync", "2s"], repo: s.work.path)
        try s.waitFor("the first pass") { try s.status()["lastAppliedRevision"] as? String == first }
        #expect(!FileManager.default.fileExists(atPath: s.dir.url.appendingPathComponent("state/git-cache").path), "a path is read in place, not fetched")
        let second = try s.work.commit("tune weights", files: ["weights/clicks-only.yaml": "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: clicks-only}\nspec: {weights: {click: 1.0, convert: 1.5}}\n"])
        try s.waitFor("the resync to apply the new commit", timeout: 30) { try s.status()["lastAppliedRevision"] as? String == second }
        let passes = try s.counter("cairn_reconcile_total")
        try s.waitFor("a resync with nothing new", timeout: 30) { try s.counter("cairn_reconcile_total") > passes }
        #expect(try s.http("GET", "/metrics").body.range(of: #"cairn_reconcile_total\{result="noop"\} [1-9]"#, options: .regularExpression) != nil)
    }

    /// The API's error answers: a webhook with no secret configured, an unknown target, missing
    /// parameters, and `/readyz` while the database cannot answer (and after it can again).
    @Test func theAPIsErrorAnswers() throws {
        let s = try Setup()
        let first = try s.work.git(["rev-parse", "HEAD"])
        try s.start(interval: "1h", extra: ["--workers", "0"], env: ["CAIRN_WEBHOOK_SECRET": ""])
        try s.waitFor("the first pass") { try s.status()["lastAppliedRevision"] as? String == first }
        let body = Data(#"{"ref":"refs/heads/main"}"#.utf8)
        let key = SymmetricKey(data: Data("hook-secret".utf8))
        let signature = "sha256=" + HMAC<SHA256>.authenticationCode(for: body, using: key).map { String(format: "%02x", $0) }.joined()
        #expect(try s.http("POST", "/hooks/git", body: body, headers: ["X-Hub-Signature-256": signature]).status == 401, "no secret: every webhook is refused")
        let unknown = try s.http("GET", "/v1/targets/no-such-target")
        #expect(unknown.status == 404 && unknown.body.contains("ServingTarget/no-such-target serves nothing"), "\(unknown)")
        let noUser = try s.http("GET", "/v1/targets/acme-search/recommendations")
        #expect(noUser.status == 400 && noUser.body.contains("give user=U or items=a,b"), "\(noUser)")
        #expect(try s.http("GET", "/v1/targets/acme-search/recommendations?user=u1&k=0").status == 400)
        #expect(try s.http("GET", "/v1/plan?format=yaml").status == 400)
        // The database stops answering (its meta table is gone): not ready, saying why; back, ready.
        let raw = try DatabaseQueue(path: s.dbPath)
        try raw.write { try $0.execute(sql: "ALTER TABLE meta RENAME TO meta_away") }
        let down = try s.http("GET", "/readyz")
        #expect(down.status == 503 && down.body.contains("database unreachable"), "\(down)")
        try raw.write { try $0.execute(sql: "ALTER TABLE meta_away RENAME TO meta") }
        #expect(try s.http("GET", "/readyz").status == 200)
    }

    @Test func webhooksNeedAValidSignature() throws {
        let s = try Setup()
        let first = try s.work.git(["rev-parse", "HEAD"])
        // Poll hourly: only the webhook can make the daemon look again.
        try s.start(interval: "1h", extra: ["--workers", "0", "--log-format", "json"])
        try s.waitFor("the first pass") { try s.status()["lastAppliedRevision"] as? String == first }
        let second = try s.push("tune weights", files: ["weights/clicks-only.yaml": "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: clicks-only}\nspec: {weights: {click: 1.0, convert: 1.5}}\n"])
        let body = Data(#"{"ref":"refs/heads/main"}"#.utf8)
        #expect(try s.http("POST", "/hooks/git", body: body).status == 401)
        #expect(try s.http("POST", "/hooks/git", body: body, headers: ["X-Hub-Signature-256": "sha256=" + String(repeating: "0", count: 64)]).status == 401)
        let good = try s.http("POST", "/hooks/git", body: body, headers: signed(body))
        #expect(good.status == 202)
        try s.waitFor("the webhook's pass", timeout: 20) { try s.status()["lastAppliedRevision"] as? String == second }
        // Two passes in all, the first and the signed webhook's: neither refused request made one
        // (each would have applied `second` itself and left the good webhook a pass of its own).
        #expect(try s.counter("cairn_reconcile_total") == 2, "a refused webhook triggered a pass\n\(s.log.suffix(2000))")
        // GitHub sends payloads up to 25 MB (a push of many commits); larger ones are refused.
        let large = Data(#"{"ref":"refs/heads/main","padding":""#.utf8) + Data(repeating: UInt8(ascii: "x"), count: 5 << 20) + Data(#""}"#.utf8)
        #expect(try s.http("POST", "/hooks/git", body: large, headers: signed(large)).status == 202)
        let tooLarge = Data(repeating: UInt8(ascii: " "), count: 26 << 20)
        #expect(try s.http("POST", "/hooks/git", body: tooLarge, headers: signed(tooLarge)).status == 413)
        // --log-format json: one object per line, one line per pass with its revision.
        let lines = s.log.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.count == s.log.split(separator: "\n").count)
        #expect(lines.contains { $0["message"] as? String == "pass" && $0["revision"] as? String == second && $0["duration_ms"] != nil })
    }

    @Test func recommendationsStayUpAcrossAPromotion() throws {
        let s = try Setup()
        let searchModels = try String(contentsOf: packageRoot.appendingPathComponent("examples/fleet/models/search.yaml"), encoding: .utf8)
        func models(_ extra: String) -> String {
            searchModels.replacingOccurrences(of: "  label: Search popularity fallback\n", with: "  label: Search popularity fallback\n\(extra)")
        }
        try s.push("serve search-popular", files: [
            "targets/acme-search.yaml": "apiVersion: cairn/v1\nkind: ServingTarget\nmetadata: {name: acme-search}\nspec:\n  tenant: acme\n  surface: search\n  routes: [{model: search-popular, version: latest-approved}]\n",
            "models/search.yaml": models("  decisions: {approve: [1]}\n"),
        ])
        try s.start()
        try s.waitFor("v1 to be served") {
            (try s.http("GET", "/v1/targets/acme-search/recommendations?user=u0001")).body.contains("\"version\" : 1")
        }
        let seen = VersionLog()
        let stop = StopSignal()
        let hammer = Thread {
            var n = 0
            while !stop.isSet {
                n += 1
                let answer = try? s.http("GET", "/v1/targets/acme-search/recommendations?user=u\(String(format: "%04d", n % 1200))&k=5")
                seen.append(answer)
            }
        }
        hammer.start()
        try s.push("retrain and approve v2", files: ["models/search.yaml": models("  retrainToken: \"second\"\n  decisions: {approve: [1, 2]}\n")])
        try s.waitFor("v2 to be served") { seen.versions.last == 2 }
        Thread.sleep(forTimeInterval: 0.5)
        stop.set()
        while !hammer.isFinished { Thread.sleep(forTimeInterval: 0.05) }
        #expect(seen.failures == 0, "some recommendation requests failed")
        let versions = seen.versions
        #expect(versions.count > 20)
        #expect(versions == versions.sorted(), "a request saw v1 after v2")
        #expect(Set(versions) == [1, 2])
    }

    @Test func sigtermDuringTrainingLosesNothing() throws {
        let s = try Setup(files: [
            "data/i.csv": "user_id,item_id,event,timestamp\nu1,a,click,1793491200\n",
            "w.yaml": weightsDoc,
            "slow.sh": "sleep 60\necho '{\"auc\": 1}' > \"$CAIRN_OUTPUT/metrics.json\"\n",
            "t.yaml": "apiVersion: cairn/v1\nkind: Template\nmetadata: {name: slow}\nspec:\n  events: [click]\n  outcomeWeights: w\n  dataset: {path: data/i.csv}\n  trainer: {kind: exec, command: [sh, slow.sh]}\n  evaluation: {metrics: [auc]}\n",
            "m.yaml": "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: slow-model}\nspec: {template: slow, lifecycle: active}\n",
        ], copyExamples: false)
        try s.start()
        try s.waitFor("training to start") { (try RegistryDatabase(path: s.dbPath).recentRuns().first?.state) == "running" }
        let stopAsked = Date()
        kill(s.daemon!.processIdentifier, SIGTERM)
        s.daemon!.waitUntilExit()
        #expect(s.daemon!.terminationStatus == 0, "\(s.log.suffix(2000))")
        #expect(Date().timeIntervalSince(stopAsked) < 15)
        let db = try RegistryDatabase(path: s.dbPath)
        let run = try #require(try db.recentRuns().first)
        #expect(run.state == "queued")
        #expect(run.reason == "handed back by a stopping worker")
        #expect(run.attempts == 0)
        #expect(try db.verifyAudit() == nil)
        #expect(try db.observedState().models["slow-model"] != nil)
    }
}

final class VersionLog: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var versions: [Int] = []
    private(set) var failures = 0

    func append(_ answer: (status: Int, body: String)?) {
        lock.lock()
        defer { lock.unlock() }
        guard let answer, answer.status == 200,
              let json = try? JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any], let v = json["version"] as? Int else {
            failures += 1
            return
        }
        versions.append(v)
    }
}

final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freePort() -> Int { freeLocalPort() }

/// A learning schedule makes `cairn serve` run a pass of its own: polled hourly with an hourly
/// resync, a model learning every minute from data outside git is trained again after a minute.
/// (Its own suite, so its minute runs beside the others.)
@Suite struct ScheduleEndToEndTests {
    @Test func aDueScheduleRunsAPassThatTrains() throws {
        let data = TempDir("cairn-schedule-data")
        chmod(data.path, 0o755)
        let csv = data.path + "/interactions.csv"
        try (["user_id,item_id,event,timestamp"] + (0..<400).map { "u\($0 % 40),i\(($0 * 7) % 30),click,\(1_793_491_200 + $0)" })
            .joined(separator: "\n").appending("\n").write(toFile: csv, atomically: true, encoding: .utf8)
        chmod(csv, 0o644)
        let s = try ServeEndToEndTests.Setup(files: [
            "w.yaml": "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: 1}}\n",
            "t.yaml": """
                apiVersion: cairn/v1
                kind: Template
                metadata: {name: t}
                spec:
                  events: [click]
                  outcomeWeights: w
                  dataset: {uri: "file://\(csv)"}
                  trainer: {kind: builtin, algorithm: popularity}
                  evaluation: {metrics: [recall@5]}

                """,
            "m.yaml": "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: m}\nspec:\n  template: t\n  lifecycle: active\n  learning: {mode: scheduled, every: 1m}\n",
        ], copyExamples: false)
        try s.start(interval: "1h", extra: ["--resync", "1h", "--workers", "1", "--dataset-root", data.path])
        let db = try RegistryDatabase(path: s.dbPath)
        func finished() throws -> Int { try db.recentRuns().filter { $0.state == "succeeded" }.count }
        try s.waitFor("the first run", timeout: 60) { try finished() == 1 }
        // Nothing polls or resyncs within the hour: only the schedule can start another pass.
        try s.waitFor("the schedule's run, a minute later", timeout: 150) { try finished() == 2 }
        let history = try db.history(RegistryDatabase.HistoryFilter(model: "m", limit: 50))
        #expect(history.contains { $0.reason.contains("learning schedule") }, "\(history.map(\.reason))")
    }
}

