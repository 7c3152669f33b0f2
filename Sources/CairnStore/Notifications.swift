import CairnCore
import Foundation

// The notifications outbox. An event is written in the transaction of what it reports (with its
// audit row, or with the recorded failed pass), so none is lost and none is invented; receivers'
// deliveries are rows too, so a process killed while delivering loses nothing.

/// One event of the outbox.
public struct NotificationEvent: Sendable, Equatable, Codable {
    /// What happened: `promotion`, `approval`, `rejection`, `rollback`, `drift`, `stall`, `training_failure`.
    public var kind: String
    public var id: Int
    /// Unix seconds.
    public var at: Int64
    public var address: String
    public var version: Int?
    public var revision: String?
    /// The audit row it was written with (nil for a stall, which has none).
    public var auditID: Int64?
    /// `reason`, and for promotions the routes before and after.
    public var payload: JSONValue

    /// Every kind, in the order the docs list them.
    public static let kinds = ["promotion", "approval", "rejection", "rollback", "drift", "stall", "training_failure"]
}

/// One receiver's delivery of one event.
public struct DeliveryRecord: Sendable, Equatable, Codable {
    public var eventID: Int
    public var receiver: String
    public var kind: String
    public var address: String
    /// `pending`, `delivered` or `failed`.
    public var state: String
    public var attempts: Int
    public var nextAttemptAt: Int64?
    public var lastError: String?
    public var deliveredAt: Int64?
    public var eventAt: Int64
}

extension RegistryDatabase {
    /// The event an audit row reports, if it reports one.
    static func eventKind(action: AuditAction, after: JSONValue?, reason: String) -> String? {
        switch action {
        case .approve: return "approval"
        case .reject: return "rejection"
        case .fail: return "training_failure"
        case .promote:
            if reason.hasPrefix("break-glass rollback") || reason.hasPrefix("rollback guard tripped") { return "rollback" }
            if reason.hasPrefix("revert drift") { return "drift" }
            return "promotion"
        default: return nil
        }
    }

    /// Writes the event of an audit row in its transaction.
    func appendEvent(_ db: any SQLSession, kind: String, at: Int64, address: String, version: Int?, revision: String?, auditID: Int64?,
                     payload: JSONValue) throws {
        let values: [SQLValue] = [.integer(at), .text(kind), .text(address), version.map { .integer(Int64($0)) } ?? .null,
                                  revision.map(SQLValue.text) ?? .null, auditID.map(SQLValue.integer) ?? .null, .text(payload.canonicalText)]
        let columns = ["at", "kind", "address", "version", "revision", "audit_id", "payload"]
        if let deferring = db as? any DeferringSession {
            deferring.deferInsert(into: "events", columns: columns, values: values)
            return
        }
        try db.execute(sql: "INSERT INTO events(\(columns.joined(separator: ", "))) VALUES (?, ?, ?, ?, ?, ?, ?)", arguments: SQLArguments(values: values))
    }

    static func event(_ row: SQLRow) -> NotificationEvent {
        NotificationEvent(kind: row["kind"], id: row["id"], at: row["at"], address: row["address"], version: row["version"], revision: row["revision"],
                          auditID: row["audit_id"], payload: JSONValue.parse(row["payload"] as String) ?? .null)
    }

    /// Creates `receiver`'s deliveries of the events written since its last look (of the kinds it
    /// takes, and not older than `notBefore`: a receiver new to the registry gets the recent
    /// ones, not the whole history), in one transaction with its cursor; returns how many.
    @discardableResult
    public func enqueueDeliveries(receiver: String, kinds: Set<String>, now: Int64, notBefore: Int64 = 0) throws -> Int {
        let key = "notify_cursor:\(receiver)"
        // Nothing new: no write transaction at all.
        let newest = try sql.read { db in (try Int.fetchOne(db, sql: "SELECT MAX(id) FROM events") ?? 0, Int(try meta(db, key) ?? "") ?? 0) }
        guard newest.0 > newest.1 else { return 0 }
        return try sql.write { db in
            let cursor = Int(try meta(db, key) ?? "") ?? 0
            let rows = try SQLRow.fetchAll(db, sql: "SELECT id, kind, at FROM events WHERE id > ? ORDER BY id", arguments: [cursor])
            guard let last: Int = rows.last?["id"] else { return 0 }
            var added = 0
            for row in rows where kinds.contains(row["kind"] as String) && (row["at"] as Int64) >= notBefore {
                try db.execute(sql: "INSERT INTO deliveries(event_id, receiver, state, next_attempt_at) VALUES (?, ?, 'pending', ?)",
                               arguments: [row["id"] as Int, receiver, now])
                added += 1
            }
            try setMeta(db, key, String(last))
            return added
        }
    }

