import CairnCore
import CairnGit
import CairnManifests
import CairnReconcile
import CairnTesting
import CairnSource
import CairnStore
import CairnYAML
import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB

// The scenarios `cairn-bench` measures beyond a single command: an idle daemon, the daemon's
// own pass, the floor, apply's lower bound, and a push answered through a webhook.

/// Starts `cairn serve` on a reconciled fleet, waits until its first pass is over (its CPU time
/// stops growing), then returns the CPU time it uses in `seconds` of idling: polls every 10 s
/// that find nothing new, one worker waiting for runs.
func idleServe(_ cairn: String, repo: String, db: String, seconds: Double) throws -> Double {
    let port = freeLocalPort()
    let pid = try spawn(cairn, ["serve", "--repo", repo, "--db", db, "--listen", "127.0.0.1:\(port)", "--interval", "10s", "--workers", "1"])
    defer { stopProcess(pid) }
    var last = cpuSeconds(pid) ?? 0
    var quiet = 0
    let settleBy = Date().addingTimeInterval(300)
    while quiet < 3, Date() < settleBy {
        Thread.sleep(forTimeInterval: 1)
        guard let now = cpuSeconds(pid) else { throw BenchError("cairn serve exited during start-up") }
        quiet = now - last < 0.02 ? quiet + 1 : 0
        last = now
    }
    let before = cpuSeconds(pid) ?? 0
    Thread.sleep(forTimeInterval: seconds)
    guard let after = cpuSeconds(pid) else { throw BenchError("cairn serve exited while idle") }
    return after - before
}

/// Observes nothing: the benchmark times the pass itself.
struct QuietObserver: ReconcileObserver {
    func passSucceeded(plan: Plan, desired: DesiredState, observed: ObservedState, after: ObservedState, duration: Double) {}
    func passFailed(reason: String, message: String, result: String, revision: String?, duration: Double) {
        FileHandle.standardError.write(Data("  pass failed (\(reason)): \(message)\n".utf8))
    }
    func sourceChanged(stale: String?) {}
}

/// `cairn serve`'s own loop over a `file://` remote of `repo` following `revision`: every pass
/// fetches, as a daemon following a URL does.
func daemonLoop(repo: String, revision: String, db: RegistryDatabase, cache: ParseCache, gitCache: String) -> ReconcileLoop {
    let source = GitManifestSource(repository: "file://" + repo, revision: revision, root: "", exclude: [], gitCache: gitCache, parseCache: cache)
    return ReconcileLoop(source: source, store: db, clock: SystemClock(),
                         configuration: .init(interval: 60, resync: 600, planner: PlannerOptions(allowBulk: true)), observer: QuietObserver())
}

/// Copies a registry to `to` with SQLite's backup API. Copying its files would open and close
/// them in this process, and closing any descriptor of a file drops every POSIX lock the
/// process holds on it (SQLite's documented hazard): a connection this process still has open
/// on the registry loses its locks, and another process may rebuild the shared-memory index
/// under its mapping. The benchmark died of SIGBUS (in `memset`, appending history at 100,000
/// models) after such copies; none since it uses the backup API.
func copyRegistry(_ db: String, to: String) throws {
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: to + suffix) }
    let source = try DatabaseQueue(path: db), target = try DatabaseQueue(path: to)
    try source.backup(to: target)
    try source.close()
    try target.close()
}

/// The floor: read every manifest blob of the revision and run libyaml over it, no decoding
/// (median of 3).
func floor(repo: String) throws -> Double {
    try (0..<3).map { _ in
        let start = Date()
        let snapshot = try GitRepository(path: repo).snapshot(revision: "HEAD")
        var nodes = 0
        for file in snapshot.files { nodes += try YAMLLoader.load(file.contents).count }
        precondition(nodes > 0)
        return Date().timeIntervalSince(start)
    }.sorted()[1]
}

