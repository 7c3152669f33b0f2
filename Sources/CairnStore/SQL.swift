import CairnCore
import Foundation

// The store's SQL port: the registry's logic is written once, over these few types, and runs on
// SQLite (`SQLiteExecutor`, through GRDB) or PostgreSQL (`PostgresExecutor`, through PostgresNIO).
// Statements use `?` placeholders and the SQL both databases accept; the few places that differ
// ask the session's `dialect`.

/// Which database a session talks to.
public enum SQLDialect: String, Sendable {
    case sqlite, postgres
}

/// One value read from or bound to a statement.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
}

/// A Swift value that can be bound to a `?` placeholder.
public protocol SQLBindable {
    var sqlValue: SQLValue { get }
}

/// A Swift value that can be read from a column.
public protocol SQLDecodable {
    /// Nil when the column's value is not of this type (NULL included, but for optionals).
    static func fromSQL(_ value: SQLValue) -> Self?
}

extension String: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .text(self) }
    public static func fromSQL(_ value: SQLValue) -> String? {
        if case let .text(s) = value { return s }
        return nil
    }
}

extension Int64: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .integer(self) }
    public static func fromSQL(_ value: SQLValue) -> Int64? {
        switch value {
        case let .integer(i): i
        case let .real(d) where d.rounded() == d: Int64(exactly: d)
        default: nil
        }
    }
}

extension Int: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .integer(Int64(self)) }
    public static func fromSQL(_ value: SQLValue) -> Int? { Int64.fromSQL(value).map { Int($0) } }
}

extension Int32: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .integer(Int64(self)) }
    public static func fromSQL(_ value: SQLValue) -> Int32? { Int64.fromSQL(value).flatMap { Int32(exactly: $0) } }
}

extension Double: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .real(self) }
    public static func fromSQL(_ value: SQLValue) -> Double? {
        switch value {
        case let .real(d): d
        case let .integer(i): Double(i)
        default: nil
        }
    }
}

/// Booleans are stored as 0 and 1 in both databases.
extension Bool: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .integer(self ? 1 : 0) }
    public static func fromSQL(_ value: SQLValue) -> Bool? { Int64.fromSQL(value).map { $0 != 0 } }
}

extension Optional: SQLDecodable where Wrapped: SQLDecodable {
    public static func fromSQL(_ value: SQLValue) -> Wrapped?? {
        if case .null = value { return .some(nil) }
        return Wrapped.fromSQL(value).map { .some($0) }
    }
}

/// The values bound to a statement's `?` placeholders, in order.
public struct SQLArguments: ExpressibleByArrayLiteral, Sendable {
    public var values: [SQLValue]

    public init(_ values: [(any SQLBindable)?]) {
        self.values = values.map { $0?.sqlValue ?? .null }
    }

    public init(values: [SQLValue]) {
        self.values = values
    }

    public init(arrayLiteral elements: (any SQLBindable)?...) {
        self.init(elements)
    }
}

/// One result row; columns are read by name.
public struct SQLRow: Sendable {
    let columns: [String: Int]
    let values: [SQLValue]

