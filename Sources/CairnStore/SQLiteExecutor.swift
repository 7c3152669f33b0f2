import CairnCore
import Foundation
import GRDB

/// The SQLite adapter of the SQL port: a GRDB pool (or a read-only queue) over one file, WAL mode.
/// SQLite has one writer at a time across every process; readers see a consistent snapshot.
public struct SQLiteExecutor: SQLExecutor {
    let writer: any DatabaseWriter
    public var dialect: SQLDialect { .sqlite }

    public init(writer: any DatabaseWriter) { self.writer = writer }

    public func read<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        try writer.read { db in try body(GRDBSession(db)) }
    }

    public func write<T>(_ body: (any SQLSession) throws -> T) throws -> T {
        try writer.write { db in try body(GRDBSession(db)) }
    }
}

/// A GRDB connection inside a transaction. Statements are prepared once per connection and reused.
final class GRDBSession: SQLSession {
    let db: GRDB.Database
    init(_ db: GRDB.Database) { self.db = db }

    var dialect: SQLDialect { .sqlite }
    var changesCount: Int { db.changesCount }

    func execute(sql: String, arguments: SQLArguments) throws {
        try db.cachedStatement(sql: sql).execute(arguments: Self.arguments(arguments))
    }

    func fetchAll(sql: String, arguments: SQLArguments) throws -> [SQLRow] {
        let statement = try db.cachedStatement(sql: sql)
        let names = statement.columnNames
        // The leftmost column of a name wins, as in GRDB.
        let columns = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        var rows: [SQLRow] = []
        let cursor = try GRDB.Row.fetchCursor(statement, arguments: Self.arguments(arguments))
        while let row = try cursor.next() {
            var values: [SQLValue] = []
            values.reserveCapacity(names.count)
            for index in 0..<names.count {
                values.append(Self.value((row[index] as DatabaseValue).storage))
            }
            rows.append(SQLRow(columns: columns, values: values))
        }
        return rows
    }

    static func arguments(_ arguments: SQLArguments) -> StatementArguments {
        StatementArguments(arguments.values.map { value -> (any DatabaseValueConvertible)? in
            switch value {
            case .null: nil
            case let .integer(i): i
            case let .real(d): d
            case let .text(s): s
            }
        })
    }

    static func value(_ storage: DatabaseValue.Storage) -> SQLValue {
        switch storage {
        case .null: .null
        case let .int64(i): .integer(i)
        case let .double(d): .real(d)
        case let .string(s): .text(s)
        case let .blob(data): .text(String(decoding: data, as: UTF8.self))
        }
    }
}
