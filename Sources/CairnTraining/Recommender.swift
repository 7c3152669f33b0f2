import CairnCore
import Foundation

/// A trained builtin model: what the artifact's `model.json` holds, and how it scores.
public struct RecommenderModel: Codable, Sendable, Equatable {
    /// An item's neighbour in item-kNN and their similarity.
    public struct Neighbor: Codable, Sendable, Equatable {
        /// Item index.
        public var i: Int
        /// Similarity.
        public var s: Double
    }

    public var format: String
    public var algorithm: String
    public var items: [String]
    /// Net weighted signal per item (popularity), by item index.
    public var popularity: [Double]
    /// item-knn: the top neighbours of each item, by item index.
    public var neighbors: [[Neighbor]]?
    /// Each known user's positive items, and the items not to recommend back (positives and negatives).
    public var users: [String: [Int]]
    public var seen: [String: [Int]]

    public static let formatName = "cairn-model/1"

    /// Items ranked for one user's history; `exclude` are never returned.
    public func recommend(history: [Int], exclude: Set<Int>, k: Int) -> [(item: Int, score: Double)] {
        guard k > 0 else { return [] }
        var scored: [(item: Int, score: Double)] = []
        if let neighbors, !history.isEmpty {
            var scores: [Int: Double] = [:]
            for i in history where i < neighbors.count {
                for n in neighbors[i] where !exclude.contains(n.i) { scores[n.i, default: 0] += n.s }
            }
            scored = scores.map { ($0.key, $0.value) }.sorted { a, b in
                a.score != b.score ? a.score > b.score : (popularity[a.item] != popularity[b.item] ? popularity[a.item] > popularity[b.item] : a.item < b.item)
            }
            if scored.count > k { scored.removeLast(scored.count - k) }
        }
        if scored.count < k {
            // Too little history (or popularity itself): fill with the most popular unseen items.
            let taken = Set(scored.map(\.item))
            for i in popularityOrder where !exclude.contains(i) && !taken.contains(i) {
                scored.append((i, algorithm == "popularity" ? popularity[i] : 0))
                if scored.count == k { break }
            }
        }
        return scored
    }

    /// Item indices by popularity, best first (ties by index).
    var popularityOrder: [Int] {
        popularity.indices.sorted { popularity[$0] != popularity[$1] ? popularity[$0] > popularity[$1] : $0 < $1 }
    }

    /// Scores a known user by id, or an anonymous history of item ids.
    public func recommend(user: String?, items: [String], k: Int) -> [(item: String, score: Double)] {
        let index = Dictionary(uniqueKeysWithValues: self.items.enumerated().map { ($1, $0) })
        var history = items.compactMap { index[$0] }
        var exclude = Set(history)
        if let user {
            history += users[user] ?? []
            exclude.formUnion(seen[user] ?? [])
        }
        return recommend(history: history, exclude: exclude, k: k).map { (self.items[$0.item], $0.score) }
    }
}

/// Fits the builtin algorithms.
enum Fit {
    /// Positive pairs per user: (item, signal), the most recent `cap` kept.
    static func positives(_ pairs: [Interactions.Pair], cap: Int = 500) -> [Interactions.Pair] {
        var p = pairs.filter { $0.signal > 0 }
        if p.count > cap {
            p.sort { $0.lastSeen > $1.lastSeen }
            p = Array(p.prefix(cap)).sorted { $0.item < $1.item }
        }
        return p
    }

    static func model(_ data: Interactions, userPairs: [[Interactions.Pair]], algorithm: Template.BuiltinAlgorithm,
                      params: [String: JSONValue]) -> RecommenderModel {
        var popularity = [Double](repeating: 0, count: data.items.count)
        for pairs in userPairs { for p in pairs { popularity[p.item] += p.signal } }
        var users: [String: [Int]] = [:], seen: [String: [Int]] = [:]
        for (u, pairs) in userPairs.enumerated() where !pairs.isEmpty {
            users[data.users[u]] = pairs.filter { $0.signal > 0 }.map(\.item)
            seen[data.users[u]] = pairs.map(\.item)
        }
        var neighbors: [[RecommenderModel.Neighbor]]?
        if algorithm == .itemKNN {
            let k = intParam(params["neighbors"]) ?? 50
            let shrinkage = doubleParam(params["shrinkage"]) ?? 10
            neighbors = knn(itemCount: data.items.count, userPairs: userPairs, k: k, shrinkage: shrinkage)
        }
        return RecommenderModel(format: RecommenderModel.formatName, algorithm: algorithm.rawValue, items: data.items,
                                popularity: popularity.map { ($0 * 1e9).rounded() / 1e9 }, neighbors: neighbors, users: users, seen: seen)
    }

