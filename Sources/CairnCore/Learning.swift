import Foundation

/// One served recommendation request as recorded: what the route's version answered, and what
/// each shadow of the target would have answered (scored off the request path).
public struct DecisionTrace: Codable, Sendable, Equatable {
    /// An item and its score.
    public struct Scored: Codable, Sendable, Equatable {
        public var item: String
        public var score: Double

        public init(item: String, score: Double) {
            self.item = item
            self.score = score
        }
    }

    /// A shadow's answer to the same request, and how far it agrees with the served one.
    public struct Shadow: Codable, Sendable, Equatable {
        public var model: String
        public var version: Int
        public var items: [Scored]
        public var latencyMicros: Int
        /// Share of the served items the shadow also returned (overlap@k).
        public var overlap: Double
        /// Spearman's rank correlation of the two lists (see `Agreement.rankCorrelation`).
        public var rankCorrelation: Double?

        public init(model: String, version: Int, items: [Scored], latencyMicros: Int, served: [Scored]) {
            self.model = model
            self.version = version
            self.items = items
            self.latencyMicros = latencyMicros
            let a = served.map(\.item), b = items.map(\.item)
            overlap = Agreement.overlap(a, b)
            rankCorrelation = Agreement.rankCorrelation(a, b)
        }
    }

    public var requestId: String
    /// Unix milliseconds.
    public var at: Int64
    public var target: String
    public var user: String?
    public var model: String
    public var version: Int
    public var k: Int
    public var items: [Scored]
    public var latencyMicros: Int
    public var shadows: [Shadow]
    /// True when the shadows were not scored because the recorder was behind (shed under load).
    public var shed: Bool

    public init(requestId: String, at: Int64, target: String, user: String?, model: String, version: Int, k: Int, items: [Scored],
                latencyMicros: Int, shadows: [Shadow] = [], shed: Bool = false) {
        self.requestId = requestId
        self.at = at
        self.target = target
        self.user = user
        self.model = model
        self.version = version
        self.k = k
        self.items = items
        self.latencyMicros = latencyMicros
        self.shadows = shadows
        self.shed = shed
    }
}

/// How far two ranked lists agree.
public enum Agreement {
    /// |served ∩ shadow| / |served|: 1 when the shadow returned every served item.
    public static func overlap(_ served: [String], _ shadow: [String]) -> Double {
        guard !served.isEmpty else { return shadow.isEmpty ? 1 : 0 }
        let other = Set(shadow)
        return Double(served.filter { other.contains($0) }.count) / Double(served.count)
    }

    /// Spearman's rank correlation over the union of two top-k lists, an item missing from a list
    /// ranked just below its end (k + 1, Fagin et al.'s "location parameter"): 1 for the same
    /// order, lower as the orders or the items differ. Nil with fewer than two items in the union.
    public static func rankCorrelation(_ a: [String], _ b: [String]) -> Double? {
        var union: [String] = []
        var seen = Set<String>()
        for item in a + b where seen.insert(item).inserted { union.append(item) }
        guard union.count >= 2 else { return nil }
        let depth = Double(max(a.count, b.count) + 1)
        func ranks(_ list: [String]) -> [Double] {
            let position = Dictionary(list.enumerated().map { ($1, Double($0 + 1)) }, uniquingKeysWith: { first, _ in first })
            return union.map { position[$0] ?? depth }
        }
        return pearson(ranks(a), ranks(b))
    }

    static func pearson(_ x: [Double], _ y: [Double]) -> Double? {
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for (a, b) in zip(x, y) {
            sxy += (a - mx) * (b - my)
            sxx += (a - mx) * (a - mx)
            syy += (b - my) * (b - my)
        }
        guard sxx > 0, syy > 0 else { return sxx == syy ? 1 : nil }
        return sxy / (sxx * syy).squareRoot()
    }
}

/// One shadow's agreement with what was served, over the traced requests.
public struct ShadowSummary: Codable, Sendable, Equatable {
    public var model: String
    public var version: Int
    /// Traced requests this shadow answered.
    public var requests: Int
    public var meanOverlap: Double
    public var meanRankCorrelation: Double?
    public var p50LatencyMicros: Int
    public var p95LatencyMicros: Int
    /// The served answers' latency over the same requests.
    public var servedP95LatencyMicros: Int

    public init(model: String, version: Int, requests: Int, meanOverlap: Double, meanRankCorrelation: Double?, p50LatencyMicros: Int,
                p95LatencyMicros: Int, servedP95LatencyMicros: Int) {
        self.model = model
        self.version = version
        self.requests = requests
        self.meanOverlap = meanOverlap
        self.meanRankCorrelation = meanRankCorrelation
        self.p50LatencyMicros = p50LatencyMicros
        self.p95LatencyMicros = p95LatencyMicros
        self.servedP95LatencyMicros = servedP95LatencyMicros
    }

