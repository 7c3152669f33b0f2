import CairnCore
import CairnReconcile
import CairnStore
import CairnTesting
@testable import CairnTraining
import Foundation
import Testing

/// The Slurm cluster the tests use: the one scripts/test.sh starts (scripts/slurm.sh, as root),
/// named by `SLURM_CONF`. Where it is absent the Slurm tests skip; CI always has it
/// (`CAIRN_REQUIRE_SLURM=1` turns a missing cluster into a failure).
enum TestSlurm {
    static let available: Bool = {
        guard ProcessInfo.processInfo.environment["CAIRN_TEST_SLURM"] == "1" else { return false }
        return (try? runProcess("/usr/bin/env", ["sinfo", "-h", "-o", "%T"]).status) == 0
    }()

    static let skipMessage: Comment = "no Slurm cluster: run as root with scripts/test.sh, which starts a single-node one (scripts/slurm.sh)"

    /// `scontrol show job` of a job, parsed.
    static func state(_ id: String) -> SlurmJobState? {
        if case let .known(state) = SlurmClient(environment: ProcessInfo.processInfo.environment).state(of: id) { return state }
        return nil
    }

    /// Waits until `condition` holds, at most `seconds`.
    static func waitUntil(_ seconds: Double, _ condition: () throws -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? condition()) == true { return true }
            Thread.sleep(forTimeInterval: 0.2)
        }
        return (try? condition()) == true
    }
}

/// A `cairn` process left running (a worker), its output in a file; stopped with a signal.
final class Background: @unchecked Sendable {
    let process = Process()
    let outputPath: String

    init(_ arguments: [String], env: [String: String] = [:], scratch: TempDir) throws {
        process.executableURL = URL(fileURLWithPath: cairnBinary)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in env { environment[k] = v }
        process.environment = environment
        outputPath = scratch.path + "/bg-\(UUID().uuidString.prefix(8)).log"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits for the process to end.
    func stop(_ signal: Int32 = SIGTERM) {
        if process.isRunning { kill(process.processIdentifier, signal) }
        process.waitUntilExit()
    }

    deinit { stop(SIGKILL) }
}

@Suite(.serialized) struct SlurmTests {
    /// The test command starts Slurm when it runs as root (CI does): a run that asked for it
    /// (CAIRN_REQUIRE_SLURM=1) and did not get it fails here instead of skipping quietly.
    @Test func theTestClusterIsThereWhenRequired() {
        if ProcessInfo.processInfo.environment["CAIRN_REQUIRE_SLURM"] == "1" {
            #expect(TestSlurm.available, "CAIRN_REQUIRE_SLURM=1 but no Slurm cluster answers (SLURM_CONF=\(ProcessInfo.processInfo.environment["SLURM_CONF"] ?? "unset"))")
        }
    }

    /// Secrets a worker may hold: none may reach a job.
    static let secretEnv = ["CAIRN_SIGNING_KEY": "736c75726d2d7365637265742d6b65792d3132", "CAIRN_WEBHOOK_SECRET": "whsec-slurm-8181",
                            "CAIRN_GIT_TOKEN": "ghs-slurm-8282", "PGPASSWORD": "pg-slurm-8383"]
    /// Jobs are looked at every half second in the tests.
    static let env = ["CAIRN_SLURM_POLL": "0.5"]

    static func template(_ name: String, script: String, timeout: String = "5m", marks: String, extra: String = "") -> String {
        """
        apiVersion: cairn/v1
        kind: Template
        metadata: {name: \(name)}
        spec:
          events: [click]
          outcomeWeights: w
          dataset: {path: data/i.csv}
          trainer:
            kind: slurm
            command: [sh, trainers/\(script)]
            timeout: \(timeout)
            resources: {cpus: 1, memory: 100M}
            options: {comment: cairn-test, nice: 0}
            env: {MARKS: "\(marks)"}
            params: {depth: 3}\(extra)
          evaluation: {metrics: [auc], holdout: 0.25, seed: 5}

        """
    }

