import CairnCore
import Foundation
import Logging
import PostgresNIO

/// Where a PostgreSQL registry is: `postgres://user[:password]@host[:port]/database`, with
/// `?sslmode=disable|prefer|require|verify-full` (default `prefer`: TLS when the server offers it)
/// and `search_path`. TLS always verifies the server's certificate and name against the system's
/// trust store (what libpq calls verify-full): `require` and `verify-full` are the same here. A password
/// not in the URL comes from `PGPASSWORD` (or the file `PGPASSWORD_FILE` names), captured at start
/// and kept out of the environment (`Secrets`). The password is never part of `location`.
public struct PostgresLocation: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    public var searchPath: String?

    public enum SSLMode: String, Sendable {
        case disable, prefer, require
        case verifyFull = "verify-full"
    }

    /// True for a `postgres://` or `postgresql://` address.
    public static func isPostgres(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    public init(parsing text: String, environment: [String: String] = Secrets.captured) throws {
        let shown = Self.redacted(text)
        guard Self.isPostgres(text), let url = URLComponents(string: text), let host = url.host, !host.isEmpty else {
            throw CairnError("cannot read the PostgreSQL address \(shown)", hint: "write it as postgres://user@host:port/database")
        }
        self.host = host
        port = url.port ?? 5432
        user = url.user.flatMap { $0.removingPercentEncoding } ?? ProcessInfo.processInfo.environment["PGUSER"].flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
        password = url.password.flatMap { $0.removingPercentEncoding } ?? environment["PGPASSWORD"]
        let name = String(url.path.drop(while: { $0 == "/" }))
        database = name.isEmpty ? user : (name.removingPercentEncoding ?? name)
        sslMode = .prefer
        for item in url.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let mode = item.value.flatMap(SSLMode.init(rawValue:)) else {
                    throw CairnError("\(shown): sslmode must be disable, prefer, require or verify-full",
                                     hint: "TLS always verifies the server's certificate; disable it only on a network you trust")
                }
                sslMode = mode
            case "search_path":
                searchPath = item.value
            default:
                throw CairnError("\(shown): unknown parameter \(item.name)", hint: "Cairn reads sslmode and search_path")
            }
        }
    }

    /// True when `text` is a PostgreSQL address with a password in it.
    public static func hasPassword(_ text: String) -> Bool {
        isPostgres(text) && (URLComponents(string: text)?.password.map { !$0.isEmpty } ?? false)
    }

    /// The address as it may be shown: without its password.
    public var location: String {
        "postgres://\(user)@\(host):\(port)/\(database)" + (searchPath.map { "?search_path=\($0)" } ?? "")
    }

    /// `text` with any password replaced, for error messages about an address that did not parse.
    static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@") else { return text }
        let credentials = text[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}

/// The PostgreSQL adapter of the SQL port (PostgresNIO).
///
/// Concurrency: every write transaction first takes a transaction-scoped advisory lock, so the
/// writers of every process and host sharing the registry commit one at a time, as SQLite's do.
/// The store's read-then-write steps (the generation counter, the audit chain head, the next
/// version number, the applier lease, run claims) were written for that model, and every write
/// bumps the generation row and most append to the audit chain: writers would serialize on those
/// rows anyway, so serializable isolation would only turn the wait into retries. Transactions are
/// short (a step holds at most 500 changes). Reads run in REPEATABLE READ READ ONLY transactions:
/// one consistent snapshot, never blocked by a writer.
public final class PostgresExecutor: SQLExecutor, @unchecked Sendable {
    public let location: PostgresLocation
    public var dialect: SQLDialect { .postgres }
    let configuration: PostgresConnection.Configuration
    let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let lock = NSLock()
    private var idle: [PostgresConnection] = []
    private var closed = false
    private static let idleLimit = 4

    /// The advisory lock key every write transaction takes ("cairn-wr").
    static let writeLockKey: Int64 = 0x6361_6972_6E2D_7772