/// Apply's lower bound: every row the apply left in the registry `db`, written into an empty
/// database with the same schema (tables and indexes, WAL as the registry, no foreign-key
/// checks) through one prepared statement per table, reused, in `steps` transactions as the
/// apply had. The rows are read first, outside the timing. Returns the seconds (median of 3)
/// and the row count.
func applyBound(db: String, steps: Int, work: String) throws -> (Double, Int) {
    let source = try DatabaseQueue(path: db)
    let (schema, tables) = try source.read { db -> ([String], [(String, [String], [[DatabaseValue]])]) in
        let schema = try String.fetchAll(db, sql: """
            SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index', rowid
            """)
        var tables: [(String, [String], [[DatabaseValue]])] = []
        for name in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid") {
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM \(name)")
            guard let first = rows.first else { continue }
            tables.append((name, Array(first.columnNames), rows.map { Array($0.databaseValues) }))
        }
        return (schema, tables)
    }
    let rows = tables.reduce(0) { $0 + $1.2.count }
    let times = try (0..<3).map { attempt -> Double in
        let path = work + "/bound-\(attempt).db"
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        // Without foreign-key checks: the rows of one table are cut into the transactions
        // without regard to the rows they reference (a lower bound may skip work).
        var configuration = Configuration()
        configuration.foreignKeysEnabled = false
        let target = try DatabasePool(path: path, configuration: configuration)
        try target.write { db in for statement in schema { try db.execute(sql: statement) } }
        let start = Date()
        // Each table's rows cut into `steps` transactions, the way apply spreads them.
        for step in 0..<max(steps, 1) {
            try target.write { db in
                for (name, columns, values) in tables {
                    let statement = try db.cachedStatement(sql: "INSERT INTO \(name)(\(columns.joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", ")))")
                    let per = (values.count + steps - 1) / max(steps, 1)
                    for row in values.dropFirst(step * per).prefix(per) {
                        try statement.execute(arguments: StatementArguments(row))
                    }
                }
            }
        }
        let seconds = Date().timeIntervalSince(start)
        try target.close()
        return seconds
    }
    return (times.sorted()[1], rows)
}

/// `cairn serve` following a bare copy of `repo` (`--interval 1h`: only the webhook makes it
/// look), on a copy of the reconciled registry `db`: once its first pass is over, a one-file
/// commit is pushed and a signed webhook posted; returns the seconds from the push to the
/// registry recording the new revision as applied (median of 3 changes).
func webhookToApplied(_ cairn: String, repo: String, db: String, work: String, generator: FleetGenerator) throws -> Double {
    let remote = work + "/remote-\(generator.models).git"
    try? FileManager.default.removeItem(atPath: remote)
    try generator.git(["clone", "-q", "--bare", repo, remote])
    let registry = work + "/webhook-\(generator.models).db"
    try copyRegistry(db, to: registry)
    let port = freeLocalPort()
    setenv("CAIRN_WEBHOOK_SECRET", "bench-webhook-secret", 1)
    let pid = try spawn(cairn, ["serve", "--repo", "file://" + remote, "--db", registry, "--listen", "127.0.0.1:\(port)", "--interval", "1h",
                                "--workers", "0"])
    unsetenv("CAIRN_WEBHOOK_SECRET")
    defer { stopProcess(pid) }
    guard let reader = try RegistryDatabase.openForReading(path: registry) else { throw BenchError("no registry at \(registry)") }
    func applied() throws -> String? { try reader.observedState().lastAppliedRevision }
    func head() throws -> String {
        let p = Process(), out = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        p.arguments = ["-C", repo, "rev-parse", "HEAD"]
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    func wait(for revision: String, timeout: Double) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while try applied() != revision {
            guard Date() < deadline else { throw BenchError("cairn serve did not apply \(revision.prefix(8)) within \(timeout) s") }
            usleep(2_000)
        }
    }
    // The first pass applies HEAD (already reconciled: nothing to change but the revision).
    try generator.git(["push", "-q", remote, "HEAD:main"])
    try wait(for: try head(), timeout: 600)
    var times: [Double] = []
    for i in 0..<3 {
        try generator.commitRelabel(model: 1 + i, as: "Webhook \(i)")
        let revision = try head()
        let body = Data(#"{"ref":"refs/heads/main"}"#.utf8)
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array("bench-webhook-secret".utf8)))
        let start = Date()
        try generator.git(["push", "-q", remote, "HEAD:main"])
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/hooks/git")!)
        request.httpMethod = "POST"
        request.httpBody = body
        request.setValue("sha256=" + hexString(mac), forHTTPHeaderField: "X-Hub-Signature-256")
        request.setValue("push", forHTTPHeaderField: "X-GitHub-Event")
        let done = DispatchSemaphore(value: 0)
        let status = Locked<Int?>(nil)
        URLSession.shared.dataTask(with: request) { _, response, _ in
            status.update { $0 = (response as? HTTPURLResponse)?.statusCode }
            done.signal()
        }.resume()
        done.wait()
        guard status.update({ $0 }) == 202 else { throw BenchError("the webhook was answered \(status.update({ $0 }).map(String.init) ?? "nothing")") }
        try wait(for: revision, timeout: 120)
        times.append(Date().timeIntervalSince(start))
    }
    return times.sorted()[1]
}