    /// A repository of Slurm-trained models, one per trainer script; `marks` is a folder every
    /// job can write (the job runs as the trainer user), where scripts leave what the test reads.
    static func repo(_ models: [(name: String, script: String, timeout: String)], marks: TempDir) throws -> (GitFixture, String) {
        chmod(marks.path, 0o777)
        let repo = try GitFixture()
        var files: [String: String] = [
            "data/i.csv": "user_id,item_id,event,timestamp\nu1,a,click,1793491200\n",
            "w.yaml": weightsDoc,
            "trainers/ok.sh": """
                echo "training on slurm job $SLURM_JOB_ID"
                env | sort > "$CAIRN_OUTPUT/env.txt"
                echo '{"auc": 0.7}' > "$CAIRN_OUTPUT/metrics.json"

                """,
            "trainers/fail.sh": "echo loading data\necho 'boom: the data is bad' >&2\nexit 3\n",
            "trainers/forever.sh": "echo started\nsleep 600\n",
            // Attack: swaps the job's output file (in a folder it may write) for a link to a
            // file beside the registry it cannot read, hoping the worker reads it into the log.
            "trainers/swap.sh": """
                echo "a harmless line"
                rm -f ../slurm/output.log
                ln -s ../../secret.txt ../slurm/output.log
                echo '{"auc": 0.5}' > "$CAIRN_OUTPUT/metrics.json"
                sleep 2

                """,
            // Counts its model's starts; waits for the test's go-ahead for its model (at most
            // 60 s), then succeeds.
            "trainers/gated.sh": """
                echo "$SLURM_JOB_ID" >> "$MARKS/starts-$CAIRN_MODEL"
                echo "job $SLURM_JOB_ID waiting for the go-ahead"
                i=0
                while [ ! -e "$MARKS/go-$CAIRN_MODEL" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
                echo "job $SLURM_JOB_ID going on"
                echo '{"auc": 0.8}' > "$CAIRN_OUTPUT/metrics.json"

                """,
        ]
        var docs: [String] = []
        for model in models {
            docs.append(template("t-\(model.name)", script: model.script, timeout: model.timeout, marks: marks.path))
            docs.append("apiVersion: cairn/v1\nkind: Model\nmetadata: {name: \(model.name)}\nspec: {template: t-\(model.name), lifecycle: active}\n")
        }
        files["models.yaml"] = docs.joined(separator: "---\n")
        try repo.commit("slurm trainers", files: files)
        return (repo, repo.dir.url.appendingPathComponent(".cairn/cairn.db").path)
    }

    static func runs(_ db: String) throws -> [String: RegistryDatabase.RunSummary] {
        Dictionary(try RegistryDatabase(path: db).recentRuns(limit: 100).map { ($0.model, $0) }, uniquingKeysWith: { a, b in a.id > b.id ? a : b })
    }

    static func jobID(_ run: RegistryDatabase.RunSummary?) -> String? {
        run?.job.flatMap { $0.split(separator: " ").last.map(String.init) }
    }

    @Test(.enabled(if: TestSlurm.available, TestSlurm.skipMessage))
    func aSlurmRunBecomesAVersionWithItsMetrics() throws {
        let marks = TempDir("cairn-slurm-marks")
        let (repo, db) = try Self.repo([("m-ok", "ok.sh", "5m")], marks: marks)
        #expect(try cairn(["reconcile", "--repo", repo.path, "--db", db]).status == 0)
        let worker = try cairn(["worker", "--once", "--repo", repo.path, "--db", db], env: Self.env.merging(Self.secretEnv) { a, _ in a })
        #expect(worker.status == 0, "\(worker.stderr)")
        #expect(worker.stdout.contains("1 run succeeded, 0 failed."), "\(worker.stdout)\(worker.stderr)")
        let run = try #require(try Self.runs(db)["m-ok"])
        let job = try #require(Self.jobID(run), "the run records its job")
        #expect(worker.stderr.contains("training run \(run.id) handed to slurm job \(job)"), "\(worker.stderr)")
        // Slurm ran it, and saw it complete.
        #expect(TestSlurm.state(job)?.name == "COMPLETED")
        let version = try #require(try RegistryDatabase(path: db).versions(of: "m-ok")?.first)
        #expect(version.metrics == ["auc": 0.7])
        #expect(version.trainerVersion == "slurm-1 sh trainers/ok.sh")
        #expect(version.datasetHash == sha256Hex(Array("user_id,item_id,event,timestamp\nu1,a,click,1793491200\n".utf8)))
        // The contract's variables reached the job; no secret did.
        let artifact = repo.dir.url.appendingPathComponent(".cairn/artifacts/\(try #require(version.artifactHash))")
        let env = try String(contentsOf: artifact.appendingPathComponent("env.txt"), encoding: .utf8)
        for name in ["CAIRN_DATASET=", "CAIRN_PARAMS=", "CAIRN_OUTPUT=", "CAIRN_MODEL=m-ok", "CAIRN_VERSION=1", "SLURM_JOB_ID=\(job)", "MARKS="] {
            #expect(env.contains("\n" + name) || env.hasPrefix(name), "missing \(name)")
        }
        for (name, value) in Self.secretEnv {
            #expect(!env.contains(name + "=") && !env.contains(value), "\(name) reached the job")
        }
        if getuid() == 0 {
            // Run by root, the job ran as the trainer user, as exec trainers do.
            #expect(env.contains("\nUSER=nobody") || env.contains("\nLOGNAME=nobody") || env.contains("SLURM_JOB_USER=nobody"), "\(env)")
        }
        // The job's output is the run's log.
        let logs = try cairn(["logs", String(run.id), "--db", db])
        #expect(logs.stdout.contains("training on slurm job \(job)"), "\(logs.stdout)")
        #expect(logs.stderr.contains("succeeded") && logs.stderr.contains("slurm job \(job)"))
        #expect(try cairn(["artifact", "verify", "m-ok@1", "--db", db], env: Self.secretEnv).status == 0)
        let status = try cairn(["status", "--db", db])
        #expect(status.stdout.contains("v1 [slurm job \(job)]"), "\(status.stdout)")
    }

