import ArgumentParser
import CairnCore
import CairnGit
import CairnReconcile
import CairnSource
import CairnStore
import Foundation

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply a plan saved with `cairn plan --out FILE`.",
        discussion: """
            The plan is made again from the revision it names and the registry, under the applier lease, and applied only if \
            it is exactly the saved one: an edited plan file is refused, naming the first difference. A stale plan (its \
            branch or the observed state has moved) is refused too. Exit status 0 applied, 1 error, stale or not matching.
            """
    )

    @Argument(help: "The saved plan (JSON).")
    var file: String

    @Option(help: "The git repository the plan was made from.")
    var repo: String = "."

    @Option(help: "The revision you mean to apply (branch, tag, commit); a plan for any other commit is refused.")
    var revision: String = "HEAD"

    @Option(name: .customLong("exclude"), help: "A folder name or repository path to skip, as given to `cairn plan` (repeatable).")
    var excluded: [String] = []

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var planning: PlanningOptions
    @OptionGroup var trust: TrustOptions

    @Option(help: "Seconds to wait for another reconcile holding the applier lease.")
    var lockTimeout: Double = 10

    func run() throws {
        try reportingFailures {
            DatabaseOptions.repository.path = repo
            guard let data = FileManager.default.contents(atPath: file) else {
                throw CairnError("cannot read \(file)", hint: "save a plan with `cairn plan --out \(file)`")
            }
            let plan: Plan
            do {
                plan = try JSONDecoder().decode(Plan.self, from: data)
            } catch {
                throw CairnError("\(file) is not a Cairn plan: \(error)", hint: "save a plan with `cairn plan --out \(file)`")
            }
            guard plan.formatVersion == "1" else {
                throw CairnError("\(file) has plan format \(plan.formatVersion); this Cairn reads format 1")
            }
            let repository = try GitRepository(path: repo)
            let now = try? repository.commit(plan.revisionName)
            if let now, now.sha != plan.revision {
                throw CairnError("saved plan is stale: \(plan.revisionName) has moved from \(plan.revision.prefix(7)) to \(now.shortSHA)",
                                     hint: "make a new plan")
            }
            // A plan file can be swapped in transit for the plan of an unreviewed branch: apply
            // only a plan of the revision the operator names.
            let meant = try repository.commit(revision)
            guard meant.sha == plan.revision else {
                throw CairnError("the plan is for \(plan.revisionName) at \(plan.revision.prefix(7)), but --revision \(revision) is \(meant.shortSHA): nothing was applied",
                                     hint: "apply plans of the revision you mean to apply; pass --revision \(plan.revisionName) if that is the one")
            }
            // Only what the revision says is applied: read it again, exactly as the plan names it.
            var manifests = GitManifestSource(repository: repo, revision: plan.revision, root: plan.manifestRoot, exclude: Set(excluded))
            manifests.signatures = trust.policy
            var desired: DesiredState
            do {
                desired = try ReconcilePass.read(manifests, clock: clock)
            } catch is ReconcilePass.InvalidRevision {
                throw CairnError("the revision \(plan.revision.prefix(7)) the plan names is not valid: nothing was applied",
                                 hint: "run `cairn validate --revision \(plan.revision.prefix(7))`")
            }
            desired.revisionName = plan.revisionName
            let outcome = try ReconcilePass.run(desired, source: manifests, store: try database.open(), options: try planning.planner(), actor: currentUser(),
                                                lockWait: lockTimeout, clock: clock, expected: plan)
            guard let result = outcome.applied else {
                throw CairnError("applying is suspended: nothing applied", hint: "run `cairn resume` to apply again")
            }
            print(result.applied == 0 ? "Nothing to apply." : "Applied \(result.applied) change\(result.applied == 1 ? "" : "s") in \(result.steps) step\(result.steps == 1 ? "" : "s").")
        }
    }
}

struct Suspend: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Pause applying; plans are still computed.")
    @OptionGroup var database: DatabaseOptions

    func run() throws {
        try reportingFailures {
            let changed = try database.open().setSuspended(true, actor: currentUser(), at: unixNow())
            print(changed ? "Applying is suspended. `cairn resume` to apply again." : "Applying was already suspended.")
        }
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Resume applying after `cairn suspend`.")
    @OptionGroup var database: DatabaseOptions

    func run() throws {
        try reportingFailures {
            let changed = try database.open().setSuspended(false, actor: currentUser(), at: unixNow())
            print(changed ? "Applying is resumed." : "Applying was not suspended.")
        }
    }
}

struct Rollback: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Break-glass: put an older approved version live on a target, outside git.",
        discussion: """
            Recorded in the history and shown as drift in the next plan, which puts the git-declared version back. \
            To keep the rollback, run `cairn suspend` first, then change the manifest.
            """
    )

    @Argument(help: "The serving target.")
    var target: String

    @Option(help: "The version number to serve.")
    var to: Int

    @Option(help: "The route's model, when the target has several routes.")
    var model: String?

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Seconds to wait for a reconcile holding the applier lease.")
    var lockTimeout: Double = 10

    func run() throws {
        try reportingFailures {
            let db = try database.open()
            let holder = LeaseHolder()
            try ReconcilePass.acquireLease(db, holder, wait: lockTimeout, clock: clock)
            defer { try? db.releaseLease(holder) }
            let (old, new) = try db.rollback(target: target, model: model, to: to, actor: currentUser(), holder: holder, at: unixNow())
            print("ServingTarget/\(target): \(old.model) v\(old.version) → v\(new.version). This is drift: the next reconcile puts the git-declared version back unless applying is suspended.")
        }
    }
}
