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
        let csv = try InteractionsCSV(bytes)
        var eventWeight: [String: Double] = [:]
        for e in events { if let w = weights[e], w != 0 { eventWeight[e] = w } }
        var userIndex: [String: Int] = [:], itemIndex: [String: Int] = [:]
        var users: [String] = [], items: [String] = []
        var sums: [[Int: (Double, Int64)]] = []
        try csv.forEachRow { n, f in
            let event = String(decoding: f[csv.event], as: UTF8.self)
            guard let w = eventWeight[event] else { return }
            let user = String(decoding: f[csv.user], as: UTF8.self), item = String(decoding: f[csv.item], as: UTF8.self)
            guard !user.isEmpty, !item.isEmpty else { throw CairnError("dataset line \(n): empty user_id or item_id") }
            let time = try csv.time(f, line: n)
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
        return Interactions(users: users, items: items, pairs: pairs, rows: csv.lineCount)
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
