import ArgumentParser
import CairnCore
import CairnGit
import CairnManifests
import CairnRender
import CairnReconcile
import CairnSource
import CairnStore
import Foundation

struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("db"), help: """
        The registry: a SQLite file (a path or sqlite://PATH) or a PostgreSQL database (postgres://USER@HOST:PORT/DB; the \
        password from PGPASSWORD). Default: $CAIRN_DB, else .cairn/cairn.db at the top of the repository (found from --repo \
        or from the current folder, whichever sub-folder it is; cairn/ inside a bare repository), else ./.cairn/cairn.db.
        """)
    var dbOption: String?

    /// The repository a command names (`--repo`), where the default registry is looked for; set
    /// by those commands before they open it.
    static let repository = RepositoryHint()

    /// The registry's path: `--db`, `CAIRN_DB`, or the repository's state directory.
    var db: String {
        if let dbOption { return dbOption }
        if let env = Secrets.value("CAIRN_DB"), !env.isEmpty { return env }
        return (GitRepository.stateDirectory(discoveringFrom: Self.repository.path) ?? ".cairn") + "/cairn.db"
    }

    /// A password on the command line is readable by every local user (the process list): refused.
    func validate() throws {
        if let dbOption { try Self.refusePassword(dbOption, option: "--db") }
    }

    static func refusePassword(_ value: String, option: String) throws {
        if PostgresLocation.hasPassword(value) {
            throw ValidationError("\(option) must not carry a password (every local user can read a command line): "
                                  + "give it in the file PGPASSWORD_FILE names, or in PGPASSWORD")
        }
    }

    /// True when the registry is a PostgreSQL database.
    var isPostgres: Bool { PostgresLocation.isPostgres(db) }

    /// The registry as it may be printed: a PostgreSQL address without its password.
    var shown: String { Self.shown(db) }

    /// A registry location as it may be printed: a PostgreSQL address without its password.
    static func shown(_ db: String) -> String {
        guard PostgresLocation.isPostgres(db) else { return RegistryDatabase.sqlitePath(db) }
        return (try? PostgresLocation(parsing: db).location) ?? "the PostgreSQL registry"
    }

    /// The folder of Cairn's local state (signing key, artifacts, run folders, git cache): the
    /// database's folder for SQLite; for PostgreSQL, the repository's state directory.
    var stateFolder: String { Self.stateFolder(of: db) }

    /// The state folder of the registry `db` (empty: the current folder).
    static func stateFolder(of db: String) -> String {
        if PostgresLocation.isPostgres(db) { return GitRepository.stateDirectory(discoveringFrom: repository.path) ?? ".cairn" }
        return (RegistryDatabase.sqlitePath(db) as NSString).deletingLastPathComponent
    }

    /// Opens for writing, creating the file and its folder (or the PostgreSQL schema) if needed.
    func open() throws -> RegistryDatabase {
        do {
            return try RegistryDatabase(location: db)
        } catch let error as CairnError {
            throw error
        } catch {
            throw CairnError("cannot open the database \(shown): \(error)", hint: "check --db and the folder's permissions")
        }
    }

    /// Opens without writing; nil when there is no database yet.
    func openForReading() throws -> RegistryDatabase? {
        do {
            return try RegistryDatabase.openForReading(location: db)
        } catch let error as CairnError {
            throw error
        } catch {
            throw CairnError("cannot read the database \(shown): \(error)", hint: "check --db")
        }
    }
}

struct PlanningOptions: ParsableArguments {
    @Option(help: "Most routes one plan may promote without --allow-bulk.")
    var maxPromotions: Int = 20

    @Flag(help: "Allow a plan to promote more than --max-promotions routes.")
    var allowBulk = false

    @Option(name: .customLong("model-quota"),
            help: "Cap on registered models per tenant: TENANT=N, or '*=N' for every other tenant (repeatable; also CAIRN_MODEL_QUOTA, comma-separated).")
    var modelQuotas: [String] = []

    /// The planner's options; throws on a malformed quota.
    func planner() throws -> PlannerOptions {
        let fromEnvironment = ProcessInfo.processInfo.environment["CAIRN_MODEL_QUOTA"].map { [$0] } ?? []
        return PlannerOptions(maxPromotions: maxPromotions, allowBulk: allowBulk, modelQuotas: try ModelQuotas.parse(fromEnvironment + modelQuotas))
    }
}

/// Runs a command body, turning expected failures into a message on stderr and exit 1.
func reportingFailures(format: OutputFormat = .text, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as CairnError {
        throw fail(error, format: format)
    }
}

func currentUser() -> String {
    if let user = ProcessInfo.processInfo.environment["USER"], !user.isEmpty { return user }
    if let pw = getpwuid(getuid()), let name = pw.pointee.pw_name { return String(cString: name) }
    return "uid \(getuid())"
}

/// The clock of every command.
let clock = SystemClock()

func unixNow() -> Int64 { clock.unixNow() }

/// Prints the validation report of an invalid revision and exits 1.
func invalidRevision(_ read: SourceRead, revisionName: String, output: OutputOptions) -> ExitCode {
    let report = ValidationReport(valid: false, revision: read.commit?.sha, manifestRoot: read.manifestRoot,
                                  files: read.fileCount, documents: read.documentCount, diagnostics: read.diagnostics, skipped: [])
    if output.format == .json {
        print(report.json())
    } else {
        let at = read.commit.map { "\(revisionName)@\($0.shortSHA)" } ?? "working tree"
        print(report.text(style: output.style, heading: "Cairn · \(at) is invalid; nothing is planned or applied", verbose: false), terminator: "")
    }
    return ExitCode(1)
}

/// Runs a core call that reads a revision; an invalid revision prints its report and exits 1.
func readingRevision<T>(_ revisionName: String, output: OutputOptions, _ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let invalid as ReconcilePass.InvalidRevision {
        throw invalidRevision(invalid.read, revisionName: revisionName, output: output)
    }
}

func render(_ plan: Plan, output: OutputOptions, db: String) {
    switch output.format {
    case .json: print(PlanRenderer.json(plan), terminator: "")
    case .markdown: print(MarkdownPlan.render(plan), terminator: "")
    case .text: print(PlanRenderer.text(plan, style: output.style, observed: db), terminator: "")
    }
    // Worker log lines go to stderr; flush so the two streams stay in order when piped.
    fflush(nil)
}

/// The `--repo` of the running command (default: the current folder).
final class RepositoryHint: @unchecked Sendable {
    private let lock = NSLock()
    private var value = "."

    var path: String {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}
