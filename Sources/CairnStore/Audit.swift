import CairnCore
import CairnReconcile
import Crypto
import Foundation

/// One row of the audit history.
public struct AuditEntry: Sendable, Codable, Equatable {
    public var id: Int64
    public var at: Int64
    public var action: AuditAction
    public var address: AuditAddress
    public var version: Int?
    public var before: JSONValue?
    public var after: JSONValue?
    public var reason: String
    /// Full commit id the change came from (nil for out-of-band changes).
    public var revision: String?
    public var author: String?
    public var file: String?
    /// `reconciler`, or the OS user of a CLI command.
    public var actor: String
    public var hash: String
    /// Who signed the revision, when signatures are verified (`ssh SHA256:… (principal)`).
    public var signer: String?
}

extension RegistryDatabase {
    static let genesisHash = String(repeating: "0", count: 64)

    /// Appends one row, chained to the previous one. Runs inside the caller's transaction so the
    /// row commits with the change it records, or not at all.
    func appendAudit(_ db: any SQLSession, at: Int64, action: AuditAction, address: AuditAddress, version: Int?, before: JSONValue?,
                     after: JSONValue?, reason: String, file: String?, context: AuditContext, models: [String]) throws {
        let deferring = db as? any DeferringSession
        let id: Int64, prev: String
        if let head = deferring?.auditHead {
            (id, prev) = (head.id + 1, head.hash)
        } else {
            let last = try SQLRow.fetchOne(db, sql: "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            (id, prev) = ((last?["id"] as Int64? ?? 0) + 1, last?["hash"] ?? Self.genesisHash)
        }
        let fields = AuditFields(id: id, at: at, action: action.rawValue, address: address.description, version: version,
                                 before: before?.canonicalText, after: after?.canonicalText, reason: reason,
                                 revision: context.revision, author: context.author, file: file, actor: context.actor, signer: context.signer)
        let hash = fields.hash(previous: prev)
        // Its notification, in the same transaction: never lost, never invented.
        if let kind = Self.eventKind(action: action, after: after, reason: reason) {
            var payload: [String: JSONValue] = ["reason": .string(reason)]
            if action == .promote {
                payload["before"] = before ?? .null
                payload["after"] = after ?? .null
            }
            if let signer = context.signer { payload["signer"] = .string(signer) }
            try appendEvent(db, kind: kind, at: at, address: address.description, version: version, revision: context.revision, auditID: id,
                            payload: .object(payload))
        }
        if let deferring {
            // Sent with the transaction's other rows (and the head) before it commits.
            deferring.auditHead = (id, hash)
            deferring.deferInsert(into: "audit_log", columns: Self.auditColumns,
                                  values: SQLArguments([id, at, action.rawValue, address.description, version, fields.before, fields.after, reason,
                                                        context.revision, context.author, file, context.actor, prev, hash, context.signer]).values)
            try setMeta(db, "audit_head", "\(id) \(hash)")
            for model in Set(models).sorted() {
                deferring.deferInsert(into: "audit_models", columns: ["audit_id", "model"], values: [.integer(id), .text(model)])
            }
            return
        }
        try db.execute(sql: """
            INSERT INTO audit_log(id, at, action, address, version, before, after, reason, revision, author, file, actor, prev_hash, hash, signer)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [id, at, action.rawValue, address.description, version, fields.before, fields.after, reason, context.revision,
                             context.author, file, context.actor, prev, hash, context.signer])
        // The head is kept apart from the rows, so deleting the newest rows is detected too.
        try setMeta(db, "audit_head", "\(id) \(hash)")
        for model in Set(models).sorted() {
            try db.execute(sql: "INSERT INTO audit_models(audit_id, model) VALUES (?, ?)", arguments: [id, model])
        }
    }


    static let auditColumns = ["id", "at", "action", "address", "version", "before", "after", "reason", "revision", "author", "file", "actor",
                               "prev_hash", "hash", "signer"]

    /// The newest audit row's id and hash (`"ID HASH"`), as kept apart from the rows; nil before any.
    public func auditHead() throws -> String? {
        try sql.read { db in try meta(db, "audit_head") }
    }

    /// Recomputes the chain. Returns nil when intact, or the first row that does not match
    /// (altered, inserted out of order, or following a deleted row).
    public func verifyAudit() throws -> AuditBreak? {
        try sql.read { db in try verifyAudit(db) }
    }

    func verifyAudit(_ db: any SQLSession) throws -> AuditBreak? {
        do {
            var previous = Self.genesisHash
            var expectedID: Int64 = 1
            var count = 0
            var rows = AuditCursor(db: db, columns: "*")
            while let row = try rows.next() {
                let id: Int64 = row["id"]
                let fields = AuditFields(id: id, at: row["at"], action: row["action"], address: row["address"], version: row["version"],
                                         before: row["before"], after: row["after"], reason: row["reason"], revision: row["revision"],
                                         author: row["author"], file: row["file"], actor: row["actor"], signer: row["signer"])
                if id != expectedID {
                    return AuditBreak(id: id, count: count, problem: "row \(expectedID) is missing (deleted?); the chain jumps to row \(id)")
                }
                if (row["prev_hash"] as String) != previous {
                    return AuditBreak(id: id, count: count, problem: "row \(id) does not follow row \(id - 1) (prev_hash differs)")
                }
                let hash = fields.hash(previous: previous)
                if (row["hash"] as String) != hash {
                    return AuditBreak(id: id, count: count, problem: "row \(id) was altered (its content no longer matches its hash)")
                }
                previous = hash
                expectedID += 1
                count += 1
            }
            let head = try meta(db, "audit_head")
            let expectedHead = count == 0 ? nil : "\(expectedID - 1) \(previous)"
            if head != expectedHead {
                return AuditBreak(id: expectedID, count: count,
                                  problem: "the chain ends at row \(expectedID - 1) but the recorded head is \(head ?? "empty"): newest rows were deleted or replaced")
            }
            return nil
        }
    }

    public func auditCount() throws -> Int {
        try sql.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_log") ?? 0 }
    }
}

/// Where the audit chain breaks, and how (a row altered, deleted or out of order).
public struct AuditBreak: Sendable, Equatable {
    public var id: Int64
    /// Rows verified before the break.
    public var count: Int
    public var problem: String
}

/// The hashed content of an audit row: every column but the hashes, canonical JSON.
struct AuditFields {
    var id: Int64
    var at: Int64
    var action: String
    var address: String
    var version: Int?
    var before: String?
    var after: String?
    var reason: String
    var revision: String?
    var author: String?
    var file: String?
    var actor: String
    /// Hashed only when set: rows written before signatures were recorded keep their hashes.
    var signer: String? = nil

    func hash(previous: String) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(previous.utf8))
        hasher.update(data: [UInt8(ascii: "\n")])
        hasher.update(data: canonicalBytes)
        return hexString(hasher.finalize())
    }

    /// The row's canonical JSON: an object of these fields with its keys in canonical order,
    /// written directly (the same bytes as that object's `canonicalText`; `JSONTextTests`).
    var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + (before?.utf8.count ?? 4) + (after?.utf8.count ?? 4))
        func key(_ name: String, first: Bool = false) {
            if !first { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: name.utf8)
            out.append(contentsOf: "\":".utf8)
        }
        func string(_ s: String?) {
            if let s { JSONText.appendString(s, form: .canonical, to: &out) } else { out.append(contentsOf: "null".utf8) }
        }
        out.append(UInt8(ascii: "{"))
        key("action", first: true); string(action)
        key("actor"); string(actor)
        key("address"); string(address)
        key("after"); string(after)
        key("at"); JSONText.appendInt(Int(at), to: &out)
        key("author"); string(author)
        key("before"); string(before)
        key("file"); string(file)
        key("id"); JSONText.appendInt(Int(id), to: &out)
        key("reason"); string(reason)
        key("revision"); string(revision)
        if let signer {
            key("signer")
            string(signer)
        }
        key("version")
        if let version { JSONText.appendInt(version, to: &out) } else { out.append(contentsOf: "null".utf8) }
        out.append(UInt8(ascii: "}"))
        return out
    }
}

/// Every audit row of a transaction in id order (any id, a forged negative one included), read
/// 10,000 at a time: a long history is never held whole.
struct AuditCursor {
    let db: any SQLSession
    let columns: String
    private var page: [SQLRow] = []
    private var index = 0
    private var last = Int64.min
    private var exhausted = false
    static let pageSize = 10_000

    /// Rows after id `after` (every row by default).
    init(db: any SQLSession, columns: String, after: Int64 = .min) {
        self.db = db
        self.columns = columns
        last = after
    }

    mutating func next() throws -> SQLRow? {
        if index == page.count {
            if exhausted { return nil }
            page = try SQLRow.fetchAll(db, sql: "SELECT \(columns) FROM audit_log WHERE id > ? ORDER BY id LIMIT \(Self.pageSize)", arguments: [last])
            index = 0
            exhausted = page.count < Self.pageSize
            if page.isEmpty { return nil }
        }
        let row = page[index]
        index += 1
        last = row["id"]
        return row
    }
}
