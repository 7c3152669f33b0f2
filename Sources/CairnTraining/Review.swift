import CairnCore
import CairnGit
import Foundation

/// Item metadata for reviewing recommendations: titles and categories by item id, from the CSV
/// a template names in `items.path` (`item_id,title,category`; quoted fields allowed).
public struct ItemCatalog: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var title: String?
        public var category: String?
    }

    public var entries: [String: Entry]

    /// The largest catalogue read (a review output, not a data pipeline).
    public static let maximumBytes = 64 << 20

    public static func parse(_ bytes: [UInt8]) throws -> ItemCatalog {
        guard bytes.count <= maximumBytes else { throw CairnError("the item catalogue is \(bytes.count) bytes, more than \(maximumBytes)") }
        let rows = csvRows(String(decoding: bytes, as: UTF8.self))
        guard let header = rows.first?.map({ $0.trimmingCharacters(in: .whitespaces) }) else { throw CairnError("the item catalogue is empty") }
        guard let id = header.firstIndex(of: "item_id") else {
            // Never quote the file: a path pointed at a secret would print it here.
            throw CairnError("the item catalogue's header has no item_id column (\(header.count) columns)",
                             hint: "its first line names the columns: item_id,title,category")
        }
        let title = header.firstIndex(of: "title"), category = header.firstIndex(of: "category")
        var entries: [String: Entry] = [:]
        for row in rows.dropFirst() where row.count > id && !row[id].isEmpty {
            func field(_ i: Int?) -> String? { i.flatMap { $0 < row.count && !row[$0].isEmpty ? row[$0] : nil } }
            entries[row[id]] = Entry(title: field(title), category: field(category))
        }
        return ItemCatalog(entries: entries)
    }

    /// RFC 4180 rows: fields split by commas, double quotes around fields that hold commas,
    /// quotes or line breaks.
    static func csvRows(_ text: String) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false, afterQuote = false
        for ch in text {
            if quoted {
                if ch == "\"" { quoted = false; afterQuote = true } else { field.append(ch) }
                continue
            }
            switch ch {
            case "\"":
                if afterQuote { field.append("\"") }
                quoted = true
            case ",":
                row.append(field)
                field = ""
            case "\n", "\r\n":
                row.append(field)
                rows.append(row)
                row = []
                field = ""
            case "\r": break
            default: field.append(ch)
            }
            afterQuote = ch == "\""
        }
        if !field.isEmpty || !row.isEmpty {
            row.append(field)
            rows.append(row)
        }
        return rows
    }

    /// The catalogue a version's template names, read from the repository at the version's commit
    /// (nil when its template names none).
    public static func load(repository: String, request: TrainRequest) throws -> ItemCatalog? {
        guard let items = request.template.items else { return nil }
        let root = request.manifestRoot ?? ""
        let path = root.isEmpty ? items : root + "/" + items
        do {
            return try parse(try GitRepository(path: repository).readFile(revision: request.commit, path: path))
        } catch let e as CairnError {
            throw CairnError("cannot read the item catalogue \(path) at \(request.commit.prefix(7)): \(e.message)", hint: e.hint)
        }
    }
}

/// Sample recommendations for a reviewer: any version (pending ones included), for a user, a
/// seeded random user, or a new user from a list of items, with titles and categories when the
/// template has an item catalogue.
public enum Review {
    /// Whose recommendations.
    public enum Subject: Sendable, Equatable {
        case user(String)
        case items([String])
        /// One of the users the version was trained on, chosen by `seed` (the same seed, the same user).
        case random(seed: Int)
    }

    /// An item as a reviewer reads it.
    public struct Item: Encodable, Sendable, Equatable {
        public var item: String
        public var score: Double?
        public var title: String?
        public var category: String?
    }

    /// What a reviewer sees.
    public struct Sample: Encodable, Sendable {
        public var formatVersion = "1"
        public var model: String
        public var version: Int
        public var status: String
        public var user: String?
        public var seed: Int?
        /// What the user interacted with (a known user's positive items, at most 20, or the items given).
        public var history: [Item]
        public var items: [Item]
    }

    /// The sample of `version` (its artifact verified and loaded by `loader`), with the item
    /// catalogue its run's template names (`request`: the run's stored request), read from
    /// `repository` at the version's commit. What `cairn recommend --model` and the API share.
    public static func sample(of version: ModelVersion, request: String?, loader: ModelLoader, repository: String, subject: Subject,
                              k: Int) throws -> Sample {
        let model = try loader.load(version)
        let decoded = try request.map { try JSONDecoder().decode(TrainRequest.self, from: Data($0.utf8)) }
        let catalog = try decoded.flatMap { try ItemCatalog.load(repository: repository, request: $0) }
        return try sample(model, version: version, subject: subject, k: k, catalog: catalog)
    }

    public static func sample(_ model: RecommenderModel, version: ModelVersion, subject: Subject, k: Int, catalog: ItemCatalog?) throws -> Sample {
        func describe(_ id: String, _ score: Double?) -> Item {
            let entry = catalog?.entries[id]
            return Item(item: id, score: score.map { ($0 * 1e6).rounded() / 1e6 }, title: entry?.title, category: entry?.category)
        }
        var user: String?, seed: Int?, history: [String] = []
        switch subject {
        case let .user(u):
            guard model.users[u] != nil || model.seen[u] != nil else {
                throw CairnError("\(version.model) v\(version.number) was not trained on user \(u)", hint: "give --items for a new user, or --random-user")
            }
            user = u
        case let .items(items):
            history = items
        case let .random(s):
            let users = model.users.keys.sorted()
            guard !users.isEmpty else { throw CairnError("\(version.model) v\(version.number) knows no users to pick from") }
            var rng = SplitMix64(state: UInt64(bitPattern: Int64(s)))
            user = users[rng.below(users.count)]
            seed = s
        }
        if let user { history = (model.users[user] ?? []).prefix(20).map { model.items[$0] } }
        let scored = model.recommend(user: user, items: user == nil ? history : [], k: k)
        return Sample(model: version.model, version: version.number, status: version.status.rawValue, user: user, seed: seed,
                      history: history.map { describe($0, nil) }, items: scored.map { describe($0.item, $0.score) })
    }

    /// The sample as text: one line per item, titles and categories when known.
    public static func text(_ s: Sample) -> String {
        func line(_ n: Int?, _ i: Item) -> String {
            var text = (n.map { String(format: "%3d. ", $0) } ?? "   - ") + i.item
            if let title = i.title { text += "  \(title)" }
            if let category = i.category { text += " [\(category)]" }
            if let score = i.score { text += String(format: "  %.4f", score) }
            return text
        }
        var out = "\(s.model) v\(s.version) (\(s.status))" + (s.user.map { " for \($0)" } ?? " for a new user") + (s.seed.map { " (random, seed \($0))" } ?? "") + "\n"
        if !s.history.isEmpty {
            out += "  interacted with:\n" + s.history.map { line(nil, $0) }.joined(separator: "\n") + "\n"
        }
        out += "  recommended:\n" + s.items.enumerated().map { line($0 + 1, $1) }.joined(separator: "\n") + "\n"
        return out
    }
}
