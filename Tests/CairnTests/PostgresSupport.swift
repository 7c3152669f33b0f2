import CairnCore
import CairnStore
import Foundation
import Testing

/// The PostgreSQL server the tests use: `CAIRN_TEST_POSTGRES_URL`, which scripts/test.sh sets
/// after starting a throwaway cluster (scripts/postgres.sh). Each test gets its own database.
enum TestPostgres {
    static let url: String? = {
        let value = ProcessInfo.processInfo.environment["CAIRN_TEST_POSTGRES_URL"] ?? ""
        return value.isEmpty ? nil : value
    }()

    static var available: Bool { url != nil }

    /// Why PostgreSQL tests are skipped, as the test report shows it.
    static let skipMessage: Comment = "no PostgreSQL server: set CAIRN_TEST_POSTGRES_URL (scripts/test.sh starts a throwaway one)"

    /// A new, empty database on the test server; returns its address.
    static func freshDatabase(_ label: String = "t") throws -> String {
        guard let url else { throw CairnError("CAIRN_TEST_POSTGRES_URL is not set") }
        let name = "cairn_\(label)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased())"
        return try PostgresExecutor.createDatabase(name, onServerOf: url)
    }
}

/// The registry databases the store contract runs against: SQLite always, PostgreSQL when the
/// test server is there (scripts/test.sh always starts it; CI fails if it is missing).
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    static var available: [Backend] { TestPostgres.available ? allCases : [.sqlite] }

    var testDescription: String { rawValue }

    /// A fresh registry: a file in `dir`, or a new PostgreSQL database.
    func location(in dir: TempDir) throws -> String {
        switch self {
        case .sqlite: dir.url.appendingPathComponent("r-\(UUID().uuidString.prefix(8)).db").path
        case .postgres: try TestPostgres.freshDatabase()
        }
    }

    func fresh(in dir: TempDir) throws -> RegistryDatabase {
        try RegistryDatabase(location: try location(in: dir))
    }
}

@Suite struct PostgresAvailabilityTests {
    /// The test command always starts PostgreSQL: a run that asked for it (CAIRN_REQUIRE_POSTGRES=1)
    /// and did not get it fails here instead of skipping every PostgreSQL test quietly.
    @Test func theTestServerIsThereWhenRequired() throws {
        if ProcessInfo.processInfo.environment["CAIRN_REQUIRE_POSTGRES"] == "1" {
            #expect(TestPostgres.available, "CAIRN_REQUIRE_POSTGRES=1 but CAIRN_TEST_POSTGRES_URL is not set")
        }
    }

    /// No server at the address: one line says which address (without its password) and why.
    @Test func anUnreachableServerIsNamedWithoutItsPassword() throws {
        let result = try cairn(["status", "--db", "postgres://cairn@127.0.0.1:1/cairn?sslmode=disable"], env: ["PGPASSWORD": "pw-on-the-way-9191"])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("error: PostgreSQL at postgres://cairn@127.0.0.1:1/cairn: cannot connect"), "\(result.stderr)")
        #expect(result.stderr.contains("Connection refused"), "\(result.stderr)")
        #expect(!result.stderr.contains("pw-on-the-way-9191"))
    }

    /// The test server offers no TLS: an address that requires it is refused, never used in clear.
    @Test(.enabled(if: TestPostgres.available, TestPostgres.skipMessage))
    func tlsRequiredIsNeverDroppedSilently() throws {
        let url = try TestPostgres.freshDatabase().replacingOccurrences(of: "sslmode=disable", with: "sslmode=require")
        let result = try cairn(["suspend", "--db", url])
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot connect: the server does not offer TLS, which the address's sslmode requires"), "\(result.stderr)")
    }

    @Test(.enabled(if: TestPostgres.available, TestPostgres.skipMessage))
    func aFreshDatabaseIsEmptyAndMigrates() throws {
        let url = try TestPostgres.freshDatabase()
        #expect(try RegistryDatabase.openForReading(location: url) == nil)
        let db = try RegistryDatabase(location: url)
        #expect(db.isPostgres)
        #expect(try db.generation() == 0)
        #expect(try RegistryDatabase.openForReading(location: url) != nil)
        // Opening again finds every migration done.
        _ = try RegistryDatabase(location: url)
    }

    /// A schema created or upgraded in part is never left behind: every pending migration is one
    /// transaction. Here the last one fails (a table of its name is already there): none of them
    /// stays, readers find no registry, and once the obstacle is gone the next open migrates all.
    @Test(.enabled(if: TestPostgres.available, TestPostgres.skipMessage))
    func aMigrationThatFailsPartwayLeavesNoPartOfTheSchema() throws {
        let url = try TestPostgres.freshDatabase()
        let raw = try PostgresExecutor(try PostgresLocation(parsing: url))
        defer { raw.close() }
        try raw.write { try $0.execute(sql: "CREATE TABLE run_results (obstacle INTEGER)", arguments: SQLArguments()) }
        #expect(throws: (any Error).self) { try RegistryDatabase(location: url) }
        let tables = try raw.read { db in
            try db.fetchAll(sql: "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name",
                            arguments: SQLArguments()).map { row -> String in
                if case let .text(name) = row.value(at: 0) { return name }
                return "?"
            }
        }
        #expect(tables == ["run_results"], "a failed migration left \(tables)")
        #expect(try RegistryDatabase.openForReading(location: url) == nil)
        try raw.write { try $0.execute(sql: "DROP TABLE run_results", arguments: SQLArguments()) }
        let db = try RegistryDatabase(location: url)
        defer { db.close() }
        #expect(try db.generation() == 0)
        #expect(try RegistryDatabase.openForReading(location: url) != nil)
    }

    /// The role the test cluster makes give a password (SCRAM): the password comes from
    /// PGPASSWORD_FILE or PGPASSWORD, opens the registry, and is never shown.
    @Test(.enabled(if: TestPostgres.available, TestPostgres.skipMessage))
    func aPasswordFromAFileOpensTheRegistryAndIsNeverShown() throws {
        var components = URLComponents(string: try TestPostgres.freshDatabase("pw"))!
        let admin = try PostgresExecutor(try PostgresLocation(parsing: TestPostgres.url!))
        defer { admin.close() }
        try admin.executeOutsideTransaction("ALTER DATABASE \(components.path.dropFirst()) OWNER TO cairn_password")
        components.user = "cairn_password"
        let address = components.string!
        let dir = TempDir("cairn-pw")
        let file = dir.url.appendingPathComponent("db-password").path
        try "pg-test-password-2026\n".write(toFile: file, atomically: true, encoding: .utf8)
        let suspend = try cairn(["suspend", "--db", address], env: ["PGPASSWORD_FILE": file])
        #expect(suspend.status == 0, "\(suspend.stdout)\(suspend.stderr)")
        let verify = try cairn(["audit", "verify", "--db", address], env: ["PGPASSWORD": "pg-test-password-2026"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let wrong = try cairn(["audit", "verify", "--db", address], env: ["PGPASSWORD": "wrong-password-7777"])
        #expect(wrong.status == 1)
        #expect(wrong.stderr.contains("password authentication failed for user \"cairn_password\""), "\(wrong.stderr)")
        #expect(!(wrong.stdout + wrong.stderr).contains("wrong-password-7777"))
    }
}