    public init(_ location: PostgresLocation) throws {
        self.location = location
        var configuration = PostgresConnection.Configuration(host: location.host, port: location.port, username: location.user,
                                                             password: location.password, database: location.database, tls: .disable)
        switch location.sslMode {
        case .disable: break
        case .prefer, .require, .verifyFull:
            // Full verification of the server's certificate and host name (NIOSSL's default).
            let context = try NIOSSLContext(configuration: .makeClientConfiguration())
            configuration.tls = location.sslMode == .prefer ? .prefer(context) : .require(context)
        }
        configuration.options.connectTimeout = .seconds(10)
        var parameters = [("application_name", "cairn"), ("lock_timeout", "30s")]
        if let path = location.searchPath { parameters.append(("search_path", path)) }
        configuration.options.additionalStartupParameters = parameters
        self.configuration = configuration
        var logger = Logger(label: "cairn.postgres")
        logger.logLevel = .critical
        self.logger = logger
        // Its own event loop: store calls block their thread on a future, which must never be
        // one of the loops the HTTP server runs on.
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    deinit {
        close()
        try? group.syncShutdownGracefully()
    }

    public func close() {
        let connections = lock.withLock { () -> [PostgresConnection] in
            closed = true
            defer { idle = []; sessionLocks = [:] }
            return idle + sessionLocks.values
        }
        for connection in connections { try? connection.close().wait() }
    }

    /// A new connection (not from the pool); also for what must stay open: the applier's session lock, LISTEN.
    func connect() throws -> PostgresConnection {
        do {
            return try PostgresConnection.connect(on: group.next(), configuration: configuration, id: 0, logger: logger).wait()
        } catch {
            throw Self.failure(error, location: location.location, connecting: true)
        }
    }

    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        let pooled = lock.withLock { idle.popLast() }
        let connection = try pooled.flatMap { $0.isClosed ? nil : $0 } ?? connect()
        do {
            let result = try body(connection)
            giveBack(connection)
            return result
        } catch {
            // A failed statement ended its transaction with ROLLBACK; a lost connection is dropped.
            giveBack(connection)
            throw error
        }
    }

    private func giveBack(_ connection: PostgresConnection) {
        let keep = lock.withLock { () -> Bool in
            guard !closed, !connection.isClosed, idle.count < Self.idleLimit else { return false }
            idle.append(connection)
            return true
        }
        if !keep, !connection.isClosed { connection.close().whenComplete { _ in } }
    }

    /// Creates database `name` on the server `admin` names (its user may create databases);
    /// returns the new database's address: `admin`'s, with the database replaced.
    public static func createDatabase(_ name: String, onServerOf admin: String) throws -> String {
        let server = try PostgresExecutor(try PostgresLocation(parsing: admin))
        defer { server.close() }
        try server.executeOutsideTransaction("CREATE DATABASE \(name)")
        guard var components = URLComponents(string: admin) else { throw CairnError("cannot read the PostgreSQL address \(server.location.location)") }
        components.path = "/" + name
        return components.string ?? admin
    }

    /// Runs one statement outside any transaction (`CREATE DATABASE` cannot run inside one).
    public func executeOutsideTransaction(_ statement: String) throws {
        try withConnection { connection in
            _ = try PostgresSession(connection: connection, logger: logger, location: location.location).run(statement, [])
        }
    }

    /// The session lock a lease holder keeps while it holds the applier lease ("cairn-ap").
    static let applierLockKey: Int64 = 0x6361_6972_6E2D_6170
    /// The dedicated connections holding an applier's session lock, by lease holder.
    private var sessionLocks: [String: PostgresConnection] = [:]

    /// Takes the applier's session lock for `holder` on a connection of its own, kept until
    /// `releaseSessionLock`. False when another session holds it: a live applier (its process is
    /// connected). PostgreSQL releases the lock the moment the holder's connection ends, so a
    /// SIGKILLed applier's lock is free at once, on whichever host it ran.
    func takeSessionLock(for holder: String) throws -> Bool {
        if lock.withLock({ sessionLocks[holder] != nil }) { return true }
        let connection = try connect()
        let session = PostgresSession(connection: connection, logger: logger, location: location.location)
        let taken = try session.fetchAll(sql: "SELECT pg_try_advisory_lock(?) AS taken", arguments: [Self.applierLockKey]).first?["taken"] ?? false
        if taken {
            lock.withLock { sessionLocks[holder] = connection }
        } else {
            try? connection.close().wait()
        }
        return taken
    }

    /// Lets go of `holder`'s session lock (closing its connection releases it).
    func releaseSessionLock(for holder: String) {
        if let connection = lock.withLock({ sessionLocks.removeValue(forKey: holder) }) { try? connection.close().wait() }
    }