    public init(columns: [String: Int], values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    /// The value of `column`. A column that does not exist, or holds a value of another type
    /// (NULL read as non-optional), is a programming error, as in GRDB.
    public subscript<T: SQLDecodable>(_ column: String) -> T {
        guard let index = columns[column] else { preconditionFailure("no column \(column) in the result") }
        guard let value = T.fromSQL(values[index]) else {
            preconditionFailure("column \(column) holds \(values[index]), not \(T.self)")
        }
        return value
    }

    /// The first column's value.
    var first: SQLValue { values.first ?? .null }

    /// The columns' names, in the result's order.
    public var columnNames: [String] {
        var names = [String](repeating: "", count: values.count)
        for (name, index) in columns where index < names.count && names[index].isEmpty { names[index] = name }
        return names
    }

    /// The value of the column at `index`.
    public func value(at index: Int) -> SQLValue { values[index] }
}

/// A connection inside one transaction. Not shared between threads.
public protocol SQLSession: AnyObject {
    var dialect: SQLDialect { get }
    /// Rows the last `execute` inserted, changed or deleted.
    var changesCount: Int { get }
    func execute(sql: String, arguments: SQLArguments) throws
    func fetchAll(sql: String, arguments: SQLArguments) throws -> [SQLRow]
}

extension SQLSession {
    func execute(sql: String) throws { try execute(sql: sql, arguments: []) }
}

/// Writes a session may hold back until its transaction commits (or until a statement reads what
/// they touch), to send them as one statement each instead of one per row: on a database server,
/// every statement is a round trip. SQLite sessions write at once (a statement costs microseconds).
protocol DeferringSession: SQLSession {
    /// `meta` values written in this transaction and not yet sent (nil: deleted).
    var pendingMeta: [String: String?] { get set }
    /// The audit chain's head as this transaction last wrote it.
    var auditHead: (id: Int64, hash: String)? { get set }
    /// Queues one row for `table`, sent with the others of its table and columns.
    func deferInsert(into table: String, columns: [String], values: [SQLValue])
    /// Sends everything held back.
    func flush() throws
}

extension SQLRow {
    static func fetchAll(_ db: any SQLSession, sql: String, arguments: SQLArguments = []) throws -> [SQLRow] {
        try db.fetchAll(sql: sql, arguments: arguments)
    }

    static func fetchOne(_ db: any SQLSession, sql: String, arguments: SQLArguments = []) throws -> SQLRow? {
        try db.fetchAll(sql: sql, arguments: arguments).first
    }
}

extension SQLDecodable {
    /// The first column of the first row; nil when there is no row or it is NULL.
    static func fetchOne(_ db: any SQLSession, sql: String, arguments: SQLArguments = []) throws -> Self? {
        guard let row = try db.fetchAll(sql: sql, arguments: arguments).first else { return nil }
        return Self.fromSQL(row.first)
    }

    /// The first column of every row (NULLs left out).
    static func fetchAll(_ db: any SQLSession, sql: String, arguments: SQLArguments = []) throws -> [Self] {
        try db.fetchAll(sql: sql, arguments: arguments).compactMap { Self.fromSQL($0.first) }
    }
}

/// A database the store runs transactions on.
public protocol SQLExecutor: Sendable {
    var dialect: SQLDialect { get }
    /// Runs `body` in one read-only transaction that sees one consistent snapshot.
    func read<T>(_ body: (any SQLSession) throws -> T) throws -> T
    /// Runs `body` in one write transaction: it commits whole or not at all. Write transactions
    /// of every process sharing the registry run one at a time (see docs/registry.md).
    func write<T>(_ body: (any SQLSession) throws -> T) throws -> T
    /// Closes every connection (a PostgreSQL executor; SQLite closes with the last reference).
    func close()
}

extension SQLExecutor {
    public func close() {}
}

/// `INSERT INTO table(columns) VALUES (…), (…) …` statements for `rows`, several rows each (fewer
/// round trips to a server), with at most `maximumValues` bound values a statement.
func multiRowInserts(into table: String, columns: [String], rows: [[SQLValue]], maximumValues: Int) -> [(sql: String, arguments: SQLArguments)] {
    guard !columns.isEmpty else { return [] }
    let perStatement = max(1, maximumValues / columns.count)
    let tuple = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
    return stride(from: 0, to: rows.count, by: perStatement).map { start in
        let batch = rows[start..<min(rows.count, start + perStatement)]
        return ("INSERT INTO \(table)(\(columns.joined(separator: ", "))) VALUES " + Array(repeating: tuple, count: batch.count).joined(separator: ", "),
                SQLArguments(values: batch.flatMap { $0 }))
    }
}
