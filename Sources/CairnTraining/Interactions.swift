import CairnCore
import Foundation

/// The interactions CSV (`user_id,item_id,event,timestamp`), weighted by outcome weights and
/// folded into one signed signal per (user, item).
///
/// A pair's signal is the sum of its events' weights. Events the template does not list, and
/// events whose weight is 0, are ignored. A pair whose sum is ≤ 0 is a negative signal: it is
/// never a positive example, it lowers the item's popularity, and the item is not recommended
/// back to that user.
public struct Interactions: Sendable {
    /// Interned ids: users[i], items[j].
    public var users: [String]
    public var items: [String]
    /// Per user: (item index, signal, last timestamp), items ascending.
    public var pairs: [[Pair]]
    public var rows: Int

    /// One (user, item) pair and its folded signal.
    public struct Pair: Sendable, Equatable {
        public var item: Int
        public var signal: Double
        public var lastSeen: Int64
    }

    /// Parses and weights the CSV. Column order comes from the header.
    public static func load(_ bytes: [UInt8], events: [String], weights: [String: Double]) throws -> Interactions {
        var lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        guard let headerLine = lines.first else { throw CairnError("the dataset is empty: it needs the header user_id,item_id,event,timestamp") }
        let header = fields(headerLine).map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespaces) }
        func column(_ name: String) throws -> Int {
            // Never quote the file: a dataset path pointed at a secret would print it here.
            guard let i = header.firstIndex(of: name) else {
                throw CairnError("dataset line 1 (\(header.count) column\(header.count == 1 ? "" : "s"), \(headerLine.count) bytes): the header has no '\(name)' column; "
                                    + "a dataset is CSV whose first line names the columns user_id,item_id,event,timestamp")
            }
            return i
        }
        let (cu, ci, ce, ct) = (try column("user_id"), try column("item_id"), try column("event"), try column("timestamp"))
        let needed = max(cu, ci, ce, ct)
        var eventWeight: [String: Double] = [:]
        for e in events { if let w = weights[e], w != 0 { eventWeight[e] = w } }
        var userIndex: [String: Int] = [:], itemIndex: [String: Int] = [:]
        var users: [String] = [], items: [String] = []
        var sums: [[Int: (Double, Int64)]] = []
        for (n, line) in lines.enumerated().dropFirst() {
            if line.isEmpty || (line.count == 1 && line.first == UInt8(ascii: "\r")) { continue }
            let f = fields(line)
            guard f.count > needed else {
                throw CairnError("dataset line \(n + 1): \(f.count) columns, expected \(header.count)")
            }
            let event = String(decoding: f[ce], as: UTF8.self)
            guard let w = eventWeight[event] else { continue }
            let user = String(decoding: f[cu], as: UTF8.self), item = String(decoding: f[ci], as: UTF8.self)
            guard !user.isEmpty, !item.isEmpty else { throw CairnError("dataset line \(n + 1): empty user_id or item_id") }
            guard let time = parseTimestamp(f[ct]) else {
                throw CairnError("dataset line \(n + 1), column \(ct + 1): the timestamp (\(f[ct].count) bytes) is neither unix seconds nor ISO 8601 (2026-11-20T08:00:00Z)")
            }
            let u: Int
            if let known = userIndex[user] { u = known } else {
                u = users.count
                userIndex[user] = u
                users.append(user)
                sums.append([:])
            }
            let i: Int
            if let known = itemIndex[item] { i = known } else {
                i = items.count
                itemIndex[item] = i
                items.append(item)
            }
            let old = sums[u][i] ?? (0, Int64.min)
            sums[u][i] = (old.0 + w, max(old.1, time))
        }
        let pairs = sums.map { m in m.map { Pair(item: $0.key, signal: $0.value.0, lastSeen: $0.value.1) }.sorted { $0.item < $1.item } }
        return Interactions(users: users, items: items, pairs: pairs, rows: lines.count - 1)
    }

    /// Comma-separated fields; a trailing `\r` is dropped. (Quoted fields are not used by this format.)
    static func fields(_ line: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        var l = line
        if l.last == UInt8(ascii: "\r") { l = l.dropLast() }
        return l.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
    }

    /// Unix seconds, or ISO 8601 `YYYY-MM-DDTHH:MM:SSZ`.
    public static func parseTimestamp(_ f: ArraySlice<UInt8>) -> Int64? { Timestamp.parse(f) }
}

/// FNV-1a, for seeding per user (Swift's `Hasher` is randomised per process).
func fnv1a(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01b3
    }
    return h
}
