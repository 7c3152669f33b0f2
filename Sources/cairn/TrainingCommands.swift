import ArgumentParser
import CairnCore
import CairnReconcile
import CairnStore
import CairnTraining
import Foundation

/// Where artifacts, the signing key and run folders live (by default beside the database).
struct ArtifactOptions: ParsableArguments {
    @Option(help: "The artifact folder (default: artifacts/ beside the database).")
    var artifacts: String?

    @Option(help: "The signing key file, used when CAIRN_SIGNING_KEY is not set (default: signing.key beside the database).")
    var signingKeyFile: String?

    @Option(name: .customLong("dataset-root"),
            help: "A folder that file:// datasets may be read from (repeatable; also CAIRN_DATASET_ROOTS, ':'-separated). Default: none.")
    var datasetRoots: [String] = []

    @Option(help: "When cairn runs as root: the unprivileged user exec trainers run as.")
    var trainerUser: String = "nobody"

    /// How exec trainers are kept from this process; says at start what is not protected.
    func isolation() throws -> TrainerIsolation {
        let isolation = try TrainerIsolation.forThisProcess(trainerUser: trainerUser)
        if let warning = isolation.warning { printError("warning: \(warning)") }
        return isolation
    }

    /// Which `file://` datasets trainers may read: the listed roots, never the state directory.
    func datasetPolicy(db: String) -> DatasetPolicy {
        DatasetPolicy(roots: DatasetPolicy.roots(flags: datasetRoots, environment: ProcessInfo.processInfo.environment),
                      forbidden: [DatabaseOptions.stateFolder(of: db), artifactsPath(db: db),
                                  (keyFilePath(db: db) as NSString).deletingLastPathComponent].map { $0.isEmpty ? "." : $0 })
    }

    /// `--artifacts`, or `artifacts/` beside the database.
    func artifactsPath(db: String) -> String { artifacts ?? beside(db, "artifacts") }

    /// `--signing-key-file`, or `signing.key` beside the database.
    func keyFilePath(db: String) -> String { signingKeyFile ?? beside(db, "signing.key") }

    func store(db: String) -> ArtifactStore {
        ArtifactStore(root: URL(fileURLWithPath: artifactsPath(db: db)))
    }

    /// The signing key; generated (and announced) only when `generate` and none exists.
    func key(db: String, generate: Bool) throws -> SigningKey {
        let file = URL(fileURLWithPath: keyFilePath(db: db))
        let env = Secrets.captured
        if !generate, env["CAIRN_SIGNING_KEY"]?.isEmpty ?? true, !FileManager.default.fileExists(atPath: file.path) {
            throw CairnError("no signing key: CAIRN_SIGNING_KEY is not set and \(file.path) does not exist",
                                 hint: "use the key that signed the artifacts (CAIRN_SIGNING_KEY or --signing-key-file)")
        }
        do {
            return try SigningKey.load(environment: env, file: file) { printError("note: \($0)") }
        } catch let error as CairnError {
            throw CairnError(error.message, hint: "generate a key with `openssl rand -hex 32`; a key file and CAIRN_SIGNING_KEY hold the same hex text")
        }
    }

    func beside(_ db: String, _ name: String) -> String {
        ((DatabaseOptions.stateFolder(of: db) as NSString).appendingPathComponent(name) as NSString).standardizingPath
    }
}

func makeWorker(repo: String, database: DatabaseOptions, artifacts: ArtifactOptions, db: RegistryDatabase,
                leaseSeconds: Int64 = 60, retryDelay: Int64 = 30, unsigned: Bool = false) throws -> TrainingWorker {
    let trainer = LocalTrainerRunner(repositoryPath: repo, workRoot: URL(fileURLWithPath: artifacts.beside(database.db, "runs")),
                                     datasets: artifacts.datasetPolicy(db: database.db), isolation: try artifacts.isolation())
    let keeper: ArtifactKeeper = unsigned
        ? UnsignedArtifactStore(store: artifacts.store(db: database.db))
        : SignedArtifactStore(store: artifacts.store(db: database.db), key: try artifacts.key(db: database.db, generate: true))
    let worker = TrainingWorker(store: db, trainer: trainer, artifacts: keeper, clock: clock,
                                configuration: .init(leaseSeconds: leaseSeconds, retryDelay: retryDelay, submitsResults: unsigned)) { printError($0) }
    try worker.sweepLeftovers()
    return worker
}

