import ArgumentParser
import CairnCore
import CairnRender
import CairnStore
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
            let revision = try source.loadDesired()
            guard let desired = revision.desired else { throw invalidRevision(revision, source: source, output: output) }
            let observed = try database.openForReading()?.observedState() ?? .empty
            let plan = Planner.plan(desired: desired, observed: observed, now: unixNow(), options: planning.planner)
            if let out {
                do {
                    try Data(PlanRenderer.json(plan).utf8).write(to: URL(fileURLWithPath: out))
                } catch {
                    throw CommandFailure("cannot write the plan to \(out): \(error.localizedDescription)")
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
            Exit status: 0 applied (or nothing to do), 1 error or invalid revision, 3 applied but some changes are blocked. \
            With --dry-run nothing is written, not even a history row.
            """
    )

    @OptionGroup var source: SourceOptions
    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions
    @OptionGroup var planning: PlanningOptions

    @Flag(help: "Plan only; write nothing.")
    var dryRun = false

    @Option(help: "Seconds to wait for another reconcile holding the applier lease.")
    var lockTimeout: Double = 10

    func run() throws {
        try reportingFailures(format: output.format) {
            if dryRun {
                let revision = try source.loadDesired()
                guard let desired = revision.desired else { throw invalidRevision(revision, source: source, output: output) }
                let observed = try database.openForReading()?.observedState() ?? .empty
                let plan = Planner.plan(desired: desired, observed: observed, now: unixNow(), options: planning.planner)
                render(plan, output: output, db: database.db)
                if !plan.blocked.isEmpty { throw ExitCode(3) }
                return
            }
            let db = try database.open()
            let revision: LoadedRevision
            do {
                revision = try source.loadDesired()
            } catch let error as SourceError {
                // Rule 9: when git cannot be read nothing is planned, so nothing is pruned.
                try db.recordFailedPass(revision: nil, revisionName: source.revision, result: "source_error", message: error.message, at: unixNow())
                throw error
            }
            guard let desired = revision.desired else {
                // Rule 8: an invalid revision blocks as a whole; the last applied revision stays.
                let message = revision.loaded.diagnostics.errors.map(\.oneLine).joined(separator: "\n")
                try db.recordFailedPass(revision: revision.snapshot.commit?.sha, revisionName: source.revision, result: "invalid",
                                        message: message, at: unixNow())
                throw invalidRevision(revision, source: source, output: output)
            }
            let holder = LeaseHolder()
            try db.acquireLease(holder, wait: lockTimeout, now: unixNow)
            defer { try? db.releaseLease(holder) }
            let observed = try db.observedState()
            let plan = Planner.plan(desired: desired, observed: observed, now: unixNow(), options: planning.planner)
            render(plan, output: output, db: database.db)
            if observed.suspended {
                printError("applying is suspended: nothing applied (`cairn resume` to apply again)")
                return
            }
            let author = "\(desired.commit.authorName) <\(desired.commit.authorEmail)>"
            let result = try db.apply(plan, holder: holder, context: AuditContext(revision: desired.commit.sha, author: author, actor: currentUser()),
                                      now: unixNow)
            if output.format == .text {
                print(result.applied == 0 ? "Nothing to apply." : "Applied \(result.applied) change\(result.applied == 1 ? "" : "s") in \(result.steps) step\(result.steps == 1 ? "" : "s").")
            }
            if !plan.blocked.isEmpty { throw ExitCode(3) }
        }
    }
}
