import CairnCore
import CairnGit
import CairnManifests
import CairnReconcile
import CairnSource
import CairnStore
import Foundation

/// `cairn-bench`: generates fleet repositories and measures the `cairn` binary on them (see `usage`).
let usage = """
    usage: cairn-bench [options]

    Generates fleet repositories of each size and measures the cairn binary on them; writes a
    JSON report and prints the README's table. `make bench` runs it with a throwaway PostgreSQL.

      --sizes N,N,…          fleet sizes (default 1000,10000,100000)
      --out PATH             the JSON report (default bench-out/report.json)
      --cairn PATH           the cairn binary (default: the one beside cairn-bench)
      --work DIR             where fleets and registries are made (default $TMPDIR/cairn-bench)
      --history-rows N       audit rows appended for the history rows, at the largest size (default 1000000)
      --idle-seconds S       how long an idle cairn serve is watched (default 30)
      --idle-only            only the idle cairn serve measurement (with --cairn, to compare binaries)
      --postgres URL         also measure on new databases on this PostgreSQL server (an address whose
                             user may create databases; default $CAIRN_BENCH_POSTGRES_URL)
      --postgres-only        only the rows that compare SQLite and PostgreSQL
      -h, --help             this text

    """

struct Options {
    var sizes = [1000, 10000, 100000]
    var out = "bench-out/report.json"
    var cairn: String
    var work = NSTemporaryDirectory() + "cairn-bench"
    var historyRows = 1_000_000
    /// Seconds `cairn serve` is watched while idle.
    var idleSeconds = 30.0
    /// Only the idle `cairn serve` measurement (with `--cairn`, to compare two binaries).
    var idleOnly = false
    /// A PostgreSQL server (an address whose user may create databases) for the PostgreSQL rows.
    var postgres: String? = ProcessInfo.processInfo.environment["CAIRN_BENCH_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
    var postgresOnly = false

    init(_ args: [String]) throws {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        cairn = here.appendingPathComponent("cairn").path
        var i = 1
        while i < args.count {
            let value = i + 1 < args.count ? args[i + 1] : ""
            switch args[i] {
            case "--sizes": sizes = value.split(separator: ",").compactMap { Int($0) }
            case "--out": out = value
            case "--cairn": cairn = value
            case "--work": work = value
            case "--history-rows": historyRows = Int(value) ?? historyRows
            case "--idle-seconds": idleSeconds = Double(value) ?? idleSeconds
            case "--idle-only":
                idleOnly = true
                i -= 1
            case "--postgres": postgres = value
            case "--postgres-only":
                postgresOnly = true
                i -= 1
            case "-h", "--help":
                print(usage, terminator: "")
                exit(0)
            default:
                FileHandle.standardError.write(Data("cairn-bench: unknown option \(args[i])\n\n\(usage)".utf8))
                exit(64)
            }
            i += 2
        }
    }
}

struct Measurement: Codable {
    var scenario: String
    var models: Int
    var wallSeconds: Double
    var peakRSSMegabytes: Double?
    var ratioToFloor: Double?
    var target: String?
    var exitStatus: Int32?
    /// CPU time (user + system) the process used during the measurement.
    var cpuSeconds: Double?
    /// Apply: its time over its lower bound (the same rows through reused prepared statements).
    var ratioToBound: Double?
}

/// The goal a row is measured against at fleet size `n`, if it has one there.
func target(_ name: String, _ n: Int) -> String? {
    switch (name, n) {
    case ("plan (cold, empty database)", 10_000), ("plan (cold, empty database), packed repository", 10_000): return "≤ 0.5 s and ≤ 2 × floor"
    case ("plan (cold, empty database)", 100_000), ("plan (cold, empty database), packed repository", 100_000): return "≤ 5 s, peak RSS ≤ 1 GB"
    case ("reconcile (apply whole fleet)", 10_000): return "≤ 1.7 s"
    case ("reconcile (apply whole fleet)", 100_000): return "≤ 20 s, peak RSS ≤ 1 GB"
    case ("PostgreSQL: reconcile (apply whole fleet)", 10_000): return "≤ 2 × SQLite"
    case ("plan (no-op)", 10_000): return "< 20 ms (a process: see README)"
    case ("serve pass: no-op (same revision and generation)", 10_000): return "< 20 ms"
    case ("serve pass: one file changed (parse cache warm, apply included)", 10_000): return "≤ 50 ms"
    case ("serve pass: one file changed (parse cache warm, apply included)", 100_000): return "≤ 100 ms"
    case ("serve: push + signed webhook to applied", 10_000): return "≤ 200 ms"
    case ("history (one model, 1,000,000 rows)", _), ("history query alone (one model, 1,000,000 rows)", _): return "< 10 ms"
    case (let idle, _) where idle.hasPrefix("serve idle"): return "no measurable CPU (< 0.1 % of a core)"
    default: return nil
    }
}

/// The median of `repeats` runs of `body`, in seconds (in this process, after a first warm-up run).
func timeInProcess(repeats: Int = 5, _ body: () throws -> Void) rethrows -> Double {
    try body()
    var times: [Double] = []
    for _ in 0..<repeats {
        let start = Date()
        try body()
        times.append(Date().timeIntervalSince(start))
    }
    return times.sorted()[repeats / 2]
}

if CommandLine.arguments.dropFirst().first == "--spawner" { Spawner.serve() }
let options: Options
do {
    options = try Options(CommandLine.arguments)
} catch {
    FileHandle.standardError.write(Data("cairn-bench: \(error)\n".utf8))
    exit(64)
}
guard FileManager.default.isExecutableFile(atPath: options.cairn) else {
    FileHandle.standardError.write(Data("cairn-bench: no cairn binary at \(options.cairn); pass --cairn (see --help)\n".utf8))
    exit(64)
}
/// Started while this process is small (see `Spawner`).
nonisolated(unsafe) let spawner = try Spawner()
var results: [Measurement] = []
do {
for n in options.sizes {
    let repo = URL(fileURLWithPath: options.work).appendingPathComponent("fleet-\(n)")
    let generator = FleetGenerator(models: n, root: repo)
    FileHandle.standardError.write(Data("generating a fleet of \(n) models…\n".utf8))
    _ = try generator.generate()
    let db = repo.appendingPathComponent(".bench/cairn.db").path
    try? FileManager.default.removeItem(atPath: repo.appendingPathComponent(".bench").path)
    // The repository as it is written (loose objects), then packed as `git gc` leaves it: every
    // row after these two runs on the packed repository.
    var floorSeconds = try floor(repo: repo.path)
    results.append(Measurement(scenario: "floor (read blobs + libyaml, no decoding), loose objects", models: n, wallSeconds: floorSeconds))
    FileHandle.standardError.write(Data(String(format: "  floor, loose objects %8.3f s\n", floorSeconds).utf8))
    func run(_ name: String, _ args: [String], allowed: Set<Int32> = [0]) throws {
        let (wall, rss, status) = try measure(options.cairn, args, allowed: allowed)
        results.append(Measurement(scenario: name, models: n, wallSeconds: wall, peakRSSMegabytes: rss, ratioToFloor: wall / floorSeconds,
                                   target: target(name, n), exitStatus: status))
        FileHandle.standardError.write(Data(String(format: "  %-40@ %8.3f s  %7.1f MB  exit %d\n", name, wall, rss, status).utf8))
    }
    if options.idleOnly {
        _ = try measure(options.cairn, ["reconcile", "--repo", repo.path, "--db", db, "--allow-bulk"], allowed: [0, 3])
        let cpu = try idleServe(options.cairn, repo: repo.path, db: db, seconds: options.idleSeconds)
        results.append(Measurement(scenario: "serve idle (\(Int(options.idleSeconds)) s, polls every 10 s, 1 worker)", models: n,
                                   wallSeconds: options.idleSeconds, target: target("serve idle", n), cpuSeconds: cpu))
        FileHandle.standardError.write(Data(String(format: "  serve idle: %.3f s of CPU in %.0f s\n", cpu, options.idleSeconds).utf8))
        continue
    }
    if !options.postgresOnly { try run("plan (cold, empty database), loose objects", ["plan", "--repo", repo.path, "--db", db]) }
    try generator.pack()
    floorSeconds = try floor(repo: repo.path)
    results.append(Measurement(scenario: "floor (read blobs + libyaml, no decoding)", models: n, wallSeconds: floorSeconds))
    FileHandle.standardError.write(Data(String(format: "  floor, packed %8.3f s\n", floorSeconds).utf8))
    if !options.postgresOnly { try run("validate (cold)", ["validate", "--repo", repo.path]) }
    try run("plan (cold, empty database)", ["plan", "--repo", repo.path, "--db", db])
    try run("reconcile (apply whole fleet)", ["reconcile", "--repo", repo.path, "--db", db, "--allow-bulk"], allowed: [0, 3])
    if !options.postgresOnly {
        // What writing the apply's rows costs SQLite itself, in the apply's transactions.
        let loaded = try RevisionReader.read(repository: try GitRepository(path: repo.path), revision: "HEAD", root: "", exclude: [], cache: nil)
        let plan = Planner.plan(desired: loaded.desired!, observed: .empty, now: Int64(Date().timeIntervalSince1970), options: PlannerOptions(allowBulk: true))
        let steps = RegistryDatabase.steps(of: plan).count
        let (bound, rows) = try applyBound(db: db, steps: steps, work: options.work)
        let apply = results.last!.wallSeconds
        results.append(Measurement(scenario: "apply's lower bound (its \(rows) rows through reused prepared statements, \(steps) transactions)",
                                   models: n, wallSeconds: bound, ratioToFloor: bound / floorSeconds))
        FileHandle.standardError.write(Data(String(format: "  apply's lower bound: %.3f s for %d rows (apply is %.1f × it)\n", bound, rows, apply / bound).utf8))
        results[results.count - 2].ratioToBound = apply / bound
    }
    try run("plan (no-op)", ["plan", "--repo", repo.path, "--db", db])
    if let admin = options.postgres {
        // The same commands on a new PostgreSQL database, then a worker's claim round trip on both.
        let pg = try PostgresExecutor.createDatabase("cairn_bench_\(n)_\(Int(Date().timeIntervalSince1970))", onServerOf: admin)
        try run("PostgreSQL: plan (cold, empty database)", ["plan", "--repo", repo.path, "--db", pg])
        try run("PostgreSQL: reconcile (apply whole fleet)", ["reconcile", "--repo", repo.path, "--db", pg, "--allow-bulk"], allowed: [0, 3])
        try run("PostgreSQL: plan (no-op)", ["plan", "--repo", repo.path, "--db", pg])
        for (name, location) in [("worker claim round trip (claim, hand back), SQLite", db), ("PostgreSQL: worker claim round trip (claim, hand back)", pg)] {
            let registry = try RegistryDatabase(location: location)
            let seconds = try timeInProcess(repeats: 51) {
                guard let run = try registry.claimRun(holder: "bench", leaseSeconds: 60, now: Int64(Date().timeIntervalSince1970)) else {
                    throw BenchError("no queued run to claim")
                }
                try registry.releaseRun(run.id, holder: "bench")
            }
            results.append(Measurement(scenario: name, models: n, wallSeconds: seconds))
            FileHandle.standardError.write(Data(String(format: "  %-40@ %8.4f s  (in process)\n", name, seconds).utf8))
            registry.close()
        }
    }
    if options.postgresOnly { continue }

    // What `cairn serve` does between passes, through its own loop (`ReconcileLoop.pass`) in
    // this long-running process, following a file:// remote, so each pass fetches as a daemon
    // following a URL does. Median of 5 (no process start-up).
    var store = try RegistryDatabase(path: db)
    store.keepsStateCheck = true
    let gitCache = options.work + "/git-cache-\(n)"
    try? FileManager.default.removeItem(atPath: gitCache)
    func inProcess(_ name: String, _ seconds: Double) {
        results.append(Measurement(scenario: name, models: n, wallSeconds: seconds, ratioToFloor: seconds / floorSeconds, target: target(name, n)))
        FileHandle.standardError.write(Data(String(format: "  %-40@ %8.3f s  (in process)\n", name, seconds).utf8))
    }
    let daemon = daemonLoop(repo: repo.path, revision: "main", db: store, cache: ParseCache(), gitCache: gitCache)
    guard daemon.pass(fetch: true, force: true) else { throw BenchError("the daemon's first pass failed") }
    inProcess("serve pass: no-op (same revision and generation)", try timeInProcess {
        guard daemon.pass(fetch: true, force: false) else { throw BenchError("a no-op pass failed") }
        guard daemon.status.lastGeneration == (try store.generation()) else { throw BenchError("a no-op pass wrote") }
    })
    // The registry as the previous revision left it, for the one-file passes below.
    let base = options.work + "/base-\(n).db"
    try copyRegistry(db, to: base)
    try generator.commitChange()
    _ = try Process.run(URL(fileURLWithPath: "/usr/bin/git"), arguments: ["-C", repo.path, "branch", "-f", "bench-base", "HEAD~1"]).waitUntilExit()
    // A pass on a new revision with one changed file, apply included: each repetition starts
    // from a copy of the previous registry and a parse cache warm with the previous revision.
    var passes: [Double] = []
    for i in 0..<3 {
        let copy = options.work + "/pass-\(n)-\(i).db"
        try copyRegistry(base, to: copy)
        var registry = try RegistryDatabase(path: copy)
        registry.keepsStateCheck = true
        let cache = ParseCache()
        let previous = daemonLoop(repo: repo.path, revision: "bench-base", db: registry, cache: cache, gitCache: gitCache)
        guard previous.pass(fetch: true, force: true) else { throw BenchError("the warm-up pass failed") }
        let next = daemonLoop(repo: repo.path, revision: "main", db: registry, cache: cache, gitCache: gitCache)
        let before = try registry.generation()
        let start = Date()
        guard next.pass(fetch: true, force: false) else { throw BenchError("the one-file pass failed") }
        passes.append(Date().timeIntervalSince(start))
        guard try registry.generation() > before else { throw BenchError("the one-file pass applied nothing") }
    }
    inProcess("serve pass: one file changed (parse cache warm, apply included)", passes.sorted()[passes.count / 2])
    // Where a pass's time goes, without the fetch and the apply (median of 5).
    // The observed state as the pass finds it: kept in memory from the previous pass (the
    // generation did not move), or read again on a new handle (after an apply moved it).
    var runs: [(total: Double, read: Double, observed: Double, plan: Double, reread: Double)] = []
    for _ in 0..<5 {
        let cache = ParseCache()
        _ = try RevisionReader.read(repository: try GitRepository(path: repo.path), revision: "HEAD~1", root: "", exclude: [], cache: cache)
        let t0 = Date()
        let loaded = try RevisionReader.read(repository: try GitRepository(path: repo.path), revision: "HEAD", root: "", exclude: [], cache: cache)
        let t1 = Date()
        let observed = try store.observedState()
        let t2 = Date()
        let plan = Planner.plan(desired: loaded.desired!, observed: observed, now: Int64(Date().timeIntervalSince1970), options: PlannerOptions())
        let t3 = Date()
        precondition(!plan.isEmpty)
        let fresh = try RegistryDatabase(path: db)
        let t4 = Date()
        let again = try fresh.observedState()
        precondition(again.generation == observed.generation)
        let reread = Date().timeIntervalSince(t4)
        runs.append((t3.timeIntervalSince(t0), t1.timeIntervalSince(t0), t2.timeIntervalSince(t1), t3.timeIntervalSince(t2), reread))
    }
    let parts = runs.sorted { $0.total < $1.total }[runs.count / 2]
    inProcess("  of which: read revision (cached blobs skipped)", parts.read)
    inProcess("  of which: observed state, kept (generation unchanged)", parts.observed)
    inProcess("  of which: plan", parts.plan)
    inProcess("  and: observed state read whole (a new handle; serve advances its kept one)", runs.map(\.reread).sorted()[runs.count / 2])
    inProcess("  and: state against history (before an apply)", try timeInProcess(repeats: 3) {
        let mismatches = try store.verifyState()
        precondition(mismatches.isEmpty)
    })
    try run("plan (one file changed)", ["plan", "--repo", repo.path, "--db", db])
    try run("reconcile (one file changed, apply included)", ["reconcile", "--repo", repo.path, "--db", db], allowed: [0, 3])
    let webhook = try webhookToApplied(options.cairn, repo: repo.path, db: db, work: options.work, generator: generator)
    inProcess("serve: push + signed webhook to applied", webhook)
    try run("status (whole fleet)", ["status", "--db", db, "--format", "json"])
    if n == 10_000 || options.sizes.count == 1 {
        for (page, seconds) in try dashboardPages(options.cairn, db: db, repo: repo.path, model: "model-\(min(42, n - 1))") {
            inProcess("dashboard: GET \(page) (median of 5)", seconds)
        }
    }
    // Before the synthetic history below: it is not a real one.
    try run("audit verify (chain + state against history)", ["audit", "verify", "--db", db])
    let oneShot = try RegistryDatabase(path: db)
    inProcess("state against history alone", try timeInProcess(repeats: 3) {
        let mismatches = try oneShot.verifyState()
        precondition(mismatches.isEmpty, "\(mismatches.prefix(3))")
    })
    if n == options.sizes.last {
        FileHandle.standardError.write(Data("  appending \(options.historyRows) audit rows…\n".utf8))
        try RegistryDatabase(path: db).appendSyntheticHistory(rows: options.historyRows, models: (0..<n).map { "model-\($0)" },
                                                               startingAt: 1_790_000_000)
        try run("history (one model, 1,000,000 rows)", ["history", "--db", db, "--model", "model-\(min(42, n - 1))", "--limit", "20"])
        let history = try RegistryDatabase(path: db)
        inProcess("history query alone (one model, 1,000,000 rows)", try timeInProcess {
            let rows = try history.history(RegistryDatabase.HistoryFilter(model: "model-\(min(42, n - 1))", limit: 20))
            precondition(!rows.isEmpty)
        })
    }
    if n == options.sizes.first {
        let cpu = try idleServe(options.cairn, repo: repo.path, db: db, seconds: options.idleSeconds)
        results.append(Measurement(scenario: "serve idle (\(Int(options.idleSeconds)) s, polls every 10 s, 1 worker)", models: n,
                                   wallSeconds: options.idleSeconds, target: target("serve idle", n), cpuSeconds: cpu))
        FileHandle.standardError.write(Data(String(format: "  serve idle: %.3f s of CPU in %.0f s\n", cpu, options.idleSeconds).utf8))
    }
}
if !options.postgresOnly && !options.idleOnly {
    FileHandle.standardError.write(Data("shadow scoring on examples/learning…\n".utf8))
    let cost = try shadowCost(options.cairn, work: options.work)
    for (name, seconds) in [("recommendations with a shadow scored off the path: p50 (4 clients)", cost.withShadow.p50),
                            ("recommendations with a shadow scored off the path: p95 (4 clients)", cost.withShadow.p95),
                            ("recommendations without a shadow: p50 (4 clients)", cost.withoutShadow.p50),
                            ("recommendations without a shadow: p95 (4 clients)", cost.withoutShadow.p95)] {
        results.append(Measurement(scenario: name, models: 3, wallSeconds: seconds,
                                   target: name.contains("with a shadow") && name.hasSuffix("p95 (4 clients)") ? "≤ 1.5 × without, or + 1 ms" : nil))
        FileHandle.standardError.write(Data(String(format: "  %-70@ %8.3f ms\n", name, seconds * 1000).utf8))
    }
    FileHandle.standardError.write(Data("  traces recorded \(cost.traced), shed \(cost.shed)\n".utf8))
}
} catch {
    FileHandle.standardError.write(Data("cairn-bench: \(error)\n".utf8))
    exit(1)
}

struct Report: Codable {
    var formatVersion = "1"
    var machine: String
    var measuredAt: String
    var results: [Measurement]
}
let cores = ProcessInfo.processInfo.activeProcessorCount
let memory = ProcessInfo.processInfo.physicalMemory / (1 << 30)
let report = Report(machine: "\(cores) cores, \(memory) GiB, \(ProcessInfo.processInfo.operatingSystemVersionString)",
                    measuredAt: ISO8601DateFormatter().string(from: Date()), results: results)
let encoder = JSONEncoder()
encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
try FileManager.default.createDirectory(at: URL(fileURLWithPath: options.out).deletingLastPathComponent(), withIntermediateDirectories: true)
try encoder.encode(report).write(to: URL(fileURLWithPath: options.out))
print("| scenario | models | wall | CPU | peak RSS | × floor | × bound | target |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for r in results {
    let cpu = r.cpuSeconds.map { String(format: "%.3f s (%.2f %%)", $0, 100 * $0 / r.wallSeconds) } ?? "—"
    let wall = r.wallSeconds < 0.01 ? String(format: "%.2f ms", r.wallSeconds * 1000) : String(format: "%.3f s", r.wallSeconds)
    print("| \(r.scenario) | \(r.models) | \(wall) | \(cpu) | \(r.peakRSSMegabytes.map { String(format: "%.0f MB", $0) } ?? "—") | \(r.ratioToFloor.map { String(format: "%.1f", $0) } ?? "—") | \(r.ratioToBound.map { String(format: "%.1f", $0) } ?? "—") | \(r.target ?? "") |")
}
print("\nreport: \(options.out)")
