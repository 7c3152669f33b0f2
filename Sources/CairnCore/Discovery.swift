import Foundation

/// Intrinsic traits of a template's data, measured by discovery (`spec.discover: true` on a draft
/// model): counts, sparsity, popularity skew, time span and the share of cold users and items,
/// plus the trait words they imply. Told apart from declared traits everywhere they are shown.
public struct DiscoveredTraits: Sendable, Codable, Equatable {
    /// Users and items with at least one event the template trains on.
    public var users: Int
    public var items: Int
    /// Rows by event type, for the types the template trains on (names from the manifest).
    public var eventsByType: [String: Int]
    /// Rows of every other event type, counted but never named: the names would be the file's
    /// content, and no file content reaches a plan or the history.
    public var otherEvents: Int
    /// 1 − distinct (user, item) pairs / (users × items), over the template's events.
    public var sparsity: Double
    /// Gini coefficient of events per item: 0 when every item is equally popular, near 1 when a
    /// few items take everything.
    public var popularitySkew: Double
    /// The first and last event (unix seconds), and the days between.
    public var firstEvent: Int64?
    public var lastEvent: Int64?
    public var spanDays: Double
    /// Share of users and of items with fewer than `coldThreshold` events.
    public var coldUserShare: Double
    public var coldItemShare: Double
    /// The words these measurements imply (`sparse`, `long-tail`, `cold-start`, `multi-event`, …).
    public var traits: [String]
    /// The dataset content they were measured on (sha256).
    public var datasetHash: String
    /// The commit the dataset was read at.
    public var commit: String

    public static let coldThreshold = 5

    /// Measures `bytes` (the interactions CSV) for a template training on `events`.
    public static func measure(_ bytes: [UInt8], events: [String], datasetHash: String, commit: String) throws -> DiscoveredTraits {
        let csv = try InteractionsCSV(bytes)
        let trained = Set(events)
        var byType: [String: Int] = [:], other = 0
        var userEvents: [String: Int] = [:], itemEvents: [String: Int] = [:]
        var pairs = Set<String>()
        var first: Int64?, last: Int64?
        try csv.forEachRow { n, f in
            let event = String(decoding: f[csv.event], as: UTF8.self)
            guard trained.contains(event) else {
                other += 1
                return
            }
            byType[event, default: 0] += 1
            let user = String(decoding: f[csv.user], as: UTF8.self), item = String(decoding: f[csv.item], as: UTF8.self)
            let time = try csv.time(f, line: n)
            userEvents[user, default: 0] += 1
            itemEvents[item, default: 0] += 1
            pairs.insert(user + "\u{1F}" + item)
            first = min(first ?? time, time)
            last = max(last ?? time, time)
        }
        let users = userEvents.count, items = itemEvents.count
        let cells = Double(users) * Double(items)
        let sparsity = cells > 0 ? 1 - Double(pairs.count) / cells : 1
        let counts = itemEvents.values.sorted()
        var gini = 0.0
        if counts.count > 1, let total = Optional(counts.reduce(0, +)), total > 0 {
            var weighted = 0.0
            for (i, c) in counts.enumerated() { weighted += Double(i + 1) * Double(c) }
            let n = Double(counts.count)
            gini = (2 * weighted) / (n * Double(total)) - (n + 1) / n
        }
        let coldUsers = users > 0 ? Double(userEvents.values.filter { $0 < coldThreshold }.count) / Double(users) : 0
        let coldItems = items > 0 ? Double(itemEvents.values.filter { $0 < coldThreshold }.count) / Double(items) : 0
        let span = (first != nil && last != nil) ? Double(last! - first!) / 86400 : 0
        func r(_ x: Double) -> Double { (x * 10000).rounded() / 10000 }
        var words: [String] = []
        if sparsity >= 0.99 { words.append("sparse") }
        if gini >= 0.5 { words.append("long-tail") }
        if coldUsers >= 0.3 || coldItems >= 0.3 { words.append("cold-start") }
        if byType.count > 1 { words.append("multi-event") }
        if span < 30 { words.append("short-history") }
        return DiscoveredTraits(users: users, items: items, eventsByType: byType, otherEvents: other, sparsity: r(sparsity), popularitySkew: r(gini),
                                firstEvent: first, lastEvent: last, spanDays: r(span), coldUserShare: r(coldUsers),
                                coldItemShare: r(coldItems), traits: words.sorted(), datasetHash: datasetHash, commit: commit)
    }

    /// One line for plans and status: `1200 users, 300 items, sparsity 0.9700, …`.
    public var summary: String {
        let events = (eventsByType.keys.sorted().map { "\($0) \(eventsByType[$0]!)" } + (otherEvents > 0 ? ["\(otherEvents) of other types"] : []))
            .joined(separator: ", ")
        return "\(users) users, \(items) items, events {\(events)}, sparsity \(String(format: "%.4f", sparsity)), "
            + "popularity skew \(String(format: "%.2f", popularitySkew)), \(String(format: "%.0f", spanDays)) days, "
            + "cold users \(Int((coldUserShare * 100).rounded()))%, cold items \(Int((coldItemShare * 100).rounded()))%"
            + (traits.isEmpty ? "" : "; traits [\(traits.joined(separator: ", "))]")
    }
}
