import CairnCore
import Foundation

/// `cairn db migrate`: copies a whole registry (SQLite to PostgreSQL, or back) into a new, empty
/// one, audit chain included, and proves on arrival that the copy is the same registry.
extension RegistryDatabase {
    /// The tables copied, parents first, each with the column it is ordered by. Not copied: the
    /// applier lease (it belongs to a process of the source) and the migration bookkeeping.
    static let copiedTables: [(table: String, order: String)] = [
        ("meta", "key"), ("outcome_weights", "name"), ("templates", "name"), ("models", "name"), ("versions", "model, number"),
        ("training_runs", "id"), ("serving_targets", "name"), ("audit_log", "id"), ("audit_models", "audit_id, model"),
        ("reconcile_runs", "id"), ("api_tokens", "name"), ("run_results", "run_id"),
        ("decision_traces", "request_id"), ("shadow_answers", "request_id, model, version"), ("feedback", "id"),
        ("events", "id"), ("deliveries", "event_id, receiver"),
    ]

    /// The copied tables' names, in copy order.
    public static var copiedTableNames: [String] { copiedTables.map(\.table) }

    /// What a copy moved: rows per table, in copy order.
    public struct CopyReport: Sendable, Equatable {
        public var rows: [String: Int]
        public var auditRows: Int
        public var generation: Int
    }

    /// Copies every row of `source` into this registry, which must be empty, in one transaction.
    /// Refused when the source's audit chain or state does not verify (a copy must not launder an
    /// edit made beside Cairn). Before committing, the copy's chain is verified, its state checked
    /// against its history, and its observed state compared with the source's; any difference
    /// rolls the whole copy back.
    public func copy(from source: RegistryDatabase) throws -> CopyReport {
        if let broken = try source.verifyAudit() {
            throw CairnError("the audit chain of \(source.path) is broken at row \(broken.id): \(broken.problem); nothing was copied",
                             hint: "run `cairn audit verify --db \(source.path)`; a registry edited beside Cairn cannot be migrated as it is")
        }
        if let first = try source.verifyState().first {
            throw CairnError("\(source.path) does not match its audit history (\(first)); nothing was copied",
                             hint: "run `cairn audit verify --db \(source.path)` for every difference")
        }
        // One snapshot of the source.
        let (tables, expected, head) = try source.sql.read { db -> ([(String, [SQLRow])], ObservedState, String?) in
            let tables = try Self.copiedTables.map { ($0.table, try SQLRow.fetchAll(db, sql: "SELECT * FROM \($0.table) ORDER BY \($0.order)")) }
            return (tables, try source.loadObserved(db), try source.meta(db, "audit_head"))
        }
        return try sql.write { db in
            for (table, _) in Self.copiedTables + [("applier_lease", "id")] {
                if let n = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM \(table)"), n > 0 {
                    throw CairnError("the registry at \(path) is not empty (\(n) rows in \(table)); nothing was copied",
                                     hint: "migrate into a new, empty database")
                }
            }
            var report = CopyReport(rows: [:], auditRows: 0, generation: expected.generation)
            for (table, rows) in tables {
                try Self.insert(db, table: table, rows: rows)
                report.rows[table] = rows.count
            }
            report.auditRows = report.rows["audit_log"] ?? 0
            if db.dialect == .postgres {
                // Identity columns continue after the copied ids.
                for table in ["training_runs", "reconcile_runs", "feedback", "events"] {
                    try db.execute(sql: "SELECT setval(pg_get_serial_sequence('\(table)', 'id'), COALESCE((SELECT MAX(id) FROM \(table)), 0) + 1, false)")
                }
            }
            // The proof, inside the transaction: a copy that does not verify is never committed.
            if let broken = try verifyAudit(db) {
                throw CairnError("the copy's audit chain does not verify (row \(broken.id): \(broken.problem)); nothing was copied")
            }
            if let first = try verifyState(db).first {
                throw CairnError("the copy does not match its audit history (\(first)); nothing was copied")
            }
            if try meta(db, "audit_head") != head {
                throw CairnError("the copy's audit head differs from the source's; nothing was copied")
            }
            if try loadObserved(db) != expected {
                throw CairnError("the copy's observed state differs from the source's; nothing was copied")
            }
            return report
        }
    }

    /// Inserts `rows` into `table`, several rows a statement.
    static func insert(_ db: any SQLSession, table: String, rows: [SQLRow]) throws {
        guard let columns = rows.first?.columnNames else { return }
        for statement in multiRowInserts(into: table, columns: columns, rows: rows.map(\.values), maximumValues: 2000) {
            try db.execute(sql: statement.sql, arguments: statement.arguments)
        }
    }
}
