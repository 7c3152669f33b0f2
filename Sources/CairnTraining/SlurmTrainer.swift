import CairnCore
import CairnReconcile
import Foundation

/// Hands a training run to Slurm as a batch job and follows it to its end.
///
/// The job follows the trainer contract of exec trainers (docs/trainers.md): the same read-only
/// snapshot, `CAIRN_*` variables, output folder and `metrics.json`. The worker submits a batch
/// script it generates in the run folder (`sbatch`), records the job id on the run at once,
/// follows the job (`scontrol`, then `sacct` once the controller has forgotten it), streams its
/// output into the run's log, and records the outcome as soon as it sees it. The script writes
/// the command's exit status into the run folder too: without accounting, Slurm forgets a
/// finished job after MinJobAge (300 s by default), and a worker may have been down that long.
///
/// A worker that is stopped cancels the job (`scancel`) and hands the run back; a worker that is
/// killed leaves the job running, and the next worker to claim the run re-attaches to it. A run
/// superseded while its job runs has its job cancelled.
public struct SlurmTrainer: Sendable {
    public static let version = "slurm-1"
    /// Used when the template sets no `timeout`.
    public static let defaultTimeout = ManifestDuration(seconds: 3600)

    /// The Slurm commands, run with the worker's environment (`SLURM_CONF` and `PATH` decide
    /// which cluster and which binaries).
    public var client: SlurmClient
    /// Seconds between looks at a job (`CAIRN_SLURM_POLL`, default 2).
    public var pollInterval: Double

    public init(client: SlurmClient, pollInterval: Double = 2) {
        self.client = client
        self.pollInterval = pollInterval
    }

    /// The job name of a run: unique to this registry's run folder and host, so that a job an
    /// earlier attempt submitted without recording it can be found and cancelled.
    static func jobName(run: Int, workRoot: URL) -> String {
        let host = ProcessInfo.processInfo.hostName
        return "cairn-run\(run)-" + String(sha256Hex(host + "\n" + workRoot.standardizedFileURL.path).prefix(10))
    }