/// The dashboard's pages as a browser asks for them: `cairn serve` on the reconciled fleet
/// (no workers), signed in with a read token, each page requested 5 times after one warm-up;
/// returns the median seconds of each (loopback: server time and transfer).
func dashboardPages(_ cairn: String, db: String, repo: String, model: String) throws -> [(page: String, seconds: Double)] {
    let token = try runCapturing(cairn, ["token", "create", "bench-dashboard-\(getpid())", "--scope", "read", "--db", db])
        .trimmingCharacters(in: .whitespacesAndNewlines)
    let port = freeLocalPort()
    let pid = try spawn(cairn, ["serve", "--repo", repo, "--db", db, "--listen", "127.0.0.1:\(port)", "--interval", "1h", "--workers", "0"])
    defer { stopProcess(pid) }
    func request(_ method: String, _ path: String, body: String? = nil, cookie: String? = nil) -> (Int, String?) {
        final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
            func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                            newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) { completionHandler(nil) }
        }
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        r.httpMethod = method
        r.timeoutInterval = 120
        if let body { r.httpBody = Data(body.utf8) }
        if let cookie { r.setValue(cookie, forHTTPHeaderField: "Cookie") }
        let session = URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        let done = DispatchSemaphore(value: 0)
        let answer = Locked<(Int, String?)>((0, nil))
        session.dataTask(with: r) { _, response, _ in
            let http = response as? HTTPURLResponse
            answer.update { $0 = (http?.statusCode ?? 0, http?.value(forHTTPHeaderField: "Set-Cookie")) }
            done.signal()
        }.resume()
        done.wait()
        return answer.value
    }
    // Ready: the first pass is over (the pages read what it left).
    let readyBy = Date().addingTimeInterval(600)
    while request("GET", "/readyz").0 != 200 {
        guard Date() < readyBy else { throw BenchError("cairn serve did not become ready") }
        Thread.sleep(forTimeInterval: 0.5)
    }
    let (status, setCookie) = request("POST", "/ui/sign-in", body: "token=" + token)
    guard status == 303, let cookie = setCookie?.split(separator: ";").first.map(String.init) else {
        throw BenchError("signing in to the dashboard answered \(status)")
    }
    // Quiet: the passes the start set off (applying what the repository has beyond the
    // registry) are over, so the pages are timed alone.
    var quiet = 0
    while quiet < 3, Date() < readyBy {
        let before = cpuSeconds(pid) ?? 0
        Thread.sleep(forTimeInterval: 1)
        quiet = (cpuSeconds(pid) ?? 0) - before < 0.02 ? quiet + 1 : 0
    }
    let pages = ["/ui/", "/ui/models", "/ui/models?tab=all&page=100", "/ui/models/\(model)", "/ui/targets", "/ui/runs", "/ui/history", "/ui/plan"]
    return try pages.map { page in
        var times: [Double] = []
        for i in 0..<6 {
            let start = Date()
            let (code, _) = request("GET", page, cookie: cookie)
            guard code == 200 else { throw BenchError("GET \(page) answered \(code)") }
            if i > 0 { times.append(Date().timeIntervalSince(start)) }
        }
        return (page, times.sorted()[times.count / 2])
    }
}
