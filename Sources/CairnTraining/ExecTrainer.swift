import CairnCore
import CairnReconcile
import CairnGit
import Foundation

/// Runs an operator's own training command, as the README's "Training" section specifies: in a read-only snapshot
/// of the run's commit, with CAIRN_DATASET, CAIRN_PARAMS, CAIRN_OUTPUT, CAIRN_RUN_ID,
/// CAIRN_MODEL and CAIRN_VERSION set, secrets removed, and a timeout.
public enum ExecTrainer {
    public static let version = "exec-1"
    /// Used when the template sets no `timeout`.
    public static let defaultTimeout = ManifestDuration(seconds: 3600)
    /// Variables never passed on to a trainer.
    public static let secrets = Set(Secrets.names)
    /// The most trainer output kept in a run's log.
    public static let logLimit = 1 << 20

    public static func train(_ job: TrainingJob, command: [String], timeout: ManifestDuration?, env: [String: String],
                             params: [String: JSONValue], stop: StopFlag, reporter: RunReporter = SilentReporter()) throws -> TrainerOutput {
        let prepared = try prepare(job, params: params, env: env)
        let limit = timeout ?? defaultTimeout
        let (status, reason, log) = try run(command, in: prepared.workingDirectory, environment: prepared.environment, timeout: limit,
                                            isolation: job.isolation, stop: stop, cancelled: { reporter.isCancelled })
        if stop.isSet { throw TrainingInterrupted() }
        switch reason {
        case .exit where status == 0:
            break
        case .exit:
            throw TrainerFailure("trainer exited with status \(status)", log: log)
        case .uncaughtSignal:
            throw TrainerFailure("trainer was killed by signal \(status)", log: log)
        case .timeout:
            throw TrainerFailure("trainer timed out after \(limit)", log: log)
        case .cancelled:
            throw RunCancelled()
        }
        let metrics = try readMetrics(prepared.output.appendingPathComponent("metrics.json"), expected: job.request.template.evaluation.metrics, log: log)
        return TrainerOutput(metrics: metrics, staging: prepared.output, datasetHash: prepared.datasetHash,
                             trainerVersion: "\(version) \(command.joined(separator: " "))", log: log, learned: prepared.learned,
                             tuning: try readTrials(prepared.output, job.request.template, log: log))
    }

    /// A run folder made ready for a trainer that follows the contract (exec, Slurm): the
    /// read-only snapshot, the output, home and params.json, and the environment it runs with.
    struct Prepared {
        var runDir: URL
        var output: URL
        var workingDirectory: URL
        var environment: [String: String]
        var datasetHash: String
        var learned: LearnedFrom
    }

    /// Makes `job.workDir` a fresh run folder (removing what an earlier attempt left there).
    /// `writable` are further folders under it the trainer's user may write.
    static func prepare(_ job: TrainingJob, params: [String: JSONValue], env: [String: String], writable: [String] = []) throws -> Prepared {
        let fm = FileManager.default
        let runDir = job.workDir
        let snapshot = runDir.appendingPathComponent("repo")
        let output = runDir.appendingPathComponent("output")
        try? makeWritable(runDir)
        try? fm.removeItem(at: runDir)
        try fm.createDirectory(at: output, withIntermediateDirectories: true)
        let home = runDir.appendingPathComponent("home")
        try fm.createDirectory(at: home, withIntermediateDirectories: true)
        let others = writable.map { runDir.appendingPathComponent($0) }
        for folder in others { try fm.createDirectory(at: folder, withIntermediateDirectories: true) }
        // The trainer may write its output and its home, nothing else of the worker's.
        try job.isolation.prepare(writable: [output, home] + others)
        do {
            try GitRepository(path: job.repositoryPath).materialize(revision: job.request.commit, into: snapshot.path)
        } catch {
            throw CairnError("cannot prepare the repository snapshot at \(job.request.commit.prefix(7)): \(error.message)")
        }
        var datasetPath: String
        if let path = job.request.datasetPath {
            datasetPath = snapshot.appendingPathComponent(path).path
        } else if case let .uri(uri) = job.request.template.dataset {
            datasetPath = try job.datasets.path(of: uri)
        } else {
            throw CairnError("the template names no dataset")
        }
        guard let original = fm.contents(atPath: datasetPath) else { throw CairnError("cannot read the dataset at \(datasetPath)") }
        // With outcome feedback, the trainer reads one file: the dataset and the samples after it.
        let datasetBytes = job.feedback.appended(to: [UInt8](original))
        if !job.feedback.rows.isEmpty {
            let combined = runDir.appendingPathComponent("dataset.csv")
            try Data(datasetBytes).write(to: combined)
            datasetPath = combined.path
        }

        let paramsFile = runDir.appendingPathComponent("params.json")
        var fields: [String: JSONValue] = [
            "params": .object(params),
            "events": .array(job.request.template.events.map { .string($0) }),
            "outcomeWeights": .object(job.request.weights.weights.mapValues { .double($0) }),
            "evaluation": .from(job.request.template.evaluation),
        ]
        if let tuning = job.request.template.tuning {
            // The trial configurations, chosen here (the same on every machine); the trainer runs
            // them and reports each in trials.json, then trains the version with the best.
            let trials = tuning.configurations(seed: job.request.template.evaluation.seed).enumerated().map { i, c in
                JSONValue.object(["trial": .int(i + 1), "params": .object(c)])
            }
            fields["tuning"] = .object(["metric": .string(tuning.metric), "goal": .string(tuning.goal.rawValue), "refit": .bool(tuning.refit),
                                        "trials": .array(trials)])
        }
        let payload = JSONValue.object(fields)
        try Data(payload.canonicalText.utf8).write(to: paramsFile)

        var environment = withoutSecrets(job.environment)
        for (k, v) in env { environment[k] = v }
        environment["HOME"] = home.path
        environment["CAIRN_DATASET"] = datasetPath
        environment["CAIRN_PARAMS"] = paramsFile.path
        environment["CAIRN_OUTPUT"] = output.path
        environment["CAIRN_RUN_ID"] = String(job.runID)
        environment["CAIRN_MODEL"] = job.model
        environment["CAIRN_VERSION"] = String(job.expectedVersion)
        environment["CAIRN_FEEDBACK_SAMPLES"] = String(job.feedback.rows.count)

        environment["CAIRN_REPOSITORY"] = snapshot.path
        // The command runs from the manifest folder, where the template's relative paths point.
        let workingDirectory = job.request.manifestRoot.map { snapshot.appendingPathComponent($0) } ?? snapshot

        return Prepared(runDir: runDir, output: output, workingDirectory: workingDirectory,
                        environment: environment, datasetHash: sha256Hex(datasetBytes), learned: Dataset.learned(datasetBytes, job.feedback))
    }