    /// examples/slurm, as the README runs it: the model trains on the cluster with the fleet's
    /// Python trainer and its gate approves the version.
    @Test(.enabled(if: TestSlurm.available, TestSlurm.skipMessage))
    func theSlurmExampleTrainsOnTheCluster() throws {
        let repo = try GitFixture()
        try repo.copyExamples(to: "examples/fleet")
        try FileManager.default.copyItem(at: packageRoot.appendingPathComponent("examples/slurm"), to: repo.dir.url.appendingPathComponent("examples/slurm"))
        try repo.commit("the fleet and the Slurm example")
        let db = repo.dir.url.appendingPathComponent(".cairn/cairn.db").path
        let reconcile = try cairn(["reconcile", "--repo", repo.path, "--path", "examples/slurm", "--db", db, "--wait", "--timeout", "5m"], env: Self.env)
        #expect(reconcile.status == 0, "\(reconcile.stdout)\(reconcile.stderr)")
        #expect(reconcile.stderr.contains("handed to slurm job"), "\(reconcile.stderr)")
        let version = try #require(try RegistryDatabase(path: db).versions(of: "search-slurm")?.first)
        #expect(version.status == .approved && (version.metrics["ndcg@10"] ?? 0) > 0.01 && version.metrics["hit_rate@10"] != nil, "\(version)")
        #expect(version.trainerVersion == "slurm-1 python3 ../fleet/train/train.py")
        // The job ran the template's tuning trials and trained the best; Cairn recorded each.
        let tuning = try #require(version.tuning, "the Slurm job reported its trials")
        #expect(tuning.trials.map { $0.params["min_support"] } == [.int(1), .int(2), .int(3)] && version.metrics == tuning.chosenTrial?.metrics)
    }

