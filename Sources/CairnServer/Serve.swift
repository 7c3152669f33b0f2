import CairnCore
import CairnGit
import CairnManifests
import CairnReconcile
import CairnSource
import CairnStore
import CairnTraining
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// `cairn serve`: HTTP API, reconcile loop and workers in one ServiceGroup. SIGTERM/SIGINT:
/// stop taking work, finish the current pass, hand running training back, exit 0.
public enum Serve {
    public static func run(_ configuration: ServeConfiguration, key: SigningKey, logger: Logger) async throws {
        var db = try RegistryDatabase(location: configuration.databasePath)
        db.keepsStateCheck = true
        let clock = SystemClock()
        let metrics = CairnMetrics.bootstrap()
        let store = ArtifactStore(root: URL(fileURLWithPath: configuration.artifactsPath))
        let serving = ServingCache(db: db, loader: ModelLoader(store: store, key: key))
        let source = configuration.source(parseCache: ParseCache())
        let queued = Wakeup()
        let loop = ReconcileLoop(source: source, store: db, clock: clock,
                                 configuration: .init(interval: Double(configuration.interval), resync: Double(configuration.resync),
                                                      planner: configuration.planner),
                                 observer: DaemonObserver(serving: serving, metrics: metrics, logger: logger, queued: queued))
        // Serve what is live from the start, before the first pass.
        let observed = try db.observedState()
        if let problem = try liveArtifactsProblem(observed, db: db, key: key) {
            logger.error("not ready: \(problem)")
            loop.status.setKeyProblem(problem)
        }
        await serving.refresh(observed.targets)
        let trainer = LocalTrainerRunner(repositoryPath: source.path, workRoot: URL(fileURLWithPath: configuration.workRoot),
                                         datasets: configuration.datasets, isolation: configuration.isolation)
        // A run this worker finishes wakes the loop at once, and a pass that queued training
        // wakes the workers at once: neither polls for the other.
        let worker = TrainingWorker(store: db, trainer: trainer, artifacts: SignedArtifactStore(store: store, key: key), clock: clock,
                                    queued: queued, finished: { loop.observedChanged() }) { line in
            logger.info("\(line)")
        }
        if configuration.workers > 0 {
            logger.info("\(configuration.isolation.summary)")
            try worker.sweepLeftovers()
        }
        // Other processes sharing a PostgreSQL registry (replicas, remote workers) announce their
        // changes: they wake the loop and the idle workers at once (SQLite: the loop's generation poll).
        let submitted = Wakeup(), events = Wakeup()
        let watch = db.watchChanges {
            loop.observedChanged()
            queued.signal()
            submitted.signal()
            events.signal()
        }
        defer { watch?.stop() }
        let traces = TraceRecorder(db: db, retention: configuration.traceRetention)
        // The traces still pending are written before the process exits.
        defer { traces.stop() }
        let api = HTTPAPI(configuration: configuration, db: db, loop: loop, serving: serving, metrics: metrics, traces: traces)
        var services: [any Service] = [Reconciler(loop: loop), WorkerService(worker: worker, concurrency: configuration.workers),
                                        ResultRecorder(store: db, artifacts: SignedArtifactStore(store: store, key: key), wake: submitted, logger: logger)]
        if configuration.artifactGCEvery > 0 {
            services.append(ArtifactCollector(db: db, store: store, every: configuration.artifactGCEvery, minAge: configuration.artifactGCMinAge,
                                              logger: logger))
        }
        // A service that returns ends the group: the deliveries run only when there are receivers.
        if !configuration.receivers.isEmpty {
            services.append(NotificationService(store: db, receivers: configuration.receivers, wake: events, logger: logger))
        }
        let app = Application(
            router: api.router(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "cairn"),
            services: services,
            logger: logger
        )
        logger.info("serving", metadata: ["listen": "\(configuration.host):\(configuration.port)", "repository": "\(RemoteMirror.redacted(configuration.repository))",
                                           "revision": "\(configuration.revision)", "workers": "\(configuration.workers)"])
        try await app.runService()
        logger.info("stopped")
    }
}

/// Checks that `key` made the signatures of every live version's artifact: a key given in
/// another form or from another deployment makes every live artifact read as tampered, so the
/// daemon says so at start and is not ready. Nil when every live signature verifies.
func liveArtifactsProblem(_ observed: ObservedState, db: RegistryDatabase, key: SigningKey) throws -> String? {
    var checked = Set<String>()
    for target in observed.targets.values.sorted(by: { $0.name < $1.name }) {
        for route in target.routes where checked.insert("\(route.model)@\(route.version)").inserted {
            guard let v = try db.versions(of: route.model)?.first(where: { $0.number == route.version }),
                  let hash = v.artifactHash, let signature = v.artifactSignature else { continue }
            if !key.verify(signature, contentHash: hash, identity: VersionIdentity(model: v.model, version: v.number, fingerprint: v.fingerprint)) {
                return "the signing key did not sign the live artifact of \(v.model) v\(v.number) (ServingTarget/\(target.name)): "
                    + "start with the key that signed it (CAIRN_SIGNING_KEY or --signing-key-file, both hex)"
            }
        }
    }
    return nil
}

/// One JSON object per log line on stderr (`--log-format json`).
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String

    public init(label: String) { self.label = label }

    /// RFC 3339 with milliseconds (`2026-11-25T18:40:12.345Z`).
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: JSONValue] = [
            "time": .string(Self.timestamp(Date())), "level": .string(event.level.rawValue),
            "message": .string("\(event.message)"), "logger": .string(label),
        ]
        // Metadata never replaces the line's own fields (a `message` key once hid "pass failed").
        for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            fields[fields[k] == nil ? k : "meta." + k] = .string("\(v)")
        }
        FileHandle.standardError.write(Data((JSONValue.object(fields).canonicalText + "\n").utf8))
    }
}