    /// The worker's environment without the secrets (nor where their files are, `CAIRN_…_FILE`).
    static func withoutSecrets(_ environment: [String: String]) -> [String: String] {
        environment.filter { key, _ in
            !secrets.contains(key) && !(key.hasSuffix("_FILE") && secrets.contains(String(key.dropLast("_FILE".count))))
        }
    }

    enum Ending { case exit, uncaughtSignal, timeout, cancelled }

    /// Runs the command with stdout and stderr merged into a bounded log.
    static func run(_ command: [String], in dir: URL, environment: [String: String], timeout: ManifestDuration,
                    isolation: TrainerIsolation, stop: StopFlag, cancelled: () -> Bool = { false }) throws -> (Int32, Ending, String) {
        let process = Process()
        let (executable, arguments) = isolation.wrap(command)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = dir
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        let collector = BoundedLog(limit: logLimit)
        let reader = Thread {
            let handle = pipe.fileHandleForReading
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                collector.append(chunk)
            }
            collector.finish()
        }
        do {
            try process.run()
        } catch {
            throw CairnError("cannot start \(command.joined(separator: " ")): \(error.localizedDescription)")
        }
        reader.start()
        // The trainer leads its own process group (Foundation starts children that way), so
        // signalling -pid reaches everything it started, such as `sleep` under `sh`.
        let group = -process.processIdentifier
        let deadline = Date().addingTimeInterval(Double(timeout.seconds))
        var timedOut = false, wasCancelled = false
        while done.wait(timeout: .now() + 0.2) == .timedOut {
            if !stop.isSet, cancelled() { wasCancelled = true }
            if stop.isSet || wasCancelled || Date() >= deadline {
                timedOut = !stop.isSet && !wasCancelled
                kill(group, SIGTERM)
                if done.wait(timeout: .now() + 5) == .timedOut {
                    kill(group, SIGKILL)
                    done.wait()
                }
                break
            }
        }
        // Leftover children would hold the output pipe open (and outlive the run): end them.
        kill(group, SIGKILL)
        collector.waitFinished(timeout: 5)
        let ending: Ending = wasCancelled ? .cancelled : timedOut ? .timeout : (process.terminationReason == .uncaughtSignal ? .uncaughtSignal : .exit)
        return (process.terminationStatus, ending, collector.text)
    }

    /// Opens a file a trainer may have written, for reading: refused when it is a symbolic link
    /// (O_NOFOLLOW) or anything but a regular file (a FIFO would block the worker).
    static func openRegularFile(_ path: String) -> FileHandle? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            return nil
        }
        return FileHandle(fileDescriptor: fd, closeOnDealloc: true)
    }

    /// The trials a contract trainer ran (`trials.json` in its output: `[{"trial": 1, "metrics":
    /// {…}, "seconds": 2.5}, …]`), checked against the configurations it was given; Cairn picks
    /// the best by the template's metric. Nil when the template does not tune.
    static func readTrials(_ output: URL, _ template: Template, log: String) throws -> TuningResult? {
        guard let tuning = template.tuning else { return nil }
        let file = output.appendingPathComponent("trials.json")
        var info = stat()
        guard lstat(file.path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, let handle = openRegularFile(file.path),
              let data = try? handle.readToEnd() ?? Data() else {
            throw TrainerFailure("the template tunes, but the trainer wrote no trials.json to CAIRN_OUTPUT: run each configuration of "
                                 + "params.json's tuning.trials and report [{\"trial\": 1, \"metrics\": {…}, \"seconds\": …}, …] (docs/trainers.md)", log: log)
        }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: data), case let .array(items) = value else {
            throw TrainerFailure("trials.json is not a JSON list of trials", log: log)
        }
        let given = tuning.configurations(seed: template.evaluation.seed)
        var trials: [TuningTrial] = []
        for (i, item) in items.enumerated() {
            guard case let .object(o) = item, case let .int(n)? = o["trial"], (1...given.count).contains(n), case let .object(m)? = o["metrics"] else {
                throw TrainerFailure("trials.json[\(i)] is not {\"trial\": 1…\(given.count), \"metrics\": {…}}", log: log)
            }
            if trials.contains(where: { $0.trial == n }) { throw TrainerFailure("trials.json reports trial \(n) twice", log: log) }
            let metrics = try finiteNumbers(m, "trials.json[\(i)].metrics", log: log)
            var seconds = 0.0
            if case let .double(s)? = o["seconds"] { seconds = s } else if case let .int(s)? = o["seconds"] { seconds = Double(s) }
            trials.append(TuningTrial(trial: n, params: given[n - 1], metrics: metrics, seconds: seconds))
        }
        guard let best = tuning.best(of: trials.sorted { $0.trial < $1.trial }) else {
            throw TrainerFailure("trials.json has no trial that reports \(tuning.metric)", log: log)
        }
        return TuningResult(metric: tuning.metric, goal: tuning.goal, trials: trials.sorted { $0.trial < $1.trial }, chosen: best.trial, refit: tuning.refit)
    }

    /// A trainer's metrics object as numbers; anything but a finite number fails the run.
    static func finiteNumbers(_ fields: [String: JSONValue], _ what: String, log: String) throws -> [String: Double] {
        var metrics: [String: Double] = [:]
        for (name, value) in fields {
            switch value {
            case let .int(i): metrics[name] = Double(i)
            case let .double(d) where d.isFinite: metrics[name] = d
            default: throw TrainerFailure("\(what)\(what.hasSuffix(":") ? " " : ".")\(name) is not a finite number", log: log)
            }
        }
        return metrics
    }

    static func readMetrics(_ file: URL, expected: [String], log: String) throws -> [String: Double] {
        // The trainer wrote this file: never follow a link it may have put there instead.
        var info = stat()
        if lstat(file.path, &info) == 0, info.st_mode & S_IFMT != S_IFREG {
            throw TrainerFailure("metrics.json is not a regular file (a link or a folder); write the metrics into the file itself", log: log)
        }
        // Opened without following a link, in case one replaced the file after that look.
        guard let handle = openRegularFile(file.path), let data = try? handle.readToEnd() ?? Data() else {
            throw TrainerFailure("trainer wrote no metrics.json to CAIRN_OUTPUT", log: log)
        }
        guard let object = try? JSONDecoder().decode(JSONValue.self, from: data), case let .object(fields) = object else {
            throw TrainerFailure("metrics.json is not a JSON object such as {\"ndcg@10\": 0.31}", log: log)
        }
        let metrics = try finiteNumbers(fields, "metrics.json:", log: log)
        let missing = expected.filter { metrics[$0] == nil }
        if !missing.isEmpty {
            throw TrainerFailure("metrics.json lacks \(missing.joined(separator: ", ")) (the template's evaluation lists them)", log: log)
        }
        return metrics
    }

    static func makeWritable(_ url: URL) throws {
        guard let e = FileManager.default.enumerator(atPath: url.path) else { return }
        chmod(url.path, 0o755)
        while let relative = e.nextObject() as? String {
            chmod(url.path + "/" + relative, 0o755)
        }
    }
}

/// Keeps the last `limit` bytes of a stream.
final class BoundedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    private var dropped = 0
    private let limit: Int
    private let finished = DispatchSemaphore(value: 0)

    init(limit: Int) { self.limit = limit }

    func append(_ chunk: Data) {
        lock.lock()
        data.append(chunk)
        if data.count > limit {
            dropped += data.count - limit
            data = data.suffix(limit)
        }
        lock.unlock()
    }

    func finish() { finished.signal() }

    /// Waits for end-of-file, at most `timeout` seconds (a process outside the group may still hold the pipe).
    func waitFinished(timeout: Double) { _ = finished.wait(timeout: .now() + timeout) }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        let body = String(decoding: data, as: UTF8.self)
        return dropped > 0 ? "[\(dropped) earlier bytes not kept]\n" + body : body
    }
}
