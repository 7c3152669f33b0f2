import ArgumentParser
import CairnCore
import CairnStore
import Foundation

/// `cairn db`: moving a registry between databases.
struct DatabaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "db", abstract: "Move a registry between databases.", subcommands: [Migrate.self])

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a registry, audit chain included, into a new, empty database (SQLite to PostgreSQL, or back).",
            discussion: """
                The source is read in one snapshot and must verify (audit chain and state); the copy is written in one \
                transaction, and verified before it commits: its audit chain, its state against its history, and its \
                observed state against the source's. Anything that does not match rolls the whole copy back. Stop every \
                `cairn serve`, `reconcile` and `worker` on the source first (or `cairn suspend`): what they write after the \
                snapshot is not copied. Exit status 0 when copied and verified, 1 otherwise (nothing is written then).
                """
        )

        @Option(help: "The registry to copy: a SQLite file (path or sqlite://PATH) or a postgres:// address.")
        var from: String

        @Option(help: "The new registry: a postgres:// address (the password from PGPASSWORD) or a SQLite file; it must be empty.")
        var to: String

        func validate() throws {
            try DatabaseOptions.refusePassword(from, option: "--from")
            try DatabaseOptions.refusePassword(to, option: "--to")
        }

        func run() throws {
            try reportingFailures {
                let fromShown = DatabaseOptions.shown(from), toShown = DatabaseOptions.shown(to)
                guard let source = try RegistryDatabase.openForReading(location: from) else {
                    throw CairnError("no registry at \(fromShown)", hint: "check --from")
                }
                if !PostgresLocation.isPostgres(to), FileManager.default.fileExists(atPath: RegistryDatabase.sqlitePath(to)) {
                    throw CairnError("\(toShown) exists already; nothing was copied", hint: "migrate into a new file or an empty PostgreSQL database")
                }
                let destination = try RegistryDatabase(location: to)
                defer { destination.close(); source.close() }
                let report = try destination.copy(from: source)
                let total = report.rows.values.reduce(0, +)
                print("copied \(total) rows from \(fromShown) to \(toShown) (generation \(report.generation))")
                for table in RegistryDatabase.copiedTableNames {
                    if let rows = report.rows[table], rows > 0 { print("  \(table.padding(toLength: 16, withPad: " ", startingAt: 0)) \(rows)") }
                }
                print("audit chain intact on arrival: \(report.auditRows) rows verified; state matches its history and the source")
            }
        }
    }
}
