import ArgumentParser
import CairnCore
import CairnGit
import CairnRender
import CairnServer
import CairnStore
import CairnTraining
import Foundation

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what reconciling a revision would change. Writes nothing.",
        discussion: """
            Compares the manifests at --revision with the registry database. Exit status: 0, or 1 on error; \
            with --detailed-exitcode, 0 means no changes and 2 means there are changes.
            """
    )

    @OptionGroup var source: SourceOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var planning: PlanningOptions

    @Option(help: "Also save the plan (JSON) to this file, for `cairn apply`.")
    var out: String?

    @Flag(help: "Exit 2 when the plan has changes, 0 when it has none.")
    var detailedExitcode = false

    func run() throws {
        try reportingFailures(format: output.format) {
            DatabaseOptions.repository.path = source.repo
            let plan = try readOnlyPlan(source: source, database: database, planning: planning, output: output)
            if let out {
                do {
                    try Data(PlanRenderer.json(plan).utf8).write(to: URL(fileURLWithPath: out))
                } catch {
                    throw CairnError("cannot write the plan to \(out): \(error.localizedDescription)")
                }
            }
            render(plan, output: output, db: database.db)
            if detailedExitcode, !plan.isEmpty { throw ExitCode(2) }
        }
    }
}

struct Reconcile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plan a revision and apply it to the registry database.",
        discussion: """
            Exit status: 0 applied (or nothing to do), 1 error, invalid revision or --wait timeout, 3 applied but some changes are blocked. \
            With --dry-run nothing is written, not even a history row. With --wait, queued training runs are run (or, with \
            --no-train, awaited) and the revision is reconciled again until nothing is left to do.
            """
    )

    @OptionGroup var source: SourceOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var planning: PlanningOptions
    @OptionGroup var artifacts: ArtifactOptions

    @Flag(help: "Plan only; write nothing.")
    var dryRun = false

    @Option(help: "Seconds to wait for another reconcile holding the applier lease.")
    var lockTimeout: Double = 10

    @Flag(help: "Keep reconciling until converged: training done and nothing left to apply.")
    var wait = false

    @Option(help: "With --wait: give up after this long (90s, 30m, 1h).")
    var timeout: String = "30m"

    @Flag(help: "With --wait: do not run training here; wait for `cairn worker` or `cairn serve` to do it.")
    var noTrain = false

    func validate() throws {
        if dryRun, wait { throw ValidationError("--dry-run and --wait do not go together") }
        if ManifestDuration(parsing: timeout) == nil { throw ValidationError("--timeout '\(timeout)' is not a duration such as 90s, 30m or 1h") }
    }

    func run() throws {
        try reportingFailures(format: output.format) {
            DatabaseOptions.repository.path = source.repo
            if dryRun {
                let plan = try readOnlyPlan(source: source, database: database, planning: planning, output: output)
                render(plan, output: output, db: database.db)
                if !plan.blocked.isEmpty { throw ExitCode(3) }
                return
            }
            let db = try database.open()
            let (desired, repository) = try loadOrRecord(db)
            var plan = try pass(db, desired, repository, show: true)
            guard wait else {
                if !plan.blocked.isEmpty { throw ExitCode(3) }
                return
            }
            let worker = noTrain ? nil : try makeWorker(repo: source.repo, database: database, artifacts: artifacts, db: db)
            let stop = StopFlag()
            let signals = stopOnSignals(stop)
            defer { _ = signals }
            let started = Date()
            let limit = Double(ManifestDuration(parsing: timeout)!.seconds)
            let progress = Progress(enabled: isatty(STDERR_FILENO) == 1)
            var passes = 1
            while true {
                let (queued, running) = try db.activeRunCounts()
                if plan.changes.isEmpty, queued == 0, running == 0 { break }
                if stop.isSet { throw CairnError("stopped before converging") }
                if Date().timeIntervalSince(started) > limit {
                    throw CairnError("timed out after \(timeout) before converging: \(queued) training runs queued, \(running) running",
                                         hint: "a worker must run them: start `cairn worker`, or drop --no-train")
                }
                progress.show("[\(Int(Date().timeIntervalSince(started)))s] pass \(passes) · training: \(queued) queued, \(running) running")
                if let worker {
                    while try worker.runOne(stop: stop) != nil {
                        let (q, r) = try db.activeRunCounts()
                        progress.show("[\(Int(Date().timeIntervalSince(started)))s] pass \(passes) · training: \(q) queued, \(r) running")
                    }
                    if try db.activeRunCounts().queued > 0 { Thread.sleep(forTimeInterval: 1) }
                } else {
                    Thread.sleep(forTimeInterval: 2)
                }
                passes += 1
                plan = try pass(db, desired, repository, show: false)
                if !plan.changes.isEmpty, output.format == .text {
                    progress.clear()
                    print(PlanRenderer.text(plan, style: output.style, observed: database.db), terminator: "")
                }
            }
            progress.clear()
            if output.format == .text {
                print("Converged after \(passes) pass\(passes == 1 ? "" : "es") in \(Int(Date().timeIntervalSince(started)))s" + (plan.blocked.isEmpty ? "." : "; still blocked:"))
                for b in plan.blocked { print("  ! \(b.address)  \(PlanRenderer.describe(b))") }
            }
            if !plan.blocked.isEmpty { throw ExitCode(3) }
        }
    }

    /// Reads the revision; a failure to read or validate it is recorded as a failed pass.
    func loadOrRecord(_ db: RegistryDatabase) throws -> (DesiredState, GitRepository) {
        let revision: LoadedRevision
        do {
            revision = try source.loadDesired()
        } catch {
            // Rule 9: when git cannot be read nothing is planned, so nothing is pruned.
            try db.recordFailedPass(revision: nil, revisionName: source.revision, result: "source_error", message: "\(error)", at: unixNow())
            throw error
        }
        guard let desired = revision.desired else {
            // Rule 8: an invalid revision blocks as a whole; the last applied revision stays.
            let message = revision.loaded.diagnostics.errors.map(\.oneLine).joined(separator: "\n")
            try db.recordFailedPass(revision: revision.snapshot.commit?.sha, revisionName: source.revision, result: "invalid",
                                    message: message, at: unixNow())
            throw invalidRevision(revision, source: source, output: output)
        }
        return (desired, revision.repository)
    }

    /// One plan-and-apply under the applier lease.
    func pass(_ db: RegistryDatabase, _ desired: DesiredState, _ repository: GitRepository, show: Bool) throws -> Plan {
        let outcome = try ReconcilePass.run(db: db, desired: desired, options: planning.planner, actor: currentUser(), lockWait: lockTimeout,
                                            repository: repository) { plan in
            if show { render(plan, output: output, db: database.db) }
        }
        guard let result = outcome.applied else {
            printError("applying is suspended: nothing applied (`cairn resume` to apply again)")
            return outcome.plan
        }
        if show, output.format == .text {
            print(result.applied == 0 ? "Nothing to apply." : "Applied \(result.applied) change\(result.applied == 1 ? "" : "s") in \(result.steps) step\(result.steps == 1 ? "" : "s").")
        }
        return outcome.plan
    }
}

/// Plans the revision against the database without writing anything (`plan`, `reconcile --dry-run`).
/// An invalid revision prints its diagnostics and exits 1.
func readOnlyPlan(source: SourceOptions, database: DatabaseOptions, planning: PlanningOptions, output: OutputOptions) throws -> Plan {
    let revision = try source.loadDesired()
    guard let desired = revision.desired else { throw invalidRevision(revision, source: source, output: output) }
    let db = try database.openForReading()
    if let db { try SourceCheck.check(db, desired: desired, repository: revision.repository, bind: false) }
    let observed = try db?.observedState() ?? .empty
    return Planner.plan(desired: desired, observed: observed, now: unixNow(), options: planning.planner)
}

/// A progress line on a terminal (stderr), rewritten in place.
struct Progress {
    let enabled: Bool

    func show(_ text: String) {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8)) }
    }

    func clear() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