    /// Attack: the job replaces its output file with a link to a file only the worker may read
    /// (here a secret beside the registry: the signing key would do as well). The worker reads
    /// the job's output as it streams it; it must never follow the link.
    @Test(.enabled(if: TestSlurm.available && getuid() == 0, "the job runs as another user only when cairn runs as root"))
    func aJobCannotMakeTheWorkerReadAFileIntoTheLog() throws {
        let marks = TempDir("cairn-slurm-marks")
        let (repo, db) = try Self.repo([("m-swap", "swap.sh", "5m")], marks: marks)
        #expect(try cairn(["reconcile", "--repo", repo.path, "--db", db]).status == 0)
        // runs/run-1-1/slurm/../../secret.txt: beside the registry, readable by root only.
        let secret = URL(fileURLWithPath: db).deletingLastPathComponent().appendingPathComponent("runs/secret.txt")
        try FileManager.default.createDirectory(at: secret.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("TOPSECRET-5ee1-not-for-logs\n".utf8).write(to: secret)
        chmod(secret.path, 0o600)
        let worker = try cairn(["worker", "--once", "--repo", repo.path, "--db", db], env: Self.env)
        #expect(worker.status == 0, "\(worker.stderr)")
        let run = try #require(try Self.runs(db)["m-swap"])
        let logs = try cairn(["logs", String(run.id), "--db", db])
        #expect(!logs.stdout.contains("TOPSECRET") && !logs.stderr.contains("TOPSECRET"), "the worker followed the job's link: \(logs.stdout)")
        #expect(!worker.stdout.contains("TOPSECRET") && !worker.stderr.contains("TOPSECRET"))
        // The job only spoiled its own log: its run is judged as any other.
        #expect(run.state == "succeeded", "\(run)")
    }

    /// A job that exits non-zero, one Slurm ends at its time limit and one cancelled outside
    /// Cairn: each run fails with its own reason, as soon as the worker sees it.
    @Test(.enabled(if: TestSlurm.available, TestSlurm.skipMessage))
    func failingTimedOutAndCancelledJobsGetTheirReasons() throws {
        let marks = TempDir("cairn-slurm-marks")
        let (repo, db) = try Self.repo([("m-fail", "fail.sh", "5m"), ("m-slow", "forever.sh", "1m"), ("m-gone", "forever.sh", "10m")], marks: marks)
        #expect(try cairn(["reconcile", "--repo", repo.path, "--db", db]).status == 0)
        let worker = try Background(["worker", "--once", "--concurrency", "3", "--repo", repo.path, "--db", db], env: Self.env, scratch: marks)
        // Cancel m-gone's job from outside once it is recorded and running.
        var gone: String?
        #expect(TestSlurm.waitUntil(60) {
            gone = Self.jobID(try Self.runs(db)["m-gone"])
            return gone.map { TestSlurm.state($0)?.name == "RUNNING" } ?? false
        }, "m-gone's job never ran: \(worker.output)")
        let scancel = try runProcess("/usr/bin/env", ["scancel", try #require(gone)])
        #expect(scancel.status == 0, "\(scancel.stderr)")
        // The time limit: a minute, ended by Slurm within about half a minute after.
        #expect(TestSlurm.waitUntil(180) { !worker.process.isRunning }, "the worker did not finish: \(worker.output)")
        worker.stop()
        let runs = try Self.runs(db)
        let failJob = try #require(Self.jobID(runs["m-fail"])), slowJob = try #require(Self.jobID(runs["m-slow"]))
        #expect(runs["m-fail"]?.reason == "slurm job \(failJob) exited with status 3")
        #expect(runs["m-slow"]?.reason == "slurm job \(slowJob) reached its time limit (1 minute); raise spec.trainer.timeout or train faster")
        #expect(runs["m-gone"]?.reason == "slurm job \(gone!) was cancelled outside Cairn (scancel, or an administrator)")
        #expect(runs.values.allSatisfy { $0.state == "failed" }, "\(runs)")
        let logs = try cairn(["logs", String(runs["m-fail"]!.id), "--db", db])
        #expect(logs.stdout.contains("loading data") && logs.stdout.contains("boom: the data is bad"), "\(logs.stdout)")
        // Rule 6: the failed fingerprint is not retried blindly.
        let plan = try cairn(["plan", "--repo", repo.path, "--db", db, "--no-color"])
        #expect(plan.stdout.contains("training run \(runs["m-slow"]!.id) failed: slurm job \(slowJob) reached its time limit"), "\(plan.stdout)")
    }

    /// The worker is killed while its jobs run; the jobs run on; the next worker re-attaches to
    /// each (at once, without the retry delay): one that is still running (its output streams
    /// on) and one that finished while no worker followed it. One job, one start, each.
    @Test(.enabled(if: TestSlurm.available, TestSlurm.skipMessage))
    func aKilledWorkerIsFollowedByOneThatReattaches() throws {
        let marks = TempDir("cairn-slurm-marks")
        let (repo, db) = try Self.repo([("m-live", "gated.sh", "5m"), ("m-done", "gated.sh", "5m")], marks: marks)
        #expect(try cairn(["reconcile", "--repo", repo.path, "--db", db]).status == 0)
        let args = ["worker", "--repo", repo.path, "--db", db, "--concurrency", "2", "--lease", "3s", "--retry-delay", "10m"]
        let first = try Background(args, env: Self.env, scratch: marks)
        func starts(_ model: String) -> String? { try? String(contentsOf: marks.url.appendingPathComponent("starts-\(model)"), encoding: .utf8) }
        func go(_ model: String) { _ = FileManager.default.createFile(atPath: marks.url.appendingPathComponent("go-\(model)").path, contents: Data()) }
        #expect(TestSlurm.waitUntil(60) { starts("m-live") != nil && starts("m-done") != nil }, "the jobs never started: \(first.output)")
        let runs = try Self.runs(db)
        let live = try #require(Self.jobID(runs["m-live"])), done = try #require(Self.jobID(runs["m-done"]))
        first.stop(SIGKILL)
        // The jobs outlive their worker; one of them ends meanwhile.
        go("m-done")
        #expect(TestSlurm.waitUntil(30) { TestSlurm.state(done)?.name == "COMPLETED" })
        #expect(TestSlurm.state(live)?.name == "RUNNING")
        let second = try Background(args, env: Self.env, scratch: marks)
        defer { second.stop() }
        #expect(TestSlurm.waitUntil(30) { second.output.contains("re-attaching to its slurm job \(live)") }, "\(second.output)")
        #expect(TestSlurm.waitUntil(30) { try Self.runs(db)["m-done"]?.state == "succeeded" }, "\(second.output)")
        go("m-live")
        #expect(TestSlurm.waitUntil(60) { try Self.runs(db)["m-live"]?.state == "succeeded" }, "\(second.output)")
        for (model, job, auc) in [("m-live", live, 0.8), ("m-done", done, 0.8)] {
            let run = try #require(try Self.runs(db)[model])
            #expect(run.attempts == 2 && Self.jobID(run) == job, "\(run)")
            #expect(starts(model) == "\(job)\n", "exactly one job ran for \(model): \(starts(model) ?? "none")")
            #expect(TestSlurm.state(job)?.name == "COMPLETED")
            let version = try #require(try RegistryDatabase(path: db).versions(of: model)?.first)
            #expect(version.metrics == ["auc": auc] && version.runID == run.id)
            // Both halves of the job's output are in the run's log.
            let logs = try cairn(["logs", String(run.id), "--db", db])
            #expect(logs.stdout.contains("job \(job) waiting for the go-ahead") && logs.stdout.contains("job \(job) going on"), "\(logs.stdout)")
        }
    }

    /// The job's output reaches `cairn logs` while the job runs; `logs -f` follows it to the end.
    @Test(.enabled(if: TestSlurm.available, TestSlurm.skipMessage))
    func aRunningJobsOutputStreamsIntoCairnLogs() throws {
        let marks = TempDir("cairn-slurm-marks")
        let (repo, db) = try Self.repo([("m-stream", "gated.sh", "5m")], marks: marks)
        #expect(try cairn(["reconcile", "--repo", repo.path, "--db", db]).status == 0)
        let worker = try Background(["worker", "--repo", repo.path, "--db", db], env: Self.env, scratch: marks)
        defer { worker.stop() }
        #expect(TestSlurm.waitUntil(60) { try Self.runs(db)["m-stream"]?.job != nil }, "no job: \(worker.output)")
        let run = try #require(try Self.runs(db)["m-stream"])
        let job = try #require(Self.jobID(run))
        // While the job waits, its first line is already in the registry.
        #expect(TestSlurm.waitUntil(30) {
            try cairn(["logs", String(run.id), "--db", db]).stdout.contains("job \(job) waiting for the go-ahead")
        }, "the running job's output never reached cairn logs")
        #expect(try Self.runs(db)["m-stream"]?.state == "running")
        let follow = try Background(["logs", "-f", String(run.id), "--db", db], scratch: marks)
        defer { follow.stop() }
        #expect(TestSlurm.waitUntil(10) { follow.output.contains("waiting for the go-ahead") }, "\(follow.output)")
        _ = FileManager.default.createFile(atPath: marks.url.appendingPathComponent("go-m-stream").path, contents: Data())
        #expect(TestSlurm.waitUntil(60) { !follow.process.isRunning }, "logs -f did not end with the run: \(follow.output)")
        #expect(follow.process.terminationStatus == 0)
        let out = follow.output
        #expect(out.contains("job \(job) going on") && out.contains("training run \(run.id) · succeeded"), "\(out)")
        // Each line once.
        #expect(out.components(separatedBy: "waiting for the go-ahead").count == 2, "\(out)")
    }