    public func train(_ job: TrainingJob, spec: Template.SlurmJob, existing: RunJob?, workRoot: URL, stop: StopFlag,
                      reporter: RunReporter) throws -> TrainerOutput {
        let runDir: URL
        let jobID: String
        let command = spec.script.map { ["bash", $0] } ?? spec.command ?? []
        if let existing, existing.scheduler == "slurm" {
            runDir = workRoot.appendingPathComponent(existing.folder)
            jobID = existing.id
        } else {
            let name = Self.jobName(run: job.runID, workRoot: workRoot)
            // An earlier attempt may have submitted a job and died before recording it: no
            // second job runs for one run.
            for leftover in client.jobs(named: name) {
                try? client.cancel(leftover)
            }
            let prepared = try ExecTrainer.prepare(job, params: spec.params, env: spec.env, writable: ["slurm"])
            runDir = prepared.runDir
            try Data((prepared.datasetHash + "\n").utf8).write(to: runDir.appendingPathComponent("dataset.sha256"))
            try JSONEncoder().encode(prepared.learned).write(to: runDir.appendingPathComponent("learned.json"))
            let script = runDir.appendingPathComponent("job.sh")
            try Data(Self.batchScript(run: job.runID, model: job.model, command: command, workingDirectory: prepared.workingDirectory,
                                      slurmDir: runDir.appendingPathComponent("slurm")).utf8).write(to: script)
            let arguments = Self.sbatchArguments(spec, name: name, runDir: runDir, workingDirectory: prepared.workingDirectory,
                                                 isolation: job.isolation) + [script.path]
            jobID = try client.submit(arguments: arguments, environment: prepared.environment)
            do {
                try reporter.submitted(RunJob(scheduler: "slurm", id: jobID, folder: runDir.lastPathComponent))
            } catch {
                // Not recorded (the run is no longer this worker's, or the registry failed): a
                // job nobody knows of must not run on.
                try? client.cancel(jobID)
                reporter.jobEnded()
                throw error
            }
        }
        let slurmDir = runDir.appendingPathComponent("slurm")
        let log = BoundedLog(limit: ExecTrainer.logLimit)
        // The job may write its folder: the output file is opened once, never through a link,
        // and read from that open file (which Slurm keeps writing) whatever the path becomes.
        var outputFile: FileHandle?
        defer { try? outputFile?.close() }
        func readLog() {
            if outputFile == nil { outputFile = ExecTrainer.openRegularFile(slurmDir.appendingPathComponent("output.log").path) }
            guard let outputFile else { return }
            while let chunk = try? outputFile.read(upToCount: 1 << 16), !chunk.isEmpty {
                log.append(chunk)
            }
        }

        // Follow the job until it ends, the run is cancelled, or the worker stops.
        let stopped = Wakeup()
        stop.wakes(stopped)
        let clock = SystemClock()
        var state: SlurmJobState?
        var unreachableSince: Date?
        var lastPending: String?
        while true {
            readLog()
            if stop.isSet || reporter.isCancelled {
                let stopping = stop.isSet
                try? client.cancel(jobID)
                if client.waitGone(jobID, seconds: 30) { reporter.jobEnded() }
                readLog()
                reporter.progress(log: log.text)
                if stopping { throw TrainingInterrupted() }
                throw RunCancelled()
            }
            var ended = false
            switch client.state(of: jobID) {
            case let .known(s):
                unreachableSince = nil
                if !s.isActive {
                    state = s
                    ended = true
                } else if s.name == "PENDING", s.reason != lastPending {
                    lastPending = s.reason
                    log.append(Data("[cairn] slurm job \(jobID) pending: \(s.reason ?? "waiting")\n".utf8))
                }
            case .forgotten:
                state = nil
                ended = true
            case let .unreachable(message):
                // The controller may be restarting: keep following, but not forever.
                let since = unreachableSince ?? Date()
                unreachableSince = since
                if Date().timeIntervalSince(since) > 600 {
                    throw TrainerFailure("cannot reach Slurm for 10 minutes while following job \(jobID): \(message)", log: log.text)
                }
                reporter.progress(log: log.text)
                clock.wait(on: stopped, until: clock.now() + pollInterval)
                continue
            }
            if ended { break }
            reporter.progress(log: log.text)
            clock.wait(on: stopped, until: clock.now() + pollInterval)
        }
        reporter.jobEnded()
        // The output may still be flushed to the shared folder after the state changes.
        readLog()
        let text = log.text
        reporter.progress(log: text)

        let exitStatus = Self.readExitStatus(slurmDir)
        if let failure = Self.failure(job: jobID, state: state, exitStatus: exitStatus, spec: spec) {
            throw TrainerFailure(failure, log: text)
        }
        let output = runDir.appendingPathComponent("output")
        let metrics = try ExecTrainer.readMetrics(output.appendingPathComponent("metrics.json"), expected: job.request.template.evaluation.metrics, log: text)
        guard let hashText = try? String(contentsOf: runDir.appendingPathComponent("dataset.sha256"), encoding: .utf8) else {
            throw CairnError("the run folder \(runDir.path) lost its dataset.sha256")
        }
        let learned = (try? Data(contentsOf: runDir.appendingPathComponent("learned.json"))).flatMap { try? JSONDecoder().decode(LearnedFrom.self, from: $0) }
        return TrainerOutput(metrics: metrics, staging: output, datasetHash: hashText.trimmingCharacters(in: .whitespacesAndNewlines),
                             trainerVersion: "\(Self.version) \(command.joined(separator: " "))", log: text, learned: learned,
                             tuning: try ExecTrainer.readTrials(output, job.request.template, log: text))
    }


    /// Why the job failed, or nil when it succeeded: Slurm's final state when it still knows
    /// the job, else the exit status the script wrote.
    static func failure(job: String, state: SlurmJobState?, exitStatus: Int32?, spec: Template.SlurmJob) -> String? {
        guard let state else {
            switch exitStatus {
            case 0?: return nil
            case let status?: return "slurm job \(job) exited with status \(status)"
            case nil:
                return "slurm job \(job) ended without writing its exit status, and Slurm no longer knows how it ended "
                    + "(without accounting it forgets a job after MinJobAge): it was cancelled, killed at its time limit or out of memory, or its node failed"
            }
        }
        switch state.name {
        case "COMPLETED":
            if let status = exitStatus, status != 0 { return "slurm job \(job) exited with status \(status)" }
            return nil
        case "FAILED":
            if let status = exitStatus ?? state.exitCode, status != 0 { return "slurm job \(job) exited with status \(status)" }
            if let signal = state.signal, signal != 0 { return "slurm job \(job) was killed by signal \(signal)" }
            return "slurm job \(job) failed (\(state.reason ?? "no reason given"))"
        case "TIMEOUT":
            let limit = minutes(spec.timeout ?? defaultTimeout)
            return "slurm job \(job) reached its time limit (\(limit) minute\(limit == 1 ? "" : "s")); raise spec.trainer.timeout or train faster"
        case "OUT_OF_MEMORY":
            return "slurm job \(job) ran out of memory" + (spec.memory.map { " (memory: \($0))" } ?? "") + "; raise spec.trainer.resources.memory"
        case "NODE_FAIL":
            return "the node running slurm job \(job) failed; the run can be tried again by changing retrainToken"
        case "CANCELLED":
            return "slurm job \(job) was cancelled outside Cairn (scancel, or an administrator)"
        case "PREEMPTED":
            return "slurm job \(job) was preempted by a job of higher priority"
        case "BOOT_FAIL":
            return "the node for slurm job \(job) failed to boot"
        case "DEADLINE":
            return "slurm job \(job) reached its deadline before it could run"
        default:
            return "slurm job \(job) ended in state \(state.name)" + (state.reason.map { " (\($0))" } ?? "")
        }
    }

