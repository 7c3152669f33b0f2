import CairnCore
import CairnReconcile
import Foundation
import GRDB

/// The registry database: observed state, versions, runs, serving targets, the audit history,
/// the applier lease. SQLite (one file, WAL mode, through GRDB) is the embedded default;
/// PostgreSQL is the registry several hosts share. The store's logic is written once, over the
/// SQL port (`SQLExecutor`); only opening and migrating differ.
///
/// Each public method that writes runs one transaction that keeps every invariant.
public struct RegistryDatabase: Sendable {
    let sql: any SQLExecutor
    /// The file (SQLite) or the address without its password (PostgreSQL).
    public let path: String
    /// The last observed state loaded through this handle (see `observedState()`).
    let observedCache = Locked<ObservedCache.Kept?>(nil)
    /// What the last state check established (see `verifyState`).
    let verifiedCache = Locked<VerifiedCache.Kept?>(nil)
    /// Keep the state check's work for the next check (a long-lived handle: `cairn serve`).
    /// Off by default: a one-shot command would only hold it in memory until it exits.
    public var keepsStateCheck = false

    /// Opens (and creates or migrates) the registry for writing: a `postgres://` address, a
    /// `sqlite://` address or a file path.
    public init(location: String) throws {
        if PostgresLocation.isPostgres(location) {
            let postgres = try PostgresExecutor(try PostgresLocation(parsing: location))
            try Self.migratePostgres(postgres)
            self.init(sql: postgres, path: postgres.location.location)
        } else {
            try self.init(path: Self.sqlitePath(location))
        }
    }

    /// Opens (and creates or migrates) the SQLite file at `path` for writing.
    public init(path: String) throws {
        let url = URL(fileURLWithPath: path)
        try Self.makeStateDirectory(url.deletingLastPathComponent())
        let writer = try Self.openPool(path)
        self.path = path
        try writer.read { db in try Self.refuseNewerSchema(db, path: path) }
        try Self.migrate(writer)
        Self.makePrivate(path)
        sql = SQLiteExecutor(writer: writer)
    }

    /// The file of a `sqlite://` address, or the path itself.
    public static func sqlitePath(_ location: String) -> String {
        location.hasPrefix("sqlite://") ? String(location.dropFirst("sqlite://".count)) : location
    }

    /// True when this registry is a PostgreSQL database.
    public var isPostgres: Bool { sql.dialect == .postgres }

    /// Closes the registry's connections (PostgreSQL; a SQLite file closes with its last user).
    public func close() { sql.close() }

    /// The registry is readable and writable by its owner only (a trainer running as another
    /// user must not read or write it); SQLite gives its -wal and -shm files the same mode.
    static func makePrivate(_ path: String) {
        for file in [path, path + "-wal", path + "-shm"] where FileManager.default.fileExists(atPath: file) {
            chmod(file, 0o600)
        }
    }

    /// Creates the folder holding the registry with a `.gitignore` that ignores everything in it:
    /// the default folder sits in the repository's working tree, and `git add -A` must never
    /// commit the database or the signing key (a later `git revert` would roll the registry back).
    static func makeStateDirectory(_ folder: URL) throws {
        let fm = FileManager.default
        let existed = fm.fileExists(atPath: folder.path)
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        let ignore = folder.appendingPathComponent(".gitignore")
        if (!existed || folder.lastPathComponent == ".cairn"), !fm.fileExists(atPath: ignore.path) {
            try? Data("# Cairn's registry, signing key and caches: never commit them.\n*\n".utf8).write(to: ignore)
        }
    }

    /// The schema versions this Cairn knows, oldest first (the same names in both databases).
    static let knownSchemas = Schema.migrations.map(\.identifier)