    public func read<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        try transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body)
    }

    public func write<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        try transaction(begin: "BEGIN", lock: Self.writeLockKey, body)
    }

    /// Runs `body` in one transaction on a pooled connection; rolls back when it throws.
    func transaction<T>(begin: String, lock key: Int64? = nil, _ body: (any SQLSession) throws -> T) throws -> T {
        try withConnection { connection in
            let session = PostgresSession(connection: connection, logger: logger, location: location.location)
            try session.execute(sql: begin)
            do {
                if let key { try session.execute(sql: "SELECT pg_advisory_xact_lock(?)", arguments: [key]) }
                let result = try body(session)
                try session.flush()
                try session.execute(sql: "COMMIT")
                return result
            } catch {
                if !connection.isClosed { _ = try? session.run("ROLLBACK", []) }
                throw error
            }
        }
    }

    /// A PostgreSQL error as Cairn shows it: the server's message and SQLSTATE, never the query's values.
    static func failure(_ error: any Error, location: String, connecting: Bool = false) -> CairnError {
        if let error = error as? CairnError { return error }
        guard let psql = error as? PSQLError else {
            return CairnError("PostgreSQL at \(location): \(error)", hint: connecting ? "check the address, and that the server runs" : nil)
        }
        if let info = psql.serverInfo, let message = info[.message] {
            let state = info[.sqlState] ?? "?"
            return CairnError("PostgreSQL at \(location): \(message) (SQLSTATE \(state))",
                              hint: connecting ? "check the user, the password (PGPASSWORD) and the database name" : nil)
        }
        let cause = psql.underlying.map { ": \($0)" }
            ?? (psql.code == .sslUnsupported ? ": the server does not offer TLS, which the address's sslmode requires" : " (\(psql.code))")
        return CairnError("PostgreSQL at \(location): \(connecting ? "cannot connect" : "\(psql.code)")\(cause)",
                          hint: connecting ? "check the address, sslmode, and that the server runs" : "check that the server runs")
    }
}

/// A PostgreSQL connection inside a transaction. Audit rows, their model index, `meta` values,
/// new models and new training runs are held back and sent as one statement per table before the
/// transaction commits (or before a statement that names one of those tables): an apply step of
/// hundreds of changes costs a few round trips instead of several per change.
final class PostgresSession: DeferringSession {
    let connection: PostgresConnection
    let logger: Logger
    let location: String
    private(set) var changesCount = 0
    var pendingMeta: [String: String?] = [:]
    var auditHead: (id: Int64, hash: String)?
    private var pendingRows: [(key: String, table: String, columns: [String], rows: [[SQLValue]])] = []

    func deferInsert(into table: String, columns: [String], values: [SQLValue]) {
        let key = table + "(" + columns.joined(separator: ",") + ")"
        if let i = pendingRows.firstIndex(where: { $0.key == key }) {
            pendingRows[i].rows.append(values)
        } else {
            pendingRows.append((key, table, columns, [values]))
        }
    }

    func flush() throws {
        guard !pendingRows.isEmpty || !pendingMeta.isEmpty else { return }
        let rows = pendingRows, meta = pendingMeta
        pendingRows = []
        pendingMeta = [:]
        // In the order their tables were first written (audit_log before the index that refers to it).
        for group in rows {
            for statement in multiRowInserts(into: group.table, columns: group.columns, rows: group.rows, maximumValues: 30_000) {
                _ = try run(statement.sql, statement.arguments.values)
            }
        }
        let sets = meta.sorted { $0.key < $1.key }
        let upserts = sets.compactMap { key, value in value.map { (key, $0) } }
        if !upserts.isEmpty {
            _ = try run("INSERT INTO meta(key, value) VALUES " + Array(repeating: "(?, ?)", count: upserts.count).joined(separator: ", ")
                        + " ON CONFLICT(key) DO UPDATE SET value = excluded.value", upserts.flatMap { [SQLValue.text($0.0), .text($0.1)] })
        }
        for (key, value) in sets where value == nil {
            _ = try run("DELETE FROM meta WHERE key = ?", [.text(key)])
        }
    }

    /// Held-back writes go out before a statement that may read (or change) what they touch.
    private func flushBefore(_ sql: String) throws {
        guard !pendingRows.isEmpty || !pendingMeta.isEmpty else { return }
        if (!pendingMeta.isEmpty && sql.contains("meta")) || pendingRows.contains(where: { sql.contains($0.table) }) { try flush() }
    }

    init(connection: PostgresConnection, logger: Logger, location: String) {
        self.connection = connection
        self.logger = logger
        self.location = location
    }