    /// A commit supersedes a run whose job is running: the job is cancelled and the new run's
    /// job submitted; then stopping the worker cancels that job too and hands its run back.
    @Test(.enabled(if: TestSlurm.available, TestSlurm.skipMessage))
    func aSupersededRunsJobIsCancelledAndSoIsAStoppingWorkersJob() throws {
        let marks = TempDir("cairn-slurm-marks")
        let (repo, db) = try Self.repo([("m-long", "forever.sh", "10m")], marks: marks)
        #expect(try cairn(["reconcile", "--repo", repo.path, "--db", db]).status == 0)
        let worker = try Background(["worker", "--repo", repo.path, "--db", db, "--lease", "6s"], env: Self.env, scratch: marks)
        defer { worker.stop() }
        var first: String?
        #expect(TestSlurm.waitUntil(60) {
            first = Self.jobID(try Self.runs(db)["m-long"])
            return first.map { TestSlurm.state($0)?.name == "RUNNING" } ?? false
        }, "the first job never ran: \(worker.output)")
        let firstRun = try #require(try Self.runs(db)["m-long"]).id
        // A new commit changes the template: its run supersedes the running one.
        let models = repo.dir.url.appendingPathComponent("models.yaml")
        try String(contentsOf: models, encoding: .utf8).replacingOccurrences(of: "params: {depth: 3}", with: "params: {depth: 4}")
            .write(to: models, atomically: true, encoding: .utf8)
        try repo.commit("deeper")
        let reconcile = try cairn(["reconcile", "--repo", repo.path, "--db", db, "--no-color"])
        #expect(reconcile.status == 0 && reconcile.stdout.contains("cancels running run \(firstRun)"), "\(reconcile.stdout)\(reconcile.stderr)")
        #expect(TestSlurm.waitUntil(20) { TestSlurm.state(first!)?.name == "CANCELLED" }, "the superseded job runs on: \(worker.output)")
        let old = try #require(try RegistryDatabase(path: db).runLog(firstRun)?.0)
        #expect(old.state == "cancelled" && old.reason?.hasPrefix("superseded by run \(firstRun + 1)") == true, "\(old)")
        // The new run's job starts; a stopping worker cancels it and hands the run back.
        var second: String?
        #expect(TestSlurm.waitUntil(60) {
            second = Self.jobID(try RegistryDatabase(path: db).runLog(firstRun + 1)?.0)
            return second.map { TestSlurm.state($0)?.name == "RUNNING" } ?? false
        }, "the new run's job never ran: \(worker.output)")
        #expect(second != first)
        worker.stop(SIGTERM)
        #expect(TestSlurm.state(second!)?.name == "CANCELLED", "\(worker.output)")
        let handedBack = try #require(try RegistryDatabase(path: db).runLog(firstRun + 1)?.0)
        #expect(handedBack.state == "queued" && handedBack.reason == "handed back by a stopping worker", "\(handedBack)")
        #expect(worker.output.contains("was cancelled while it trained"), "\(worker.output)")
        // Nothing of the superseded run became a version.
        #expect(try RegistryDatabase(path: db).versions(of: "m-long")?.isEmpty == true)
        #expect(try cairn(["audit", "verify", "--db", db]).status == 0)
    }
}