    /// Item–item cosine similarity on the weighted user–item matrix, shrunk toward 0 for items
    /// that co-occur rarely: sim(i, j) = Σ r_ui r_uj / (‖i‖ ‖j‖ + shrinkage). Top `k` per item.
    static func knn(itemCount: Int, userPairs: [[Interactions.Pair]], k: Int, shrinkage: Double) -> [[RecommenderModel.Neighbor]] {
        var norms = [Double](repeating: 0, count: itemCount)
        var co = [[Int: Double]](repeating: [:], count: itemCount)
        for pairs in userPairs {
            let p = positives(pairs)
            for a in p {
                norms[a.item] += a.signal * a.signal
                for b in p where b.item != a.item {
                    co[a.item][b.item, default: 0] += a.signal * b.signal
                }
            }
        }
        let lengths = norms.map { $0.squareRoot() }
        return (0..<itemCount).map { i in
            co[i].map { j, dot in RecommenderModel.Neighbor(i: j, s: ((dot / (lengths[i] * lengths[j] + shrinkage)) * 1e9).rounded() / 1e9) }
                .sorted { $0.s != $1.s ? $0.s > $1.s : $0.i < $1.i }
                .prefix(k).map { $0 }
        }
    }

    static func intParam(_ v: JSONValue?) -> Int? {
        switch v {
        case let .int(i)?: i
        case let .double(d)?: Int(d)
        default: nil
        }
    }

    static func doubleParam(_ v: JSONValue?) -> Double? {
        switch v {
        case let .int(i)?: Double(i)
        case let .double(d)?: d
        default: nil
        }
    }
}

/// Seeded per-user holdout and ranking metrics.
public enum Evaluation {
    /// What a metric name asks for.
    enum Metric {
        case ndcg(Int), recall(Int), precision(Int), coverage(Int)

        init?(_ name: String) {
            let parts = name.split(separator: "@")
            let k = parts.count == 2 ? Int(parts[1]) : nil
            switch (parts[0], k) {
            case let ("ndcg", k?): self = .ndcg(k)
            case let ("recall", k?): self = .recall(k)
            case let ("precision", k?): self = .precision(k)
            case ("coverage", nil): self = .coverage(10)
            case let ("coverage", k?): self = .coverage(k)
            default: return nil
            }
        }

        var k: Int {
            switch self {
            case let .ndcg(k), let .recall(k), let .precision(k), let .coverage(k): k
            }
        }
    }

    /// Splits each user's positive items: `holdout` of them (at least one, never all) are held
    /// out, chosen by a generator seeded from `seed` and the user id. Users with fewer than two
    /// positive items are kept whole for training.
    static func split(_ data: Interactions, holdout: Double, seed: Int) -> (train: [[Interactions.Pair]], heldOut: [Int: Set<Int>]) {
        var train: [[Interactions.Pair]] = []
        var heldOut: [Int: Set<Int>] = [:]
        for (u, pairs) in data.pairs.enumerated() {
            var positives = pairs.filter { $0.signal > 0 }.map(\.item)
            guard positives.count >= 2 else {
                train.append(pairs)
                continue
            }
            var rng = SplitMix64(state: UInt64(bitPattern: Int64(seed)) ^ fnv1a(data.users[u]))
            for i in stride(from: positives.count - 1, to: 0, by: -1) {
                positives.swapAt(i, rng.below(i + 1))
            }
            let count = min(positives.count - 1, max(1, Int((Double(positives.count) * holdout).rounded())))
            let held = Set(positives.prefix(count))
            heldOut[u] = held
            train.append(pairs.filter { !held.contains($0.item) })
        }
        return (train, heldOut)
    }

    /// The metrics of `model` on the held-out items, averaged over evaluated users.
    static func measure(_ model: RecommenderModel, train: [[Interactions.Pair]], heldOut: [Int: Set<Int>], metrics: [String]) -> [String: Double] {
        let wanted = metrics.compactMap { name in Metric(name).map { (name, $0) } }
        let depth = wanted.map(\.1.k).max() ?? 10
        var sums: [String: Double] = [:]
        var covered: [Int: Set<Int>] = [:]
        for (u, held) in heldOut.sorted(by: { $0.key < $1.key }) {
            let history = train[u].filter { $0.signal > 0 }.map(\.item)
            let ranked = model.recommend(history: history, exclude: Set(train[u].map(\.item)), k: depth).map(\.item)
            for (name, metric) in wanted {
                let top = Array(ranked.prefix(metric.k))
                let hits = top.filter { held.contains($0) }.count
                switch metric {
                case let .ndcg(k):
                    var dcg = 0.0
                    for (r, item) in top.enumerated() where held.contains(item) { dcg += 1 / log2(Double(r + 2)) }
                    let ideal = (0..<min(held.count, k)).reduce(0.0) { $0 + 1 / log2(Double($1 + 2)) }
                    sums[name, default: 0] += ideal > 0 ? dcg / ideal : 0
                case .recall:
                    sums[name, default: 0] += Double(hits) / Double(held.count)
                case let .precision(k):
                    sums[name, default: 0] += Double(hits) / Double(k)
                case let .coverage(k):
                    covered[k, default: []].formUnion(ranked.prefix(k))
                }
            }
        }
        var out: [String: Double] = [:]
        let users = Double(max(heldOut.count, 1))
        for (name, metric) in wanted {
            let value: Double
            if case let .coverage(k) = metric {
                value = Double(covered[k]?.count ?? 0) / Double(max(model.items.count, 1))
            } else {
                value = (sums[name] ?? 0) / users
            }
            out[name] = (value * 1e6).rounded() / 1e6
        }
        return out
    }
}
