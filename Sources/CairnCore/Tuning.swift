/// `spec.tuning` of a template: a search over its trainer's parameters on the holdout split
/// before the version is trained. Each trial trains one configuration on the training part and
/// is measured on the held-out users; the best by `metric` (by `goal`) is chosen, and the version
/// is trained with it: refit on all data (`refit: true`, the default), or the chosen trial's own
/// model as evaluated (`refit: false`).
public struct Tuning: Sendable, Hashable, Codable {
    public enum Goal: String, Sendable, Hashable, Codable, CaseIterable {
        case maximize, minimize
    }

    /// `grid`: every combination in order (parameters by name, values as listed), the first
    /// `trials`; `random`: `trials` distinct combinations drawn with the template's evaluation seed.
    public enum Strategy: String, Sendable, Hashable, Codable, CaseIterable {
        case grid, random
    }

    public var metric: String
    public var goal: Goal
    public var trials: Int
    public var strategy: Strategy
    /// Parameter → the values to try.
    public var space: [String: [JSONValue]]
    public var refit: Bool

    public init(metric: String, goal: Goal = .maximize, trials: Int, strategy: Strategy = .grid, space: [String: [JSONValue]], refit: Bool = true) {
        self.metric = metric
        self.goal = goal
        self.trials = trials
        self.strategy = strategy
        self.space = space
        self.refit = refit
    }

    /// Most trials one run may ask for, and most combinations a space may have.
    public static let maxTrials = 100
    public static let maxCombinations = 100_000

    /// How many combinations the space has.
    public var combinations: Int {
        space.values.reduce(1) { product, values in
            let (n, overflow) = product.multipliedReportingOverflow(by: max(values.count, 1))
            return overflow ? Int.max : n
        }
    }

    /// The configurations to try, in trial order (trial 1 first): the same on every machine.
    public func configurations(seed: Int) -> [[String: JSONValue]] {
        let names = space.keys.sorted()
        let total = combinations
        func configuration(_ index: Int) -> [String: JSONValue] {
            var rest = index, out: [String: JSONValue] = [:]
            // The last parameter varies fastest, like nested loops in name order.
            for name in names.reversed() {
                let values = space[name]!
                out[name] = values[rest % values.count]
                rest /= values.count
            }
            return out
        }
        let count = min(trials, total)
        switch strategy {
        case .grid:
            return (0..<count).map(configuration)
        case .random:
            var generator = SplitMix64(state: UInt64(bitPattern: Int64(seed)) ^ 0x7475_6e69_6e67)
            var chosen: [Int] = [], seen: Set<Int> = []
            while chosen.count < count {
                let i = Int(generator.next() % UInt64(total))
                if seen.insert(i).inserted { chosen.append(i) }
            }
            return chosen.map(configuration)
        }
    }

    /// True when `a` is better than `b` for this tuning's goal.
    public func better(_ a: Double, than b: Double) -> Bool { goal == .maximize ? a > b : a < b }

    /// The best trial of `trials` by `metric` (the earliest of equals); nil when none measured it.
    public func best(of trials: [TuningTrial]) -> TuningTrial? {
        var best: TuningTrial?
        for t in trials {
            guard let v = t.metrics[metric], v.isFinite else { continue }
            if let b = best, let bv = b.metrics[metric], !better(v, than: bv) { continue }
            best = t
        }
        return best
    }
}

/// One trial of a tuning run: its configuration, what it measured and how long it took.
public struct TuningTrial: Sendable, Codable, Equatable {
    /// 1-based, in the order `Tuning.configurations` gives.
    public var trial: Int
    public var params: [String: JSONValue]
    public var metrics: [String: Double]
    public var seconds: Double

    public init(trial: Int, params: [String: JSONValue], metrics: [String: Double], seconds: Double) {
        self.trial = trial
        self.params = params
        self.metrics = metrics
        self.seconds = seconds
    }
}

/// What a tuned version records: every trial, the chosen one, and how the version was trained.
public struct TuningResult: Sendable, Codable, Equatable {
    public var metric: String
    public var goal: Tuning.Goal
    public var trials: [TuningTrial]
    /// The trial the version came from.
    public var chosen: Int
    /// True when the version was refit on all data with the chosen configuration.
    public var refit: Bool

    public init(metric: String, goal: Tuning.Goal, trials: [TuningTrial], chosen: Int, refit: Bool) {
        self.metric = metric
        self.goal = goal
        self.trials = trials
        self.chosen = chosen
        self.refit = refit
    }

    public var chosenTrial: TuningTrial? { trials.first { $0.trial == chosen } }

    /// `trial 3 of 6 (neighbors=20, shrinkage=10): ndcg@10 0.2310`.
    public var summary: String {
        guard let t = chosenTrial else { return "\(trials.count) trials" }
        let params = t.params.keys.sorted().map { "\($0)=\(t.params[$0]!.canonicalText)" }.joined(separator: ", ")
        let value = t.metrics[metric].map { String(format: "%.4f", $0) } ?? "-"
        return "trial \(t.trial) of \(trials.count) (\(params)): \(metric) \(value)" + (refit ? "" : ", not refit")
    }
}

/// SplitMix64: a small deterministic generator, the same on every platform and run (holdout
/// splits, review samples, tuning draws).
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    /// Uniform in 0..<n.
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