    /// Summaries per shadow version over `traces`, sorted by model and version.
    public static func of(_ traces: [DecisionTrace]) -> [ShadowSummary] {
        struct Sums {
            var n = 0, overlap = 0.0, rank = 0.0, ranked = 0
            var latencies: [Int] = [], served: [Int] = []
        }
        var sums: [String: Sums] = [:]
        var keys: [String: (String, Int)] = [:]
        for trace in traces {
            for shadow in trace.shadows {
                let key = "\(shadow.model)@\(shadow.version)"
                keys[key] = (shadow.model, shadow.version)
                var s = sums[key] ?? Sums()
                s.n += 1
                s.overlap += shadow.overlap
                if let r = shadow.rankCorrelation {
                    s.rank += r
                    s.ranked += 1
                }
                s.latencies.append(shadow.latencyMicros)
                s.served.append(trace.latencyMicros)
                sums[key] = s
            }
        }
        return sums.keys.sorted { keys[$0]!.0 != keys[$1]!.0 ? keys[$0]!.0 < keys[$1]!.0 : keys[$0]!.1 < keys[$1]!.1 }.map { key in
            let s = sums[key]!
            return ShadowSummary(model: keys[key]!.0, version: keys[key]!.1, requests: s.n, meanOverlap: rounded(s.overlap / Double(s.n)),
                                 meanRankCorrelation: s.ranked > 0 ? rounded(s.rank / Double(s.ranked)) : nil,
                                 p50LatencyMicros: percentile(s.latencies, 0.5), p95LatencyMicros: percentile(s.latencies, 0.95),
                                 servedP95LatencyMicros: percentile(s.served, 0.95))
        }
    }
}

/// The nearest-rank percentile of `values` (0 when empty).
public func percentile(_ values: [Int], _ p: Double) -> Int {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
}

func rounded(_ x: Double) -> Double { (x * 1e6).rounded() / 1e6 }

/// The outcome samples a training run learns from besides its dataset: every sample received
/// for its template up to `through` (a feedback id), so the version can be trained again from
/// the same rows.
public struct FeedbackSnapshot: Codable, Sendable, Equatable {
    /// One sample, in the dataset's terms.
    public struct Row: Codable, Sendable, Equatable {
        public var user: String
        public var item: String
        public var outcome: String
        /// Unix seconds.
        public var at: Int64

        public init(user: String, item: String, outcome: String, at: Int64) {
            self.user = user
            self.item = item
            self.outcome = outcome
            self.at = at
        }
    }

    /// The last feedback id included (0: none).
    public var through: Int
    public var rows: [Row]

    public init(through: Int, rows: [Row]) {
        self.through = through
        self.rows = rows
    }

    /// `dataset` with the samples appended as rows under its own header (its columns in its
    /// order; columns other than user_id, item_id, event and timestamp left empty). The bytes a
    /// run trains on and hashes.
    public func appended(to dataset: [UInt8]) -> [UInt8] {
        guard !rows.isEmpty else { return dataset }
        let headerEnd = dataset.firstIndex(of: UInt8(ascii: "\n")) ?? dataset.endIndex
        var headerBytes = dataset[dataset.startIndex..<headerEnd]
        if headerBytes.last == UInt8(ascii: "\r") { headerBytes = headerBytes.dropLast() }
        let header = headerBytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespaces) }
        var out = dataset
        if let last = out.last, last != UInt8(ascii: "\n") { out.append(UInt8(ascii: "\n")) }
        for row in rows {
            let fields = header.map { column -> String in
                switch column {
                case "user_id": row.user
                case "item_id": row.item
                case "event": row.outcome
                case "timestamp": String(row.at)
                default: ""
                }
            }
            out.append(contentsOf: Array((fields.joined(separator: ",") + "\n").utf8))
        }
        return out
    }
}

/// A model's learning record, as `status`, the API and the dashboard show it.
public struct ModelRecord: Codable, Sendable, Equatable {
    /// One version's metrics, when it was trained.
    public struct MetricsPoint: Codable, Sendable, Equatable {
        public var version: Int
        public var at: Int64
        public var metrics: [String: Double]
        public var status: ModelVersion.Status
    }

    /// Rows the newest version was trained on (its dataset snapshot, feedback included).
    public var trainingSamples: Int?
    /// Of them, outcome samples received through feedback.
    public var feedbackSamples: Int?
    /// When the newest version was trained.
    public var lastTrainedAt: Int64?
    /// When the newest version that learned from feedback was trained.
    public var lastLearnedAt: Int64?
    /// Every version's metrics, oldest first.
    public var metricsHistory: [MetricsPoint]
    /// Traits as declared in git, and as discovery measured them (told apart).
    public var declaredTraits: [String] = []
    public var discoveredTraits: DiscoveredTraits?
    /// Each tuned version's tuning run (trials and the chosen one), by version number.
    public var tuning: [String: TuningResult] = [:]