    /// `receiver`'s oldest pending delivery (deliveries go out in event order), with its event.
    public func nextDelivery(receiver: String) throws -> (event: NotificationEvent, attempts: Int, nextAttemptAt: Int64)? {
        try sql.read { db in
            guard let row = try SQLRow.fetchOne(db, sql: """
                SELECT e.*, d.attempts, d.next_attempt_at FROM deliveries d JOIN events e ON e.id = d.event_id
                WHERE d.receiver = ? AND d.state = 'pending' ORDER BY d.event_id LIMIT 1
                """, arguments: [receiver]) else { return nil }
            return (Self.event(row), row["attempts"], (row["next_attempt_at"] as Int64?) ?? 0)
        }
    }

    public func markDelivered(event: Int, receiver: String, at: Int64) throws {
        try sql.write { db in
            try db.execute(sql: """
                UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL, next_attempt_at = NULL
                WHERE event_id = ? AND receiver = ? AND state = 'pending'
                """, arguments: [at, event, receiver])
        }
    }

    /// Records a failed attempt: tried again at `retryAt`, or given up (`failed`) when nil.
    public func markAttemptFailed(event: Int, receiver: String, error: String, retryAt: Int64?) throws {
        try sql.write { db in
            try db.execute(sql: """
                UPDATE deliveries SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, state = ?
                WHERE event_id = ? AND receiver = ? AND state = 'pending'
                """, arguments: [String(error.prefix(500)), retryAt, retryAt == nil ? "failed" : "pending", event, receiver])
        }
    }

    /// Deliveries, newest event first.
    public func deliveries(receiver: String? = nil, state: String? = nil, limit: Int = 100) throws -> [DeliveryRecord] {
        try sql.read { db in
            var conditions: [String] = [], arguments: [(any SQLBindable)?] = []
            if let receiver { conditions.append("d.receiver = ?"); arguments.append(receiver) }
            if let state { conditions.append("d.state = ?"); arguments.append(state) }
            arguments.append(limit)
            return try SQLRow.fetchAll(db, sql: """
                SELECT d.*, e.kind, e.address, e.at AS event_at FROM deliveries d JOIN events e ON e.id = d.event_id
                \(conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")) ORDER BY d.event_id DESC, d.receiver LIMIT ?
                """, arguments: SQLArguments(arguments)).map { row in
                DeliveryRecord(eventID: row["event_id"], receiver: row["receiver"], kind: row["kind"], address: row["address"], state: row["state"],
                               attempts: row["attempts"], nextAttemptAt: row["next_attempt_at"], lastError: row["last_error"],
                               deliveredAt: row["delivered_at"], eventAt: row["event_at"])
            }
        }
    }

    /// Puts failed deliveries back in the queue (one event's, or all of a receiver's); returns how many.
    @discardableResult
    public func retryDeliveries(event: Int?, receiver: String?, now: Int64) throws -> Int {
        try sql.write { db in
            var conditions = ["state = 'failed'"], arguments: [(any SQLBindable)?] = [now]
            if let event { conditions.append("event_id = ?"); arguments.append(event) }
            if let receiver { conditions.append("receiver = ?"); arguments.append(receiver) }
            try db.execute(sql: "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE " + conditions.joined(separator: " AND "),
                           arguments: SQLArguments(arguments))
            return db.changesCount
        }
    }

    /// What makes an event's idempotency key unique across registries: a random id kept in the
    /// registry (made once), so a receiver fed by two registries never mixes their events.
    public func notificationPrefix() throws -> String {
        if let id = try sql.read({ db in try meta(db, "events_id") }) { return id }
        return try sql.write { db in
            if let id = try meta(db, "events_id") { return id }
            let id = "cairn-" + hexString(randomBytes(8))
            try setMeta(db, "events_id", id)
            return id
        }
    }

    /// Every event, oldest first (for tests and `cairn notifications --events`).
    public func events(limit: Int = 1000) throws -> [NotificationEvent] {
        try sql.read { db in try SQLRow.fetchAll(db, sql: "SELECT * FROM events ORDER BY id LIMIT ?", arguments: [limit]).map(Self.event) }
    }
}
