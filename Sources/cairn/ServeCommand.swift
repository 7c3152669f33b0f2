import ArgumentParser
import CairnCore
import CairnGit
import CairnServer
import CairnTraining
import Foundation
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the scheduled reconcile loop, training workers and the HTTP API.",
        discussion: """
            --repo may be a local path or a remote URL (file://, https:// with CAIRN_GIT_TOKEN, ssh:// with an ssh agent), \
            fetched into a cache beside the database. POST /hooks/git needs CAIRN_WEBHOOK_SECRET. SIGTERM or SIGINT: \
            finish the current pass, hand running training back to the queue, exit 0.
            """
    )

    @OptionGroup var source: SourceOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var artifacts: ArtifactOptions
    @OptionGroup var planning: PlanningOptions

    @Option(help: "Where the HTTP API listens (HOST:PORT).")
    var listen: String = "127.0.0.1:8080"

    @Option(help: "How often to poll the source (±10% jitter).")
    var interval: String = "1m"

    @Option(help: "Reconcile at least this often, even with nothing new, to catch drift.")
    var resync: String = "10m"

    @Option(help: "Training runs at a time (0: leave training to `cairn worker`).")
    var workers: Int = 1

    @Option(help: "Log format: text or json.")
    var logFormat: String = "text"

    @Flag(help: "Serve /metrics without a bearer token (every other endpoint but /healthz and /readyz still needs one).")
    var publicMetrics = false

    @Option(help: "A JSON file of notification receivers: {\"receivers\": [{\"name\", \"url\", \"events\", \"secretFile\", \"format\": \"json\"|\"slack\", \"maxAge\"}]}.")
    var notify: String?

    @Option(help: "How long decision traces of recommendation requests are kept.")
    var traceRetention: String = "7d"

    @Option(help: "How often to remove artifacts no version references any more (as `cairn artifact gc`); 0 turns it off.")
    var artifactGcEvery: String = "6h"

    @Option(help: "Artifact collection keeps unreferenced artifacts changed more recently than this.")
    var artifactGcMinAge: String = "1h"

    static func duration(_ text: String, _ flag: String, allowZero: Bool) throws -> Int {
        if allowZero, text == "0" { return 0 }
        guard let d = ManifestDuration(parsing: text), d.seconds >= 1 else { throw ValidationError("\(flag) must be a duration such as 6h\(allowZero ? ", or 0" : "")") }
        return d.seconds
    }

    @Option(help: "The most decision traces kept (the oldest go first).")
    var traceLimit: Int = 1_000_000

    func validate() throws {
        guard let r = ManifestDuration(parsing: traceRetention), r.seconds >= 1 else { throw ValidationError("--trace-retention must be a duration such as 7d") }
        if traceLimit < 1 { throw ValidationError("--trace-limit must be 1 or more") }
        guard let i = ManifestDuration(parsing: interval), i.seconds >= 1 else { throw ValidationError("--interval must be a duration such as 30s or 1m") }
        guard ManifestDuration(parsing: resync) != nil else { throw ValidationError("--resync must be a duration such as 10m") }
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format is text or json") }
        guard let colon = listen.lastIndex(of: ":"), Int(listen[listen.index(after: colon)...]) != nil else {
            throw ValidationError("--listen must be HOST:PORT, for example 127.0.0.1:8080")
        }
        if workers < 0 { throw ValidationError("--workers must be 0 or more") }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "[::1]"
    }

    func run() async throws {
        DatabaseOptions.repository.path = source.repo
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            json ? JSONLogHandler(label: label) as any LogHandler : StreamLogHandler.standardError(label: label)
        }
        let logger = Logger(label: "cairn")
        let colon = listen.lastIndex(of: ":")!
        var config = ServeConfiguration(
            repository: source.repo, revision: source.revision, manifestRoot: source.path, exclude: Set(source.excluded), databasePath: database.db,
            host: String(listen[..<colon]), port: Int(listen[listen.index(after: colon)...])!,
            interval: ManifestDuration(parsing: interval)!.seconds, resync: ManifestDuration(parsing: resync)!.seconds, workers: workers,
            planner: try planning.planner(), artifactsPath: artifacts.artifactsPath(db: database.db),
            signingKeyPath: artifacts.keyFilePath(db: database.db),
            gitCachePath: artifacts.beside(database.db, "git-cache"), workRoot: artifacts.beside(database.db, "runs"),
            webhookSecret: Secrets.value("CAIRN_WEBHOOK_SECRET"))
        config.datasets = artifacts.datasetPolicy(db: database.db)
        config.isolation = try artifacts.isolation()
        config.publicMetrics = publicMetrics
        config.signatures = source.trust.policy
        if let notify { config.receivers = try NotificationReceiver.load(notify) }
        if let policy = source.trust.policy {
            // The trust files are read at every verification; one inside the followed repository is refused at start.
            try SignatureVerifier.checkTrustFiles(policy, repository: source.repo)
        }
        config.artifactGCEvery = Int64(try Self.duration(artifactGcEvery, "--artifact-gc-every", allowZero: true))
        config.artifactGCMinAge = Int64(try Self.duration(artifactGcMinAge, "--artifact-gc-min-age", allowZero: true))
        config.traceRetention = .init(maxAge: Int64(ManifestDuration(parsing: traceRetention)!.seconds), maxRows: traceLimit)
        // Anyone who can reach a public address could read the registry: tokens first.
        if !Self.isLoopback(config.host) {
            let hasTokens: Bool
            do { hasTokens = try database.open().hasActiveTokens() } catch { hasTokens = false }
            if !hasTokens {
                printError("error: refusing to listen on \(listen) without API tokens: anyone who can reach it could read the registry\n"
                           + "    hint: create one with `cairn token create NAME --scope read --db \(database.shown)`, or listen on 127.0.0.1")
                throw ExitCode(1)
            }
        }
        if config.webhookSecret == nil { logger.warning("CAIRN_WEBHOOK_SECRET is not set: POST /hooks/git answers 401") }
        let key = try artifacts.key(db: database.db, generate: true)
        try await Serve.run(config, key: key, logger: logger)
    }
}