    var dialect: SQLDialect { .postgres }

    func execute(sql: String, arguments: SQLArguments) throws {
        try flushBefore(sql)
        let result = try run(sql, arguments.values)
        changesCount = result.metadata.rows ?? 0
    }

    func fetchAll(sql: String, arguments: SQLArguments) throws -> [SQLRow] {
        try flushBefore(sql)
        let result = try run(sql, arguments.values)
        changesCount = result.metadata.rows ?? 0
        var rows: [SQLRow] = []
        rows.reserveCapacity(result.rows.count)
        var columns: [String: Int]?
        for row in result.rows {
            var values: [SQLValue] = []
            var names: [String] = []
            for cell in row {
                values.append(try Self.value(cell))
                if columns == nil { names.append(cell.columnName) }
            }
            if columns == nil {
                columns = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
            }
            rows.append(SQLRow(columns: columns!, values: values))
        }
        return rows
    }

    func run(_ sql: String, _ values: [SQLValue]) throws -> PostgresQueryResult {
        var bindings = PostgresBindings(capacity: values.count)
        for value in values {
            switch value {
            case .null: bindings.appendNull()
            case let .integer(i): bindings.append(i)
            case let .real(d): bindings.append(d)
            case let .text(s): bindings.append(s)
            }
        }
        do {
            return try connection.query(PostgresQuery(unsafeSQL: Self.numbered(sql), binds: bindings), logger: logger).wait()
        } catch {
            throw PostgresExecutor.failure(error, location: location)
        }
    }

    /// `?` placeholders as PostgreSQL's `$1`, `$2` … (outside quoted text). Byte by byte: the
    /// quote characters and `?` are ASCII, and a held-back step's insert has thousands of them.
    static func numbered(_ sql: String) -> String {
        guard sql.utf8.contains(UInt8(ascii: "?")) else { return sql }
        var out: [UInt8] = []
        out.reserveCapacity(sql.utf8.count * 2)
        var n = 0
        var quote: UInt8?
        for c in sql.utf8 {
            if let q = quote {
                if c == q { quote = nil }
                out.append(c)
            } else if c == UInt8(ascii: "'") || c == UInt8(ascii: "\"") {
                quote = c
                out.append(c)
            } else if c == UInt8(ascii: "?") {
                n += 1
                out.append(UInt8(ascii: "$"))
                JSONText.appendInt(n, to: &out)
            } else {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
        case .float4, .float8: return .real(try cell.decode(Double.self))
        case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        default: return .text(try cell.decode(String.self))
        }
    }
}

extension PostgresExecutor {
    /// The channel every generation bump is announced on.
    static let changeChannel = "cairn_registry"
}

/// A LISTEN on the registry's change channel, on its own connection and thread.
public final class ChangeWatch: @unchecked Sendable {
    private let lock = NSLock()
    private var stopped = false
    private var connection: PostgresConnection?
    private let done = DispatchSemaphore(value: 0)

    init(_ postgres: PostgresExecutor, _ onChange: @escaping @Sendable () -> Void) {
        Thread.detachNewThread { [self] in
            var failures = 0
            while !isStopped {
                do {
                    let connection = try postgres.connect()
                    guard lock.withLock({ () -> Bool in
                        if stopped { return false }
                        self.connection = connection
                        return true
                    }) else {
                        try? connection.close().wait()
                        break
                    }
                    connection.addListener(channel: PostgresExecutor.changeChannel) { _, _ in onChange() }
                    _ = try PostgresSession(connection: connection, logger: postgres.logger, location: postgres.location.location)
                        .run("LISTEN \(PostgresExecutor.changeChannel)", [])
                    if failures > 0 { onChange() }
                    failures = 0
                    try? connection.closeFuture.wait()
                } catch {}
                failures += 1
                // Reconnect after 1, 2, 4 … 10 s; polling covers the gap.
                let delay = min(10.0, pow(2, Double(min(failures - 1, 4))))
                let until = Date().addingTimeInterval(delay)
                while !isStopped, Date() < until { Thread.sleep(forTimeInterval: 0.05) }
            }
            done.signal()
        }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    /// Stops listening and closes the connection.
    public func stop() {
        let (first, connection) = lock.withLock { () -> (Bool, PostgresConnection?) in
            defer { stopped = true }
            return (!stopped, self.connection)
        }
        guard first else { return }
        try? connection?.close().wait()
        done.wait()
    }
}