    public static func of(_ model: ObservedModel) -> ModelRecord {
        let versions = model.versions.sorted { $0.number < $1.number }
        let newest = versions.last
        var record = ModelRecord(trainingSamples: newest?.learned?.samples, feedbackSamples: newest?.learned?.feedbackSamples,
                                 lastTrainedAt: newest?.createdAt,
                                 lastLearnedAt: versions.last { ($0.learned?.feedbackSamples ?? 0) > 0 }?.createdAt,
                                 metricsHistory: versions.map { MetricsPoint(version: $0.number, at: $0.createdAt, metrics: $0.metrics, status: $0.status) })
        record.declaredTraits = model.spec.traits
        record.discoveredTraits = model.discovered
        for v in versions { if let t = v.tuning { record.tuning[String(v.number)] = t } }
        return record
    }
}

/// The times datasets and feedback carry.
public enum Timestamp {
    /// Unix seconds, or ISO 8601 `YYYY-MM-DDTHH:MM:SSZ` (UTC).
    public static func parse(_ f: ArraySlice<UInt8>) -> Int64? {
        if let n = Int64(String(decoding: f, as: UTF8.self)) { return n }
        let b = Array(f)
        guard b.count >= 20, b[4] == 0x2d, b[7] == 0x2d, b[10] == 0x54 || b[10] == 0x20, b[13] == 0x3a, b[16] == 0x3a else { return nil }
        func num(_ r: Range<Int>) -> Int? { Int(String(decoding: b[r], as: UTF8.self)) }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13), let mi = num(14..<16), let s = num(17..<19),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, s < 61 else { return nil }
        // Days from civil (Howard Hinnant's algorithm), UTC.
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return Int64(days) * 86400 + Int64(h * 3600 + mi * 60 + s)
    }

    public static func parse(_ text: String) -> Int64? { parse(ArraySlice(Array(text.utf8))) }
}

/// One outcome as a client sends it.
public struct FeedbackInput: Sendable, Equatable {
    public var requestId: String?
    public var target: String?
    public var user: String?
    public var item: String
    public var outcome: String
    /// Unix seconds.
    public var at: Int64?

    public init(requestId: String?, target: String?, user: String?, item: String, outcome: String, at: Int64?) {
        self.requestId = requestId
        self.target = target
        self.user = user
        self.item = item
        self.outcome = outcome
        self.at = at
    }

    /// An id as the dataset's CSV can hold it: no comma, quote, line break or control character.
    public static func validID(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 256 && !s.unicodeScalars.contains { $0 == "," || $0 == "\"" || $0.value < 0x20 || $0.value == 0x7f }
    }

    /// `{…}`, `[{…}, …]` or `{"samples": [{…}, …]}`; every field checked, every error names its place.
    public static func parse(_ bytes: [UInt8], limit: Int) throws -> [FeedbackInput] {
        guard let value = JSONValue.parse(String(decoding: bytes, as: UTF8.self)) else {
            throw CairnError("the body is not JSON", hint: "send {\"requestId\": \"…\", \"item\": \"…\", \"outcome\": \"click\"}")
        }
        let list: [(String, JSONValue)]
        switch value {
        case let .array(items): list = items.enumerated().map { ("samples[\($0)]", $1) }
        case let .object(fields) where fields["samples"] != nil:
            guard case let .array(items)? = fields["samples"], fields.count == 1 else { throw CairnError("samples: must be the only field, a list") }
            list = items.enumerated().map { ("samples[\($0)]", $1) }
        case .object: list = [("samples[0]", value)]
        default: throw CairnError("the body must be a sample object or a list of them")
        }
        guard !list.isEmpty else { throw CairnError("no samples") }
        guard list.count <= limit else { throw CairnError("\(list.count) samples: at most \(limit) a request") }
        return try list.map { at, value in
            guard case let .object(fields) = value else { throw CairnError("\(at): must be an object") }
            let allowed: Set = ["requestId", "target", "user", "item", "outcome", "at"]
            if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw CairnError("\(at).\(unknown): unknown field", hint: "fields: requestId, target, user, item, outcome, at")
            }
            func string(_ key: String, required: Bool = false) throws -> String? {
                guard let v = fields[key] else {
                    if required { throw CairnError("\(at).\(key): missing") }
                    return nil
                }
                guard case let .string(s) = v, validID(s) else {
                    throw CairnError("\(at).\(key): must be a non-empty string of at most 256 bytes without commas, quotes or control characters")
                }
                return s
            }
            var time: Int64?
            switch fields["at"] {
            case nil: time = nil
            case let .int(n)?: time = Int64(n)
            case let .string(s)?:
                guard let t = Timestamp.parse(s) else { throw CairnError("\(at).at: not unix seconds or ISO 8601 (2026-12-01T08:00:00Z)") }
                time = t
            default: throw CairnError("\(at).at: unix seconds or an ISO 8601 time")
            }
            return FeedbackInput(requestId: try string("requestId"), target: try string("target"), user: try string("user"),
                                 item: try string("item", required: true)!, outcome: try string("outcome", required: true)!, at: time)
        }
    }
}
