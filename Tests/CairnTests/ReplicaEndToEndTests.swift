import CairnCore
import CairnStore
import Foundation
import Testing

/// Several hosts on one PostgreSQL registry, as processes that share no folder but the artifact
/// store: two `cairn serve` replicas following a bare remote, and two `cairn worker --unsigned`s
/// without the signing key, each with its own clone (the replicas verify, sign and record what
/// they train). The leader is SIGKILLed right after one of its apply steps commits; the other
/// replica takes over, nothing is applied twice, the audit chain holds, and the registry ends in
/// the state one reconciler and one worker holding the key reach on SQLite, signatures included.
@Suite(.serialized, .enabled(if: TestPostgres.available, TestPostgres.skipMessage))
struct ReplicaEndToEndTests {
    final class Host: @unchecked Sendable {
        let name: String
        let dir: URL
        let process = Process()
        let log: String

        init(_ name: String, in root: URL, arguments: [String], signingKey: Bool = true) throws {
            self.name = name
            dir = root.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            log = dir.appendingPathComponent("log").path
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.executableURL = URL(fileURLWithPath: cairnBinary)
            process.arguments = arguments
            process.currentDirectoryURL = dir
            var environment = ProcessInfo.processInfo.environment
            environment.merge(Registry.env) { $1 }
            if !signingKey {
                environment["CAIRN_SIGNING_KEY"] = nil
                environment["CAIRN_SIGNING_KEY_FILE"] = nil
            }
            process.environment = environment
            process.standardOutput = FileHandle(forWritingAtPath: log)
            process.standardError = FileHandle(forWritingAtPath: log)
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

        func kill() {
            if process.isRunning { sendSignal(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    @Test func twoReplicasAndTwoWorkersSurviveTheLeadersDeath() throws {
        let fleet = try ReliabilityFleet(padding: Reliability.setting("CAIRN_CONCURRENCY_PADDING", 40) * 3)
        let reference = try Registry("cairn-replica-reference")
        // The same API token in both registries (the replicas' API needs one).
        #expect(try cairn(["token", "create", "replicas", "--scope", "read", "--db", reference.db]).status == 0)
        _ = try drive(fleet, into: reference)
        let expected = try reference.dump()

        let registry = try Registry("cairn-replicas", backend: .postgres)
        let root = registry.dir.url
        let remote = root.appendingPathComponent("remote.git").path
        try runProcess("/usr/bin/git", ["init", "-q", "--bare", "-b", "main", remote])
        try fleet.repo.git(["push", "-q", remote, "\(fleet.commits[0]):refs/heads/main"])
        // The one folder the hosts share: the artifact store (a shared mount in a real deployment).
        let shared = root.appendingPathComponent("artifacts").path

        // A read token for the API, made before the replicas start (they share the registry's tokens).
        let token = try cairn(["token", "create", "replicas", "--scope", "read", "--db", registry.db])
        #expect(token.status == 0, "\(token.stderr)")
        var hosts: [Host] = []
        defer { for host in hosts { host.kill() } }
        var ports: [String: Int] = [:]
        for name in ["replica-a", "replica-b"] {
            let port = freePort()
            ports[name] = port
            hosts.append(try Host(name, in: root, arguments: [
                "serve", "--repo", "file://\(remote)", "--db", registry.db, "--listen", "127.0.0.1:\(port)", "--interval", "1s",
                "--workers", "0", "--artifacts", shared,
            ]))
        }
        for name in ["worker-a", "worker-b"] {
            let clone = root.appendingPathComponent("\(name)-clone").path
            try runProcess("/usr/bin/git", ["clone", "-q", fleet.repo.path, clone])
            // The signing key stays on the control plane: the workers submit, the replicas verify, sign and record.
            hosts.append(try Host(name, in: root, arguments: [
                "worker", "--unsigned", "--repo", clone, "--db", registry.db, "--artifacts", shared, "--lease", "10s", "--retry-delay", "1s",
            ], signingKey: false))
        }

        func converged(on commit: String) throws -> Bool {
            let plan = try cairn(["plan", "--repo", fleet.repo.path, "--revision", commit, "--db", registry.db, "--detailed-exitcode"], env: Registry.env)
            let active = try registry.activeRuns()
            return plan.status == 0 && active == 0
        }
        func wait(_ what: String, timeout: Double = 180, _ check: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if try check() { return }
                Thread.sleep(forTimeInterval: 0.05)
            }
            throw FixtureError("timed out waiting for \(what)\n" + hosts.map { "--- \($0.name):\n\($0.output.suffix(2000))" }.joined(separator: "\n"))
        }

        // The first commit: kill whichever replica holds the applier lease once one of its steps
        // committed. Watched on one connection, as fast as the server answers.
        var killed: Host?
        var takeover: Double?
        let watch = try PostgresExecutor(try PostgresLocation(parsing: registry.db))
        defer { watch.close() }
        let deadline = Date().addingTimeInterval(120)
        while killed == nil, Date() < deadline {
            let row = try watch.read { db in
                try db.fetchAll(sql: "SELECT (SELECT COUNT(*) FROM audit_log) AS n, (SELECT pid FROM applier_lease) AS pid", arguments: []).first
            }
            if let row, (row["n"] as Int) > 0, let pid = row["pid"] as Int?,
               let leader = hosts.first(where: { Int($0.process.processIdentifier) == pid }) {
                let before: Int = row["n"]
                leader.kill()
                killed = leader
                let at = Date()
                // The other replica takes the lease over at once (the leader's connection, and its session lock, are gone).
                try wait("the other replica to take over") { try registry.auditRows() > before }
                takeover = Date().timeIntervalSince(at)
            } else if let row, (row["n"] as Int) > 0, (try registry.rows("SELECT COUNT(*) AS n FROM meta WHERE key = 'last_applied_revision'").first?["n"] as Int?) == 1 {
                throw FixtureError("the first apply ended before a kill could land")
            }
            usleep(300)
        }
        try #require(killed != nil, "no replica applied the first commit in 120 s")
        let survivor = try #require(hosts.first { $0.name.hasPrefix("replica-") && $0 !== killed })
        try wait("the first commit to converge") { try converged(on: fleet.commits[0]) }

        // While it leads, the API answers from the same database on the survivor.
        let status = try httpRequest(port: ports[survivor.name]!, "GET", "/v1/status",
                                     token: token.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(status.0 == 200, "\(status.1)")

        // The second commit with one replica left.
        try fleet.repo.git(["push", "-q", remote, "\(fleet.commits[1]):refs/heads/main"])
        try wait("the second commit to converge") { try converged(on: fleet.commits[1]) }

        // The survivor serves recommendations from the live version: an artifact a worker without
        // the key stored on the shared mount, signed by a replica, verified again before use.
        let readToken = token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var served = (0, "")
        try wait("the survivor to serve the second commit's live versions", timeout: 30) {
            served = try httpRequest(port: ports[survivor.name]!, "GET", "/v1/targets/acme-search/recommendations?user=u0001&k=3", token: readToken)
            return served.0 == 200
        }
        #expect(served.1.contains("\"items\""), "\(served.1)")

        #expect(try registry.violations() == [])
        let state = try registry.dump()
        if state != expected {
            let a = Set(expected.split(separator: "\n")), b = Set(state.split(separator: "\n"))
            Issue.record("the replicas ended elsewhere.\nonly in reference:\n\(a.subtracting(b).sorted().joined(separator: "\n"))\nonly here:\n\(b.subtracting(a).sorted().joined(separator: "\n"))")
        }
        // Both workers trained (each run once: `violations` finds a fingerprint trained twice).
        let trainedBy = Set(hosts.filter { $0.name.hasPrefix("worker-") && $0.output.contains(" started") }.map(\.name))
        print("replicas: \(killed?.name ?? "-") killed after a committed step; the survivor applied again \(String(format: "%.2f", takeover ?? -1)) s later; workers that trained: \(trainedBy.sorted())")
        #expect(takeover.map { $0 < 10 } == true, "took \(takeover ?? -1) s to take over; the lease lasts 120 s")
    }
}

/// `kill(2)` (inside `Host`, `kill` names its own method).
func sendSignal(_ pid: pid_t, _ signal: Int32) { _ = kill(pid, signal) }
