import CairnCore
import CairnGit
import CairnManifests
import CairnSource
import CairnTraining
import Foundation

/// How `cairn serve` is configured.
public struct ServeConfiguration: Sendable {
    /// A local path or a remote URL.
    public var repository: String
    public var revision: String
    public var manifestRoot: String
    public var exclude: Set<String>
    public var databasePath: String
    public var host: String
    public var port: Int
    /// Seconds between polls of the source (±10% jitter).
    public var interval: Int
    /// Seconds after which a pass runs even with nothing new, to catch drift.
    public var resync: Int
    public var workers: Int
    public var planner: PlannerOptions
    public var artifactsPath: String
    public var signingKeyPath: String
    public var gitCachePath: String
    public var workRoot: String
    /// `CAIRN_WEBHOOK_SECRET`; webhooks are refused without it.
    public var webhookSecret: String?
    /// Which `file://` datasets trainers may read.
    public var datasets: DatasetPolicy = DatasetPolicy(roots: [], forbidden: [])
    /// How exec trainers are kept from the daemon.
    public var isolation: TrainerIsolation = .none
    /// `/metrics` without a token (`--public-metrics`), for scrapers that cannot send one.
    public var publicMetrics = false
    /// How long decision traces are kept, and how many at most (`--trace-retention`, `--trace-limit`).
    public var traceRetention = TraceRecorder.Retention()
    /// Only revisions signed by trusted keys are applied (`--verify-signatures`).
    public var signatures: SignaturePolicy?
    /// Where notifications go (`--notify FILE`).
    public var receivers: [NotificationReceiver] = []
    /// How often unreferenced artifacts are collected (seconds; 0: never), and how old one must be.
    public var artifactGCEvery: Int64 = 6 * 3600
    public var artifactGCMinAge: Int64 = 3600

    public init(repository: String, revision: String, manifestRoot: String, exclude: Set<String>, databasePath: String, host: String,
                port: Int, interval: Int, resync: Int, workers: Int, planner: PlannerOptions, artifactsPath: String, signingKeyPath: String,
                gitCachePath: String, workRoot: String, webhookSecret: String?) {
        self.repository = repository
        self.revision = revision
        self.manifestRoot = manifestRoot
        self.exclude = exclude
        self.databasePath = databasePath
        self.host = host
        self.port = port
        self.interval = interval
        self.resync = resync
        self.workers = workers
        self.planner = planner
        self.artifactsPath = artifactsPath
        self.signingKeyPath = signingKeyPath
        self.gitCachePath = gitCachePath
        self.workRoot = workRoot
        self.webhookSecret = webhookSecret
    }

    /// The followed repository, revision and manifest folder as a source (the daemon's loop gives
    /// it its parse cache; the API's and dashboard's reads beside the loop have none).
    public func source(parseCache: ParseCache? = nil) -> GitManifestSource {
        var source = GitManifestSource(repository: repository, revision: revision, root: manifestRoot, exclude: exclude, gitCache: gitCachePath,
                                       parseCache: parseCache)
        source.signatures = signatures
        return source
    }
}