/// What does not need a cluster: parsing Slurm's answers, the reasons, the generated script and
/// `sbatch` arguments, and the run queue's side of jobs on both registries.
@Suite struct SlurmPartsTests {
    @Test func scontrolAndSacctLinesParse() throws {
        let line = "JobId=2 JobName=f.sh UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:00"
        #expect(SlurmJobState.parse(scontrol: line) == SlurmJobState(name: "FAILED", reason: "NonZeroExitCode", exitCodePair: "3:0"))
        let cancelled = try #require(SlurmJobState.parse(scontrol: "JobId=3 JobState=CANCELLED Reason=None ExitCode=0:15"))
        #expect(cancelled.name == "CANCELLED" && cancelled.reason == nil && cancelled.signal == 15)
        #expect(SlurmJobState.parse(sacct: "CANCELLED by 0|0:15")?.name == "CANCELLED")
        #expect(SlurmJobState.parse(sacct: "OUT_OF_MEMORY|0:125")?.name == "OUT_OF_MEMORY")
        #expect(SlurmJobState.parse(scontrol: "slurm_load_jobs error: Invalid job id specified") == nil)
        #expect(try #require(SlurmJobState.parse(scontrol: "JobId=5 JobState=PENDING Reason=Resources ExitCode=0:0")).isActive)
    }