/// SIGINT and SIGTERM set the flag instead of killing the process, so running work is handed back.
func stopOnSignals(_ stop: StopFlag) -> [DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { sig in
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            printError("stopping: handing running training back to the queue")
            stop.set()
        }
        source.resume()
        return source
    }
}

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run queued training runs.",
        discussion: "SIGINT/SIGTERM stop it: running exec trainers are stopped and their runs go back to the queue."
    )

    @Option(help: "The git repository the runs' commits are read from.")
    var repo: String = "."

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var artifacts: ArtifactOptions

    @Option(help: "Training runs at a time.")
    var concurrency: Int = 1

    @Flag(help: "Exit when the queue is empty instead of waiting for more.")
    var once = false

    @Option(help: "How long a claimed run stays this worker's without a heartbeat (heartbeats every third of it).")
    var lease: String = "60s"

    @Option(help: "First retry delay for a run whose worker died; doubles with each attempt.")
    var retryDelay: String = "30s"

    @Flag(help: """
        Hold no signing key: submit each result; `cairn serve` verifies the artifact's digest in the shared store, signs and \
        records the version (for workers on other hosts; the key stays on the control plane).
        """)
    var unsigned = false

    func validate() throws {
        guard let l = ManifestDuration(parsing: lease), l.seconds >= 2 else { throw ValidationError("--lease must be a duration of 2s or more") }
        guard ManifestDuration(parsing: retryDelay) != nil else { throw ValidationError("--retry-delay must be a duration such as 30s") }
        if concurrency < 1 { throw ValidationError("--concurrency must be 1 or more") }
    }

    func run() throws {
        try reportingFailures {
            DatabaseOptions.repository.path = repo
            let db = try database.open()
            let worker = try makeWorker(repo: repo, database: database, artifacts: artifacts, db: db,
                                        leaseSeconds: Int64(ManifestDuration(parsing: lease)!.seconds),
                                        retryDelay: Int64(ManifestDuration(parsing: retryDelay)!.seconds), unsigned: unsigned)
            // On a PostgreSQL registry a queued run wakes this worker at once (LISTEN/NOTIFY);
            // the queue is polled too, every 2 s, in case a notification is lost.
            let watch = once ? nil : db.watchChanges { worker.queued.signal() }
            defer { watch?.stop() }
            let stop = StopFlag()
            let signals = stopOnSignals(stop)
            let outcomes = worker.run(concurrency: concurrency, once: once, stop: stop)
            _ = signals
            let failed = outcomes.filter { if case .failed = $0 { true } else { false } }.count
            let succeeded = outcomes.filter { if case .succeeded = $0 { true } else { false } }.count
            let matched = outcomes.filter { if case .matched = $0 { true } else { false } }.count
            let submitted = outcomes.filter { if case .submitted = $0 { true } else { false } }.count
            let cancelled = outcomes.filter { if case .cancelled = $0 { true } else { false } }.count
            print("\(succeeded + matched) run\(succeeded + matched == 1 ? "" : "s") succeeded"
                  + (matched == 0 ? "" : " (\(matched) matched an existing version: no new version)") + ", \(failed) failed"
                  + (cancelled == 0 ? "" : ", \(cancelled) cancelled (superseded while training)")
                  + (submitted == 0 ? "." : ", \(submitted) trained and left for the control plane to record."))
        }
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a training run's log (the trainer's output, last 1 MiB).")

    @Argument(help: "The training run id.")
    var runID: Int

    @Flag(name: [.customShort("f"), .long], help: "Keep printing the log as the trainer writes it, until the run ends.")
    var follow = false

    @OptionGroup var database: DatabaseOptions

    func run() throws {
        try reportingFailures {
            guard let db = try database.openForReading(), let (summary, log) = try db.runLog(runID) else {
                throw CairnError("training run \(runID) does not exist", hint: "`cairn status` lists recent runs")
            }
            printError("training run \(summary.id) · \(summary.model) · \(summary.state)" + (summary.job.map { " · \($0)" } ?? "")
                       + (summary.reason.map { ": \($0)" } ?? ""))
            guard follow, summary.state == "queued" || summary.state == "running" else {
                print(log, terminator: log.hasSuffix("\n") || log.isEmpty ? "" : "\n")
                return
            }
            // A running run's log is the trainer's output so far (exec trainers: when the run
            // ends; Slurm jobs: as the worker streams it, every few seconds).
            var shown = log
            print(log, terminator: "")
            while true {
                Thread.sleep(forTimeInterval: 1)
                guard let (now, text) = try db.runLog(runID) else { return }
                if text.hasPrefix(shown) {
                    print(text.dropFirst(shown.count), terminator: "")
                } else if text != shown {
                    print("\n[the log's start was trimmed to its last 1 MiB]\n" + text, terminator: "")
                }
                fflush(nil)
                shown = text
                if now.state != "queued" && now.state != "running" {
                    if !shown.hasSuffix("\n") && !shown.isEmpty { print() }
                    printError("training run \(now.id) · \(now.state)" + (now.reason.map { ": \($0)" } ?? ""))
                    return
                }
            }
        }
    }
}

