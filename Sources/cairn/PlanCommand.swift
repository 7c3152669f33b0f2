import ArgumentParser
import CairnCore
import CairnGit
import CairnRender
import CairnReconcile
import CairnSource
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

    @Flag(help: "Fail (exit 1) when the registry database does not exist, instead of planning against an empty one (for CI).")
    var requireRegistry = false

    @Option(help: ArgumentHelp("Ask this running `cairn serve` (https://…) for the plan of --revision, a full commit id, against its live registry "
                               + "(read-scoped token in CAIRN_TOKEN or CAIRN_TOKEN_FILE); nothing is read here.", valueName: "url"))
    var server: String?

    func run() throws {
        try reportingFailures(format: output.format) {
            if let server {
                let plan = try ServerPlan.fetch(server: server, revision: source.revision)
                try save(plan)
                render(plan, output: output, db: server)
                if detailedExitcode, !plan.isEmpty { throw ExitCode(2) }
                return
            }
            DatabaseOptions.repository.path = source.repo
            if requireRegistry, try database.openForReading() == nil {
                throw CairnError("no registry database at \(database.shown): nothing to plan against (--require-registry)",
                                 hint: "give --db the registry (a read-only copy will do), or drop --require-registry to plan against an empty one")
            }
            let plan = try readOnlyPlan(source: source, database: database, planning: planning, output: output)
            try save(plan)
            render(plan, output: output, db: database.shown)
            if detailedExitcode, !plan.isEmpty { throw ExitCode(2) }
        }
    }

    func save(_ plan: Plan) throws {
        guard let out else { return }
        do {
            try Data(PlanRenderer.json(plan).utf8).write(to: URL(fileURLWithPath: out))
        } catch {
            throw CairnError("cannot write the plan to \(out): \(error.localizedDescription)")
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
                render(plan, output: output, db: database.shown)
                if !plan.blocked.isEmpty { throw ExitCode(3) }
                return
            }
            let db = try database.open()
            let manifests = source.manifestSource
            let desired = try readingRevision(source.revision, output: output) {
                try ReconcilePass.read(manifests, recordingIn: db, recording: .failures(limit: nil, sourceErrors: true), clock: clock)
            }
            let generationBefore = try db.generation()
            let first = try pass(db, desired, manifests, show: true)
            guard wait else {
                if !first.blocked.isEmpty { throw ExitCode(3) }
                return
            }
            let worker = noTrain ? nil : try makeWorker(repo: source.repo, database: database, artifacts: artifacts, db: db)
            let stop = StopFlag()
            let signals = stopOnSignals(stop)
            defer { _ = signals }
            let started = clock.now()
            let progress = Progress(terminal: isatty(STDERR_FILENO) == 1)
            let convergence = Convergence(store: db, clock: clock, worker: worker, pass: { try pass(db, desired, manifests, show: false) },
                                          showPlan: { plan in
                                              guard output.format == .text else { return }
                                              progress.clear()
                                              print(PlanRenderer.text(plan, style: output.style, observed: database.shown), terminator: "")
                                          },
                                          progress: { p in
                                              progress.show(elapsed: Int(p.elapsed), p.line)
                                          })
            let (plan, passes) = try convergence.run(first: first, generationBefore: generationBefore,
                                                     timeout: Double(ManifestDuration(parsing: timeout)!.seconds), timeoutText: timeout, stop: stop)
            progress.clear()
            if output.format == .text {
                print("Converged after \(passes) pass\(passes == 1 ? "" : "es") in \(Int(clock.now() - started))s" + (plan.blocked.isEmpty ? "." : "; still blocked:"))
                for b in plan.blocked { print("  ! \(b.address)  \(PlanRenderer.describe(b))") }
            }
            if !plan.blocked.isEmpty { throw ExitCode(3) }
        }
    }

    /// One plan-and-apply under the applier lease.
    func pass(_ db: RegistryDatabase, _ desired: DesiredState, _ manifests: GitManifestSource, show: Bool) throws -> Plan {
        let outcome = try ReconcilePass.run(desired, source: manifests, store: db, options: try planning.planner(), actor: currentUser(),
                                            lockWait: lockTimeout, clock: clock) { plan in
            if show { render(plan, output: output, db: database.shown) }
        }
        guard let result = outcome.applied else {
            if show { printError("applying is suspended: nothing applied (`cairn resume` to apply again)") }
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
    let manifests = source.manifestSource
    let desired = try readingRevision(source.revision, output: output) { try ReconcilePass.read(manifests, clock: clock) }
    return try ReconcilePass.plan(desired, source: manifests, store: try database.openForReading(), options: try planning.planner(), clock: clock)
}

/// Progress lines on stderr: on a terminal one line rewritten in place; otherwise (a CI log) a
/// plain line each time what it says changes.
final class Progress: @unchecked Sendable {
    let terminal: Bool
    private let lock = NSLock()
    private var last = ""

    init(terminal: Bool) { self.terminal = terminal }

    /// `text` with the elapsed time before it; the time alone never prints a new plain line.
    func show(elapsed: Int, _ text: String) {
        if terminal {
            FileHandle.standardError.write(Data("\r\u{1B}[K[\(elapsed)s] \(text)".utf8))
            return
        }
        let changed = lock.withLock {
            defer { last = text }
            return text != last
        }
        if changed { FileHandle.standardError.write(Data("[\(elapsed)s] \(text)\n".utf8)) }
    }

    func clear() {
        if terminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