    @Test func everyEndingHasItsReason() {
        let spec = Template.SlurmJob(command: ["python3"], timeout: ManifestDuration(seconds: 90), memory: "16G")
        func reason(_ state: String?, _ status: Int32?) -> String? {
            SlurmTrainer.failure(job: "7", state: state.map { SlurmJobState(name: $0, reason: nil, exitCodePair: "0:0") }, exitStatus: status, spec: spec)
        }
        #expect(reason("COMPLETED", 0) == nil)
        #expect(reason("COMPLETED", nil) == nil)
        #expect(reason("FAILED", 2) == "slurm job 7 exited with status 2")
        #expect(reason("TIMEOUT", nil) == "slurm job 7 reached its time limit (2 minutes); raise spec.trainer.timeout or train faster")
        #expect(reason("OUT_OF_MEMORY", nil) == "slurm job 7 ran out of memory (memory: 16G); raise spec.trainer.resources.memory")
        #expect(reason("NODE_FAIL", nil) == "the node running slurm job 7 failed; the run can be tried again by changing retrainToken")
        #expect(reason("PREEMPTED", nil) == "slurm job 7 was preempted by a job of higher priority")
        // Slurm forgot the job (no accounting): the exit status the job wrote decides.
        #expect(reason(nil, 0) == nil)
        #expect(reason(nil, 4) == "slurm job 7 exited with status 4")
        #expect(reason(nil, nil)?.hasPrefix("slurm job 7 ended without writing its exit status") == true)
        #expect(SlurmTrainer.failure(job: "7", state: SlurmJobState(name: "FAILED", reason: nil, exitCodePair: "0:9"), exitStatus: nil, spec: spec)
                    == "slurm job 7 was killed by signal 9")
    }

    /// The generated script runs the command word for word, whatever its arguments hold, and
    /// writes its exit status where the worker reads it.
    @Test func theBatchScriptKeepsEveryArgumentAndWritesTheExitStatus() throws {
        let dir = TempDir("cairn-slurm-script")
        let slurmDir = dir.url.appendingPathComponent("slurm")
        try FileManager.default.createDirectory(at: slurmDir, withIntermediateDirectories: true)
        let hostile = ["it's", "$(touch pwned)", "a b\nc", "`id`", "--x=\"y\""]
        let script = SlurmTrainer.batchScript(run: 1, model: "m", command: ["sh", "-c", "printf '%s|' \"$@\" > args; exit 5", "sh"] + hostile,
                                              workingDirectory: dir.url, slurmDir: slurmDir)
        let file = dir.url.appendingPathComponent("job.sh")
        try Data(script.utf8).write(to: file)
        let result = try runProcess("/bin/bash", [file.path])
        #expect(result.status == 5)
        #expect(try String(contentsOf: dir.url.appendingPathComponent("args"), encoding: .utf8) == hostile.map { $0 + "|" }.joined())
        #expect(!FileManager.default.fileExists(atPath: dir.url.appendingPathComponent("pwned").path))
        #expect(SlurmTrainer.readExitStatus(slurmDir) == 5)
    }

    @Test func sbatchGetsTheTemplatesOptionsAndTheTrainerUser() {
        let spec = Template.SlurmJob(command: ["python3", "train.py"], partition: "gpu", account: "ml", timeout: ManifestDuration(seconds: 5400),
                                     gpus: 2, cpus: 8, memory: "32G", options: ["qos": "high", "exclusive": "true", "nice": "5"])
        let args = SlurmTrainer.sbatchArguments(spec, name: "cairn-run4-x", runDir: URL(fileURLWithPath: "/r/run-4-1"),
                                                workingDirectory: URL(fileURLWithPath: "/r/run-4-1/repo"),
                                                isolation: TrainerIsolation(mode: .otherUser(name: "nobody", uid: 65534, gid: 65534)))
        #expect(args == ["--parsable", "--job-name=cairn-run4-x", "--output=/r/run-4-1/slurm/output.log", "--open-mode=append",
                         "--chdir=/r/run-4-1/repo", "--export=ALL", "--time=90", "--partition=gpu", "--account=ml", "--gpus=2",
                         "--cpus-per-task=8", "--mem=32G", "--exclusive", "--nice=5", "--qos=high", "--uid=65534", "--gid=65534"])
    }

    /// The queue's side of jobs, on every registry: the job comes back with a re-claimed run, a
    /// dead worker's run with an open job is queued again at once, its folder is kept, and a job
    /// whose run ended without its worker is listed for cancelling.
    @Test(arguments: Backend.available)
    func theQueueKeepsTrackOfJobs(_ backend: Backend) throws {
        let dir = TempDir("cairn-slurm-queue")
        let db = try backend.fresh(in: dir)
        let holder = LeaseHolder()
        let t0: Int64 = 1_800_000_000
        try ReconcilePass.acquireLease(db, holder, wait: 0, clock: ManualClock(at: Double(t0)))
        let plan = try PlannerCase(name: "01-fresh-fleet").run()
        _ = try db.apply(plan, holder: holder, context: AuditContext(revision: plan.revision, author: "t", actor: "test"), now: { t0 })
        let claimed = try #require(try db.claimRun(holder: "w1", leaseSeconds: 5, now: t0))
        #expect(claimed.job == nil)
        let job = RunJob(scheduler: "slurm", id: "4711", folder: "run-\(claimed.id)-1")
        try db.recordRunJob(claimed.id, holder: "w1", job: job)
        #expect(throws: CairnError.self) { try db.recordRunJob(claimed.id, holder: "w2", job: job) }
        try db.updateRunLog(claimed.id, holder: "w1", log: "epoch 1\n")
        #expect(try db.runLog(claimed.id)?.1 == "epoch 1\n")
        #expect(try db.runLog(claimed.id)?.0.job == "slurm job 4711")
        // What the dashboard reads: summaries by id, and log tails without the whole log.
        #expect(try db.runSummaries(ids: [claimed.id, 999_999]).mapValues(\.job) == [claimed.id: "slurm job 4711"])
        #expect(try db.logTails(ids: [claimed.id], characters: 3) == [claimed.id: " 1\n"])
        // The worker dies: the run is queued again with no delay, and its job's folder is kept.
        #expect(try db.requeueExpiredRuns(now: t0 + 10, baseDelay: 600) == [claimed.id])
        #expect(try db.liveRunFolders(now: t0 + 10).contains("run-\(claimed.id)-1"))
        let again = try #require(try db.claimRun(holder: "w2", leaseSeconds: 5, now: t0 + 11), "re-attaching waits out no retry delay")
        #expect(again.id == claimed.id && again.attempt == 2 && again.job == job)
        #expect(try db.runState(claimed.id)?.holder == "w2")
        #expect(try db.openJobsOfEndedRuns().isEmpty)
        try db.failRun(claimed.id, holder: "w2", reason: "x", now: t0 + 20)
        // Ended with its job still open: listed until a worker cancels it.
        #expect(try db.openJobsOfEndedRuns().map(\.run) == [claimed.id])
        try db.closeRunJob(claimed.id)
        #expect(try db.openJobsOfEndedRuns().isEmpty)
        #expect(!(try db.liveRunFolders(now: t0 + 21).contains("run-\(claimed.id)-1")))
        #expect(try db.stateMismatches().isEmpty, "the job columns are bookkeeping, not state the history must explain")
    }

    /// A run whose job outlived every worker that held it runs out of attempts: the next worker
    /// to look for work cancels the job, once.
    @Test func aJobWhoseRunEndedWithoutItsWorkerIsCancelled() throws {
        let store = InMemoryRegistry()
        let plan = try PlannerCase(name: "01-fresh-fleet").run()
        let holder = LeaseHolder()
        #expect(try store.tryAcquireLease(holder, ttl: 120, now: 1000) == nil)
        _ = try store.apply(plan, holder: holder, context: AuditContext(revision: plan.revision, author: "t", actor: "test"),
                            expectedGeneration: nil, now: { 1000 })
        var now: Int64 = 1000
        let first = try #require(try store.claimRun(holder: "w1", leaseSeconds: 5, now: now))
        try store.recordRunJob(first.id, holder: "w1", job: RunJob(scheduler: "slurm", id: "99", folder: "run-\(first.id)-1"))
        for attempt in 2...3 {
            now += 10
            #expect(try store.requeueExpiredRuns(now: now, baseDelay: 600) == [first.id])
            let again = try #require(try store.claimRun(holder: "w\(attempt)", leaseSeconds: 5, now: now))
            #expect(again.id == first.id && again.job?.id == "99")
        }
        now += 10
        _ = try store.requeueExpiredRuns(now: now, baseDelay: 600)
        #expect(try store.runState(first.id)?.state == "failed")
        let trainer = CancelRecorder()
        let worker = TrainingWorker(store: store, trainer: trainer, artifacts: InMemoryArtifacts(), clock: ManualClock(at: Double(now))) { _ in }
        worker.cancelOrphanedJobs()
        worker.cancelOrphanedJobs()
        #expect(trainer.cancelled.value == ["99"])
        #expect(try store.openJobsOfEndedRuns().isEmpty)
    }
}

/// A trainer that only records the jobs it is asked to cancel.
struct CancelRecorder: TrainerRunner {
    let cancelled = Locked<[String]>([])
    func train(_ run: ClaimedRun, expectedVersion: Int, stop: StopFlag, reporter: RunReporter) throws -> TrainedOutput {
        throw CairnError("not used")
    }
    func cancelJob(_ job: RunJob) throws { cancelled.update { $0.append(job.id) } }
    func cleanUp(_ run: ClaimedRun) {}
    func sweep(keeping live: Set<String>) -> [String] { [] }
}