/// `MODEL@N` (also `MODEL:N`, `MODEL/vN`).
func parseVersionRef(_ text: String) throws -> (String, Int) {
    for separator in ["@", ":", "/v"] {
        if let r = text.range(of: separator, options: .backwards), let n = Int(text[r.upperBound...]), n > 0 {
            return (String(text[..<r.lowerBound]), n)
        }
    }
    throw CairnError("'\(text)' is not a version reference", hint: "write MODEL@N, for example homepage-recs@3")
}

func loadVersion(database: DatabaseOptions, model: String, number: Int) throws -> ModelVersion {
    guard let db = try database.openForReading() else { throw CairnError("no registry database at \(database.shown)") }
    guard let versions = try db.versions(of: model) else { throw CairnError("Model/\(model) has never been applied") }
    guard let v = versions.first(where: { $0.number == number }) else {
        throw CairnError("\(model) has no v\(number)", hint: "`cairn versions \(model)` lists them")
    }
    return v
}

struct Recommend: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score items with a target's live version, or review any version of a model (its artifact is verified first).",
        discussion: """
            With --target, a user is assigned to one of the target's routes by a stable hash of the user id, honouring the route \
            weights. With --model (and --version, default the newest), any version is scored, pending ones included: what approving \
            it would put live. --random-user picks one of the users the version was trained on, by --seed (the same seed, the same \
            user). A template with an item catalogue (`items: {path: …}`) shows titles and categories (read from --repo at the \
            version's commit).
            """
    )

    @Option(help: "The serving target.")
    var target: String?

    @Option(help: "A model, to review one of its versions.")
    var model: String?

    @Option(help: "The version of --model (default: the newest).")
    var version: Int?

    @Option(help: "A known user id.")
    var user: String?

    @Option(help: "Items the user interacted with, comma-separated (for users the model has not seen).")
    var items: String?

    @Flag(help: "A random user the version was trained on (with --model).")
    var randomUser = false

    @Option(help: "The seed of --random-user.")
    var seed: Int = 1

    @Option(name: .short, help: "How many items.")
    var k: Int = 10

    @Option(help: "The git repository the item catalogue is read from.")
    var repo: String = "."

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var artifacts: ArtifactOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if (target == nil) == (model == nil) { throw ValidationError("give --target T, or --model M to review a version") }
        if [user != nil, items != nil, randomUser].filter({ $0 }).count != 1 { throw ValidationError("give one of --user U, --items a,b or --random-user") }
        if randomUser, model == nil { throw ValidationError("--random-user reviews a version: give --model M") }
        if version != nil, model == nil { throw ValidationError("--version goes with --model") }
        if k < 1 || k > 1000 { throw ValidationError("-k must be between 1 and 1000") }
    }

    func run() throws {
        try reportingFailures(format: output.format) {
            guard let db = try database.openForReading() else { throw CairnError("no registry database at \(database.shown)") }
            let history = items.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? []
            let loader = ModelLoader(store: artifacts.store(db: database.db), key: try artifacts.key(db: database.db, generate: false))
            if let model {
                guard let versions = try db.versions(of: model), !versions.isEmpty else {
                    throw CairnError("Model/\(model) has no version", hint: "`cairn versions \(model)` lists them")
                }
                let chosen = try version.map { try loadVersion(database: database, model: model, number: $0) } ?? versions.max { $0.number < $1.number }!
                let subject: Review.Subject = randomUser ? .random(seed: seed) : user.map(Review.Subject.user) ?? .items(history)
                let sample = try Review.sample(of: chosen, request: try db.runRequest(chosen.runID), loader: loader, repository: repo,
                                               subject: subject, k: k)
                if output.format == .json { return printJSON(sample) }
                print(Review.text(sample), terminator: "")
                return
            }
            let target = target!
            guard let live = try db.observedState().targets[target], live.assigned, !live.routes.isEmpty else {
                throw CairnError("ServingTarget/\(target) serves nothing yet", hint: "`cairn status` shows what is live")
            }
            let route = RouteChoice.pick(live.routes, key: user ?? history.joined(separator: ","))
            let scorer = try loader.load(try loadVersion(database: database, model: route.model, number: route.version))
            let answer = Recommendation(target: target, route: route, user: user, scored: scorer.recommend(user: user, items: history, k: k))
            if output.format == .json {
                printJSON(answer)
                return
            }
            print("ServingTarget/\(target) → \(route.model) v\(route.version) (\(route.weight)% route)" + (user.map { " for \($0)" } ?? ""))
            for (n, s) in answer.items.enumerated() {
                print(String(format: "%3d. %@  %.4f", n + 1, s.item, s.score))
            }
        }
    }
}
