import CairnCore
import CairnReconcile
import Foundation

extension RegistryDatabase {
    /// Takes the lease unless a live holder has it; returns that holder then. An expired lease,
    /// or one whose holder on this host has died, is taken over.
    ///
    /// On PostgreSQL the holder also keeps a session lock on a connection of its own: when no
    /// other session holds it, the recorded holder is gone (killed, crashed, on any host) and its
    /// lease is taken over at once. A holder cut off from the database keeps the lock until the
    /// server notices its connection is dead; its lease is then taken over when it expires, and
    /// it can no longer apply: every apply step renews the lease in its own transaction.
    public func tryAcquireLease(_ holder: LeaseHolder, ttl: Int64 = 120, now: Int64) throws -> LeaseConflict? {
        let postgres = sql as? PostgresExecutor
        var noLiveSession = false
        do {
            return try sql.write { db -> LeaseConflict? in
                // Under the write lock, as `releaseLease` lets go of it: another applier sees the
                // lease row and the session lock change together, never a lease being released
                // with its lock still held (it wrote a lease then without the lock, and the next
                // applier to find the lock free took that live lease over: the concurrency suite
                // saw a reconcile lose its lease so).
                noLiveSession = try postgres?.takeSessionLock(for: holder.id) ?? false
                if let row = try SQLRow.fetchOne(db, sql: "SELECT * FROM applier_lease WHERE id = 1"),
                   (row["holder"] as String) != holder.id, (row["expires_at"] as Int64) > now, !noLiveSession,
                   !Self.holderIsGone(pid: row["pid"], host: row["host"], asSeenBy: holder) {
                    return LeaseConflict(pid: row["pid"], host: row["host"], since: row["acquired_at"])
                }
                try db.execute(sql: """
                    INSERT INTO applier_lease(id, holder, pid, host, acquired_at, expires_at) VALUES (1, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET holder = excluded.holder, pid = excluded.pid, host = excluded.host,
                        acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
                    """, arguments: [holder.id, holder.pid, holder.host, now, now + ttl])
                return nil
            }
        } catch {
            postgres?.releaseSessionLock(for: holder.id)
            throw error
        }
    }

    /// True when the lease was taken by a process on this host that no longer exists (killed, crashed),
    /// so it can be taken over at once instead of after it expires. A reused pid only makes us wait.
    static func holderIsGone(pid: Int32, host: String, asSeenBy holder: LeaseHolder) -> Bool {
        guard host == holder.host, pid > 0, pid != holder.pid else { return false }
        return kill(pid, 0) == -1 && errno == ESRCH
    }

    /// Extends the lease inside a write transaction; fails if another applier took it over.
    func renewLease(_ db: any SQLSession, _ holder: LeaseHolder, ttl: Int64 = 120, now: Int64) throws {
        try db.execute(sql: "UPDATE applier_lease SET expires_at = ? WHERE id = 1 AND holder = ?", arguments: [now + ttl, holder.id])
        if db.changesCount == 0 {
            throw CairnError("lost the applier lease (another reconcile took over after it expired)", hint: "run the command again")
        }
    }

    public func releaseLease(_ holder: LeaseHolder) throws {
        let postgres = sql as? PostgresExecutor
        defer { postgres?.releaseSessionLock(for: holder.id) }
        try sql.write { db in
            try db.execute(sql: "DELETE FROM applier_lease WHERE id = 1 AND holder = ?", arguments: [holder.id])
            // Before the deletion commits, under the write lock (see `tryAcquireLease`).
            postgres?.releaseSessionLock(for: holder.id)
        }
    }
}