    /// A registry written by a newer Cairn is refused, never read or written: this Cairn does not
    /// know what the newer schema's rows mean, and writing would corrupt them.
    static func refuseNewerSchema(applied: [String], path: String) throws {
        let unknown = applied.filter { !knownSchemas.contains($0) }.sorted()
        if let newest = unknown.last {
            throw CairnError("the registry at \(path) has schema \(newest), newer than this Cairn knows (up to \(knownSchemas.last!)); nothing was read or written",
                             hint: "use the Cairn version that wrote it, or a newer one")
        }
    }

    static func refuseNewerSchema(_ db: GRDB.Database, path: String) throws {
        guard try db.tableExists("grdb_migrations") else { return }
        try refuseNewerSchema(applied: try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"), path: path)
    }

    /// Opens the pool. Switching a new database to WAL needs a lock SQLite does not wait for, so
    /// processes opening a new database at once retry for a moment.
    static func openPool(_ path: String) throws -> DatabasePool {
        for attempt in 1... {
            do {
                return try DatabasePool(path: path, configuration: configuration())
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && attempt < 20 {
                Thread.sleep(forTimeInterval: 0.01 * Double(attempt))
            }
        }
        fatalError("unreachable")
    }

    /// Runs the pending migrations, all in one transaction (in GRDB's `grdb_migrations` table), so
    /// a process killed while it creates or upgrades the schema leaves it as it was: never between
    /// two versions, which read-only commands would refuse. Processes that create the same
    /// database at once (two reconcilers, a worker) may both find it empty; one commits, and the
    /// others fail whole and find it done when they look again.
    static func migrate(_ writer: any DatabaseWriter) throws {
        for attempt in 1...5 {
            do {
                try writer.write { db in
                    try db.execute(sql: "CREATE TABLE IF NOT EXISTS grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
                    let applied = Set(try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"))
                    for migration in Schema.migrations where !applied.contains(migration.identifier) {
                        try db.execute(sql: migration.sqlite)
                        try db.execute(sql: "INSERT INTO grdb_migrations(identifier) VALUES (?)", arguments: [migration.identifier])
                    }
                }
                return
            } catch {
                if try writer.read({ try migrator.hasCompletedMigrations($0) }) { return }
                if attempt == 5 { throw error }
                Thread.sleep(forTimeInterval: 0.05 * Double(attempt))
            }
        }
    }

    private init(sql: any SQLExecutor, path: String) {
        self.sql = sql
        self.path = path
    }

    /// Opens an existing registry without writing anything (for `plan` and `--dry-run`).
    /// Returns nil when there is no registry yet (no file, or a file or database without a
    /// schema): the observed state is empty.
    public static func openForReading(location: String) throws -> RegistryDatabase? {
        guard PostgresLocation.isPostgres(location) else { return try openForReading(path: sqlitePath(location)) }
        let postgres = try PostgresExecutor(try PostgresLocation(parsing: location))
        let applied = try postgres.read { db in try appliedPostgresMigrations(db) }
        try refuseNewerSchema(applied: applied, path: postgres.location.location)
        if applied.isEmpty { return nil }
        guard Set(knownSchemas).isSubset(of: applied) else {
            throw CairnError("the registry at \(postgres.location.location) has an older schema", hint: "run `cairn reconcile` once to upgrade it")
        }
        return RegistryDatabase(sql: postgres, path: postgres.location.location)
    }

    /// Opens an existing SQLite file without writing anything.
    public static func openForReading(path: String) throws -> RegistryDatabase? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        var config = configuration()
        config.readonly = true
        let queue = try DatabaseQueue(path: path, configuration: config)
        try queue.read { db in try refuseNewerSchema(db, path: path) }
        let (applied, current) = try queue.read { db in (try migrator.appliedIdentifiers(db), try migrator.hasCompletedMigrations(db)) }
        // A file with no schema at all is a registry whose creation never committed (the process
        // creating it was killed): it holds nothing, like no file.
        if applied.isEmpty { return nil }
        guard current else {
            throw CairnError("the database at \(path) has an older schema", hint: "run `cairn reconcile` once to upgrade it")
        }
        return RegistryDatabase(sql: SQLiteExecutor(writer: queue), path: path)
    }

    static func configuration() -> Configuration {
        var config = Configuration()
        // Other processes (a second reconciler, workers) may hold the write lock briefly.
        config.busyMode = .timeout(30)
        config.foreignKeysEnabled = true
        return config
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in Schema.migrations {
            migrator.registerMigration(migration.identifier) { db in
                try db.execute(sql: migration.sqlite)
            }
        }
        return migrator
    }

    /// The PostgreSQL migrations applied, in `cairn_migrations` (empty before the first).
    static func appliedPostgresMigrations(_ db: any SQLSession) throws -> [String] {
        guard try String.fetchOne(db, sql: "SELECT to_regclass('cairn_migrations')::text") != nil else { return [] }
        return try String.fetchAll(db, sql: "SELECT identifier FROM cairn_migrations ORDER BY identifier")
    }

    /// Runs the PostgreSQL migrations, each in one write transaction (which every process takes
    /// one at a time), recording each in `cairn_migrations`.
    static func migratePostgres(_ postgres: PostgresExecutor) throws {
        let location = postgres.location.location
        try refuseNewerSchema(applied: try postgres.read { try appliedPostgresMigrations($0) }, path: location)
        // Every pending migration in one transaction (PostgreSQL's DDL is transactional): a
        // process killed while it creates or upgrades the schema leaves it as it was, never
        // between two versions (the crash suite killed a reconcile there, and the registry it
        // left was refused as "older").
        try postgres.write { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS cairn_migrations (identifier TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            let applied = try appliedPostgresMigrations(db)
            try refuseNewerSchema(applied: applied, path: location)
            for (identifier, _, schema) in Schema.migrations where !applied.contains(identifier) {
                // One statement at a time: the extended protocol takes one per query.
                for statement in schema.components(separatedBy: ";\n") where !statement.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    try db.execute(sql: statement)
                }
                try db.execute(sql: "INSERT INTO cairn_migrations(identifier) VALUES (?)", arguments: [identifier])
            }
        }
    }

    /// Reads a value from the `meta` table.
    func meta(_ db: any SQLSession, _ key: String) throws -> String? {
        if let deferring = db as? any DeferringSession, let pending = deferring.pendingMeta[key] { return pending }
        return try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
    }

    func setMeta(_ db: any SQLSession, _ key: String, _ value: String?) throws {
        if let deferring = db as? any DeferringSession {
            deferring.pendingMeta[key] = .some(value)
            return
        }
        if let value {
            try db.execute(sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                           arguments: [key, value])
        } else {
            try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [key])
        }
    }

    /// The observed-state generation: a cheap read that tells whether anything changed.
    public func generation() throws -> Int {
        try sql.read { db in try generation(db) }
    }

    func generation(_ db: any SQLSession) throws -> Int {
        Int(try meta(db, "generation") ?? "0") ?? 0
    }

    func bumpGeneration(_ db: any SQLSession) throws {
        let next = try generation(db) + 1
        try setMeta(db, "generation", String(next))
        // PostgreSQL delivers it to every listening process when (and only if) the transaction commits.
        if db.dialect == .postgres {
            try db.execute(sql: "SELECT pg_notify('\(PostgresExecutor.changeChannel)', ?)", arguments: [String(next)])
        }
    }

    /// Calls `onChange` whenever another process (or this one) moves the registry's generation,
    /// until the returned watch is stopped: PostgreSQL's LISTEN/NOTIFY on a connection of its own,
    /// reconnecting after a lost connection (and calling `onChange` then, for what it may have
    /// missed). Nil for SQLite, whose processes poll the generation.
    public func watchChanges(_ onChange: @escaping @Sendable () -> Void) -> ChangeWatch? {
        guard let postgres = sql as? PostgresExecutor else { return nil }
        return ChangeWatch(postgres, onChange)
    }
}