    static func readExitStatus(_ slurmDir: URL) -> Int32? {
        // The job wrote this file: only a small regular file is read, never through a link.
        guard let handle = ExecTrainer.openRegularFile(slurmDir.appendingPathComponent("exit-status").path) else { return nil }
        defer { try? handle.close() }
        guard let data = try? handle.read(upToCount: 64) else { return nil }
        return Int32(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }


    /// Slurm's time limit: whole minutes, rounded up.
    static func minutes(_ d: ManifestDuration) -> Int { max(1, Int((d.seconds + 59) / 60)) }

    /// The `sbatch` arguments for a run (the script's path goes last).
    static func sbatchArguments(_ spec: Template.SlurmJob, name: String, runDir: URL, workingDirectory: URL, isolation: TrainerIsolation) -> [String] {
        var args = ["--parsable", "--job-name=\(name)", "--output=\(runDir.path)/slurm/output.log", "--open-mode=append",
                    "--chdir=\(workingDirectory.path)", "--export=ALL", "--time=\(minutes(spec.timeout ?? defaultTimeout))"]
        if let p = spec.partition { args.append("--partition=\(p)") }
        if let a = spec.account { args.append("--account=\(a)") }
        if let g = spec.gpus, g > 0 { args.append("--gpus=\(g)") }
        if let c = spec.cpus { args.append("--cpus-per-task=\(c)") }
        if let m = spec.memory { args.append("--mem=\(m)") }
        for key in spec.options.keys.sorted() {
            let value = spec.options[key]!
            args.append(Template.SlurmJob.allowedOptions[key] == .flag ? "--\(key)" : "--\(key)=\(value)")
        }
        // Run by root, the job runs as the trainer user, as exec trainers do.
        if case let .otherUser(_, uid, gid) = isolation.mode {
            args += ["--uid=\(uid)", "--gid=\(gid)"]
        }
        return args
    }

    /// The generated batch script: runs the command from the manifest folder and writes its
    /// exit status into the run folder (atomically) for a worker that looks after Slurm forgot.
    static func batchScript(run: Int, model: String, command: [String], workingDirectory: URL, slurmDir: URL) -> String {
        let status = shellQuote(slurmDir.appendingPathComponent("exit-status").path)
        let partial = shellQuote(slurmDir.appendingPathComponent("exit-status.partial").path)
        return """
        #!/bin/bash
        # Generated by Cairn for training run \(run) of Model/\(model). The sbatch options are on
        # sbatch's command line; #SBATCH lines are not read from here.
        cd \(shellQuote(workingDirectory.path)) || exit 125
        \(command.map(shellQuote).joined(separator: " "))
        status=$?
        printf '%s\\n' "$status" > \(partial) && mv -f \(partial) \(status)
        exit "$status"

        """
    }

    /// One word for bash, whatever it holds.
    static func shellQuote(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// A job's state as Slurm reports it.
public struct SlurmJobState: Sendable, Equatable {
    /// `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `TIMEOUT`, `CANCELLED`, `OUT_OF_MEMORY`, `NODE_FAIL`, …
    public var name: String
    public var reason: String?
    public var exitCode: Int32?
    public var signal: Int32?

    /// States a job leaves on its own (it may still run, or run again).
    static let active: Set<String> = ["PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                                      "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"]

    var isActive: Bool { Self.active.contains(name) }

    /// From `scontrol show job -o ID` (`JobState=FAILED Reason=NonZeroExitCode … ExitCode=3:0`).
    static func parse(scontrol line: String) -> SlurmJobState? {
        var fields: [String: String] = [:]
        for word in line.split(separator: " ") {
            guard let eq = word.firstIndex(of: "=") else { continue }
            let key = String(word[..<eq])
            if fields[key] == nil { fields[key] = String(word[word.index(after: eq)...]) }
        }
        guard let name = fields["JobState"] else { return nil }
        return SlurmJobState(name: name, reason: fields["Reason"].flatMap { $0 == "None" ? nil : $0 }, exitCodePair: fields["ExitCode"])
    }

    /// From `sacct -n -P -X -o State,ExitCode` (`CANCELLED by 0|0:15`).
    static func parse(sacct line: String) -> SlurmJobState? {
        let parts = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, let first = parts[0].split(separator: " ").first else { return nil }
        return SlurmJobState(name: String(first), reason: nil, exitCodePair: parts[1])
    }

    init(name: String, reason: String?, exitCodePair: String?) {
        self.name = name
        self.reason = reason
        if let pair = exitCodePair?.split(separator: ":"), pair.count == 2 {
            exitCode = Int32(pair[0])
            signal = Int32(pair[1])
        }
    }
}

/// The Slurm commands Cairn runs: `sbatch`, `scontrol`, `sacct`, `squeue`, `scancel`.
public struct SlurmClient: Sendable {
    /// The environment the commands run with (the worker's: `PATH`, `SLURM_CONF`).
    public var environment: [String: String]

    public init(environment: [String: String]) { self.environment = environment }

    public enum Lookup: Sendable, Equatable {
        case known(SlurmJobState)
        /// The controller no longer has the job (it ended more than MinJobAge ago) and there is no accounting.
        case forgotten
        /// Slurm did not answer.
        case unreachable(String)
    }

    struct Result {
        var status: Int32
        var output: String
        var error: String
    }

    /// Runs a Slurm command (looked up on PATH) with a time limit; nil when it could not start.
    func run(_ program: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Double = 60) -> Result? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        process.environment = environment ?? self.environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        guard (try? process.run()) != nil else { return nil }
        let outData = Locked(Data()), errData = Locked(Data())
        let readers = DispatchGroup()
        for (pipe, sink) in [(out, outData), (err, errData)] {
            readers.enter()
            Thread.detachNewThread {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                sink.update { $0 = data }
                readers.leave()
            }
        }
        if done.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            done.wait()
        }
        _ = readers.wait(timeout: .now() + 5)
        return Result(status: process.terminationStatus, output: String(decoding: outData.value, as: UTF8.self),
                      error: String(decoding: errData.value, as: UTF8.self))
    }

    /// Submits a batch job; returns its id.
    func submit(arguments: [String], environment: [String: String]) throws -> String {
        guard let result = run("sbatch", arguments, environment: environment) else {
            throw CairnError("cannot run sbatch: is Slurm installed on this worker (slurm-client) and on its PATH?")
        }
        let id = result.output.split(separator: "\n").first.map { String($0.split(separator: ";")[0]) }?.trimmingCharacters(in: .whitespaces) ?? ""
        guard result.status == 0, !id.isEmpty, id.allSatisfy(\.isNumber) else {
            let message = result.error.trimmingCharacters(in: .whitespacesAndNewlines)
            throw TrainerFailure("sbatch refused the job: " + (message.isEmpty ? "exit status \(result.status)" : message), log: "")
        }
        return id
    }

    /// The job's state now: from the controller, else from accounting.
    public func state(of id: String) -> Lookup {
        guard let result = run("scontrol", ["show", "job", "-o", id]) else { return .unreachable("cannot run scontrol") }
        if result.status == 0, let state = result.output.split(separator: "\n").lazy.compactMap({ SlurmJobState.parse(scontrol: String($0)) }).first {
            return .known(state)
        }
        guard result.error.contains("Invalid job id") else {
            return .unreachable(result.error.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        // The controller forgot it: accounting may still know (when the cluster has it).
        if let acct = run("sacct", ["-n", "-P", "-X", "-j", id, "-o", "State,ExitCode"]), acct.status == 0,
           let state = acct.output.split(separator: "\n").lazy.compactMap({ SlurmJobState.parse(sacct: String($0)) }).first {
            return .known(state)
        }
        return .forgotten
    }

    /// Ids of pending or running jobs with this name.
    func jobs(named name: String) -> [String] {
        guard let result = run("squeue", ["-h", "--name=\(name)", "-o", "%i"]), result.status == 0 else { return [] }
        return result.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Cancels a job (a finished job is left as it is).
    public func cancel(_ id: String) throws {
        guard let result = run("scancel", [id]) else { throw CairnError("cannot run scancel") }
        if result.status != 0, !result.error.contains("already completed"), !result.error.contains("Invalid job id") {
            throw CairnError("scancel \(id) failed: \(result.error.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Waits until the job is no longer pending or running; false if it still is after `seconds`.
    func waitGone(_ id: String, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            switch state(of: id) {
            case let .known(s) where s.isActive: break
            case .unreachable: break
            default: return true
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return false
    }
}
