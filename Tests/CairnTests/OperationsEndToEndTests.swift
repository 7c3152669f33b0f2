import CairnCore
import CairnStore
import Foundation
import GRDB
import Testing

/// Day-2 operations end to end, as an operator runs them: a long-running worker with
/// concurrency stopped by a signal, `reconcile --wait` waiting for other workers and timing out,
/// `validate --exclude`, colour on a terminal and `NO_COLOR`.
@Suite struct OperationsEndToEndTests {
    let helpers = WorkerEndToEndTests()

    /// A repository with two exec-trained models whose trainer says it started, then holds.
    func holdingRepo(_ markers: TempDir) throws -> (GitFixture, String) {
        chmod(markers.path, 0o777)
        let script = """
            : > "$MARKERS/$CAIRN_MODEL.started"
            sleep 4343
            echo '{"auc": 0.8}' > "$CAIRN_OUTPUT/metrics.json"

            """
        let models = ["m-one", "m-two"].map { name in
            helpers.execTemplate("t-\(name)", script: "hold.sh", env: "{MARKERS: \(markers.path)}") + "---\n" + helpers.activeModel(name, template: "t-\(name)")
        }.joined(separator: "---\n")
        return try helpers.execRepo(extraFiles: ["trainers/hold.sh": script, "models.yaml": models])
    }

    func runStates(_ db: String) throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try RegistryDatabase(path: db).recentRuns().filter { $0.model.hasPrefix("m-one") || $0.model.hasPrefix("m-two") }
            .map { ($0.model, $0.state) })
    }

    /// `cairn worker --concurrency 2` runs two trainers at once; SIGTERM (and SIGINT) stops them
    /// and hands both runs back to the queue, and the worker exits 0.
    @Test(arguments: [SIGTERM, SIGINT])
    func aLongRunningWorkerRunsConcurrentlyAndHandsRunsBackOnASignal(_ signal: Int32) throws {
        let markers = TempDir("cairn-hold")
        let (repo, db) = try holdingRepo(markers)
        #expect(try cairn(["reconcile", "--repo", repo.path, "--db", db]).status == 0)
        let log = markers.path + "/worker.log"
        let worker = try CairnProcess(["worker", "--concurrency", "2", "--repo", repo.path, "--db", db], log: log)
        defer { worker.stop() }
        let deadline = Date().addingTimeInterval(60)
        let started = { ["m-one", "m-two"].allSatisfy { FileManager.default.fileExists(atPath: markers.path + "/\($0).started") } }
        while !started(), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        try #require(started(), "both trainers running at once (concurrency 2)")
        #expect(try runStates(db) == ["m-one": "running", "m-two": "running"])
        kill(worker.process.processIdentifier, signal)
        worker.process.waitUntilExit()
        #expect(worker.process.terminationReason == .exit && worker.process.terminationStatus == 0,
                "\(worker.process.terminationStatus): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        #expect(try runStates(db) == ["m-one": "queued", "m-two": "queued"], "both runs handed back")
        #expect(try RedTeamTests.processes("sleep 4343", running: false, within: 10), "a trainer outlived its worker")
        #expect(try cairn(["audit", "verify", "--db", db]).status == 0)
    }

    /// `reconcile --wait --no-train` waits for another worker: with none it times out saying so;
    /// with `cairn worker` running elsewhere it converges.
    @Test func reconcileWaitWithoutTrainingWaitsForOtherWorkers() throws {
        let fleet = try ReconcileEndToEndTests.Fleet()
        let alone = try fleet.run(["reconcile", "--wait", "--no-train", "--timeout", "2s", "--no-color"])
        #expect(alone.status == 1)
        #expect(alone.stderr.contains("timed out after 2s before converging:") && alone.stderr.contains("training runs queued"), "\(alone.stderr)")
        #expect(alone.stderr.contains("hint: a worker must run them: start `cairn worker`, or drop --no-train"), "\(alone.stderr)")
        let worker = try CairnProcess(["worker", "--repo", fleet.repo.path, "--db", fleet.dbPath], env: Registry.env)
        defer { worker.stop() }
        let waited = try cairn(["reconcile", "--wait", "--no-train", "--timeout", "5m", "--no-color", "--repo", fleet.repo.path, "--db", fleet.dbPath],
                               cwd: fleet.repo.path, env: Registry.env)
        #expect(waited.status == 3, "converged, the manual shadow still blocked: \(waited.stdout)\(waited.stderr)")
        #expect(waited.stdout.contains("Converged after "), "\(waited.stdout)")
        #expect(try fleet.database().observedState().targets["acme-search"]?.routes.isEmpty == false, "trained by the other worker and promoted")
    }

    /// `validate --exclude` skips a folder by name or by repository path, in every mode.
    @Test func validateExcludeSkipsFolders() throws {
        let repo = try GitFixture()
        try repo.copyExamples()
        repo.write("vendor/broken.yaml", "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: broken}\nspec: {template: nope}\n")
        repo.write("models/drafts/broken.yaml", "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: broken-2}\nspec: {template: nope}\n")
        try repo.commit("vendored and draft manifests")
        #expect(try cairn(["validate", "--repo", repo.path]).status == 1)
        for mode in [[], ["--worktree"], ["--staged"]] {
            let result = try cairn(["validate", "--repo", repo.path, "--exclude", "vendor", "--exclude", "models/drafts"] + mode, cwd: repo.path)
            #expect(result.status == 0, "\(mode): \(result.stdout)\(result.stderr)")
        }
        // By path, not by name: a folder named `drafts` elsewhere is read.
        let byName = try cairn(["validate", "--repo", repo.path, "--exclude", "vendor", "--exclude", "drafts"])
        #expect(byName.status == 0)
        let onlyVendor = try cairn(["validate", "--repo", repo.path, "--exclude", "vendor", "--no-color"])
        #expect(onlyVendor.status == 1 && onlyVendor.stdout.contains("models/drafts/broken.yaml"), "\(onlyVendor.stdout)")
    }

    /// Colour only on a terminal (a real pseudo-terminal through `script`), never with `NO_COLOR`
    /// or `--no-color`, never in a pipe.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs script(1) from util-linux"))
    func colourOnlyOnATerminalAndNeverWithNoColor() throws {
        let fleet = try ReconcileEndToEndTests.Fleet()
        func onTerminal(_ extra: String, env: [String: String] = [:]) throws -> String {
            // The test runner may set NO_COLOR itself: the command starts without it unless asked.
            let unset = env["NO_COLOR"] == nil ? "/usr/bin/env -u NO_COLOR " : ""
            let command = "\(unset)\(cairnBinary) plan --repo \(fleet.repo.path) --db \(fleet.dbPath) \(extra)"
            return try runProcess("/usr/bin/script", ["-q", "-e", "-c", command, "/dev/null"], env: env.merging(["TERM": "xterm"]) { $1 }).stdout
        }
        let escape = "\u{1B}["
        let coloured = try onTerminal("")
        #expect(coloured.contains(escape), "a terminal gets colour: \(coloured.prefix(300))")
        #expect(try !onTerminal("", env: ["NO_COLOR": "1"]).contains(escape), "NO_COLOR is honoured")
        #expect(try !onTerminal("--no-color").contains(escape))
        #expect(try !fleet.run(["plan"]).stdout.contains(escape), "a pipe gets none")
    }
}
