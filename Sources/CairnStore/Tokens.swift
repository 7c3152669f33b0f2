import CairnCore
import CairnReconcile
import Crypto
import Foundation

/// API tokens for `cairn serve`'s HTTP API. Only a token's SHA-256 is stored; the token itself is
/// shown once, when it is created. Creating and revoking one is recorded in the audit history.
extension RegistryDatabase {
    /// What a token may do: `read` the API; `feedback`: read, and report outcomes
    /// (`POST /v1/feedback`: what an application serving recommendations holds); `admin`: all
    /// of that, and ask for a pass now.
    /// `export`: read, and download artifact bundles (what a model's weights are: not for every reader).
    public enum TokenScope: String, Sendable, Codable, CaseIterable {
        case read, feedback, export, admin

        /// True when a token of this scope may call an endpoint that needs `needed`.
        public func allows(_ needed: TokenScope) -> Bool {
            switch self {
            case .admin: true
            case .feedback: needed == .read || needed == .feedback
            case .export: needed == .read || needed == .export
            case .read: needed == .read
            }
        }
    }

    /// An API token as listed: its name, scope and dates; never its secret.
    public struct TokenRecord: Sendable, Codable, Equatable {
        public var name: String
        public var scope: TokenScope
        public var createdAt: Int64
        public var createdBy: String
        public var revokedAt: Int64?
    }

    static func tokenHash(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Array(token.utf8))) }

    /// Creates a token named `name`; returns the token (`cairn_<64 hex>`), which is not stored.
    public func createToken(name: String, scope: TokenScope, by actor: String, at: Int64) throws -> String {
        let token = "cairn_" + hexString(randomBytes(32))
        try sql.write { db in
            if try SQLRow.fetchOne(db, sql: "SELECT 1 FROM api_tokens WHERE name = ?", arguments: [name]) != nil {
                throw CairnError("a token named \(name) exists already (revoked tokens keep their name)", hint: "choose another name")
            }
            try db.execute(sql: "INSERT INTO api_tokens(name, scope, hash, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                           arguments: [name, scope.rawValue, hexString(Self.tokenHash(token)), at, actor])
            try appendAudit(db, at: at, action: .tokenCreate, address: .token(name), version: nil, before: nil,
                            after: .object(["scope": .string(scope.rawValue)]), reason: "API token \(name) (\(scope.rawValue)) created by \(actor)",
                            file: nil, context: AuditContext(revision: nil, author: nil, actor: actor), models: [])
        }
        return token
    }

    /// Revokes a token at once; false if it was already revoked.
    public func revokeToken(name: String, by actor: String, at: Int64) throws -> Bool {
        try sql.write { db in
            guard let revoked = try SQLRow.fetchOne(db, sql: "SELECT revoked_at FROM api_tokens WHERE name = ?", arguments: [name]) else {
                throw CairnError("no token named \(name)", hint: "`cairn token list` lists them")
            }
            if (revoked["revoked_at"] as Int64?) != nil { return false }
            try db.execute(sql: "UPDATE api_tokens SET revoked_at = ? WHERE name = ?", arguments: [at, name])
            try appendAudit(db, at: at, action: .tokenRevoke, address: .token(name), version: nil, before: nil, after: nil,
                            reason: "API token \(name) revoked by \(actor)", file: nil,
                            context: AuditContext(revision: nil, author: nil, actor: actor), models: [])
            return true
        }
    }

    public func tokens() throws -> [TokenRecord] {
        try sql.read { db in
            try SQLRow.fetchAll(db, sql: "SELECT name, scope, created_at, created_by, revoked_at FROM api_tokens ORDER BY name").map { row in
                TokenRecord(name: row["name"], scope: TokenScope(rawValue: row["scope"]) ?? .read, createdAt: row["created_at"],
                            createdBy: row["created_by"], revokedAt: row["revoked_at"])
            }
        }
    }

    /// True when at least one token is not revoked.
    public func hasActiveTokens() throws -> Bool {
        try sql.read { db in try SQLRow.fetchOne(db, sql: "SELECT 1 FROM api_tokens WHERE revoked_at IS NULL LIMIT 1") != nil }
    }

    /// The scope of `token`, or nil if it is unknown or revoked. Every active token's hash is
    /// compared, each in constant time, so the answer's timing tells nothing about which matched.
    public func scope(ofToken token: String) throws -> TokenScope? {
        let given = Self.tokenHash(token)
        let active = try sql.read { db in
            try SQLRow.fetchAll(db, sql: "SELECT scope, hash FROM api_tokens WHERE revoked_at IS NULL").map { row in
                (scope: row["scope"] as String, hash: decodeHex(row["hash"] as String) ?? [])
            }
        }
        var found: TokenScope?
        for entry in active where entry.hash.count == given.count {
            var difference: UInt8 = 0
            for (a, b) in zip(entry.hash, given) { difference |= a ^ b }
            if difference == 0 { found = TokenScope(rawValue: entry.scope) }
        }
        return found
    }
}
