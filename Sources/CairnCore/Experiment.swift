import Foundation

/// The A/B readout of a target with a traffic split: per route, the traced requests it served,
/// the outcomes attributed to them (feedback naming the request id) and the weighted reward per
/// request, each route compared with the control (the route of the largest weight, the first of
/// equals) by Welch's two-sample t-test on the per-request reward.
public struct ABReadout: Codable, Sendable, Equatable {
    /// One route of the split.
    public struct Route: Codable, Sendable, Equatable {
        public var model: String
        public var version: Int
        public var weight: Int
        public var requests: Int
        /// Attributed outcomes by type.
        public var outcomes: [String: Int]
        /// Σ weights of the attributed outcomes / requests (requests without an outcome count as 0).
        public var rewardPerRequest: Double
        public var standardDeviation: Double
        /// Nil for the control.
        public var versusControl: Comparison?
        public var isControl: Bool
    }

    /// A route against the control.
    public struct Comparison: Codable, Sendable, Equatable {
        /// This route's reward per request minus the control's.
        public var difference: Double
        /// Two-sided p-value of Welch's t-test; nil while either side has fewer than 2 requests
        /// or no variance.
        public var pValue: Double?
        /// `pValue < alpha`.
        public var significant: Bool
    }

    /// The per-request sums a route's readout is computed from.
    public struct RouteSums: Sendable, Equatable {
        public var requests: Int
        public var rewardSum: Double
        public var rewardSquares: Double
        public var outcomes: [String: Int]

        public init(requests: Int = 0, rewardSum: Double = 0, rewardSquares: Double = 0, outcomes: [String: Int] = [:]) {
            self.requests = requests
            self.rewardSum = rewardSum
            self.rewardSquares = rewardSquares
            self.outcomes = outcomes
        }
    }

    public var formatVersion = "1"
    public var target: String
    /// Unix seconds: requests traced since then (the current routes' promotion).
    public var since: Int64
    public var test = "welch-t"
    public var alpha: Double
    public var routes: [Route]
    /// Outcomes reported for this target without a request id (not attributed to a route).
    public var unattributed: Int
    /// Outcomes of types the template gives no weight (counted, never part of the reward).
    public var unknownOutcomes: [String: Int]

    /// The readout of `routes` from their sums ("model@version" keys).
    public static func compute(target: String, since: Int64, routes: [LiveRoute], sums: [String: RouteSums], unattributed: Int,
                               unknownOutcomes: [String: Int], alpha: Double = 0.05) -> ABReadout {
        let control = routes.indices.max { a, b in routes[a].weight != routes[b].weight ? routes[a].weight < routes[b].weight : a > b } ?? 0
        func stats(_ s: RouteSums) -> (mean: Double, variance: Double?) {
            guard s.requests > 0 else { return (0, nil) }
            let n = Double(s.requests), mean = s.rewardSum / n
            guard s.requests >= 2 else { return (mean, nil) }
            return (mean, max(0, (s.rewardSquares - n * mean * mean) / (n - 1)))
        }
        let base = sums["\(routes[control].model)@\(routes[control].version)"] ?? RouteSums()
        let baseStats = stats(base)
        let out = routes.enumerated().map { index, route -> Route in
            let s = sums["\(route.model)@\(route.version)"] ?? RouteSums()
            let (mean, variance) = stats(s)
            var comparison: Comparison?
            if index != control {
                let p = Statistics.welchPValue(mean1: baseStats.mean, variance1: baseStats.variance, n1: base.requests,
                                               mean2: mean, variance2: variance, n2: s.requests)
                comparison = Comparison(difference: rounded(mean - baseStats.mean), pValue: p.map(rounded), significant: (p ?? 1) < alpha)
            }
            return Route(model: route.model, version: route.version, weight: route.weight, requests: s.requests, outcomes: s.outcomes,
                         rewardPerRequest: rounded(mean), standardDeviation: rounded((variance ?? 0).squareRoot()),
                         versusControl: comparison, isControl: index == control)
        }
        return ABReadout(target: target, since: since, alpha: alpha, routes: out, unattributed: unattributed, unknownOutcomes: unknownOutcomes)
    }

    /// One line per route, for plans and the terminal.
    public var lines: [String] {
        routes.map { r in
            var line = "\(r.model) v\(r.version) (\(r.weight)%): \(r.requests) requests, reward \(String(format: "%.4f", r.rewardPerRequest))/request"
            if r.isControl {
                line += " (control)"
            } else if let c = r.versusControl {
                line += String(format: ", %+.4f vs control", c.difference)
                line += c.pValue.map { String(format: ", p=%.4f", $0) + ($0 < alpha ? " (significant)" : " (not significant)") } ?? ", too few requests to test"
            }
            return line
        }
    }
}

/// The few distributions the readouts need.
public enum Statistics {
    /// Two-sided p-value of Welch's t-test for a difference of means; nil when a side has fewer
    /// than 2 observations or both have no variance.
    public static func welchPValue(mean1: Double, variance1: Double?, n1: Int, mean2: Double, variance2: Double?, n2: Int) -> Double? {
        guard let v1 = variance1, let v2 = variance2, n1 >= 2, n2 >= 2 else { return nil }
        let a = v1 / Double(n1), b = v2 / Double(n2)
        guard a + b > 0 else { return mean1 == mean2 ? 1 : 0 }
        let t = (mean2 - mean1) / (a + b).squareRoot()
        let df = (a + b) * (a + b) / (a * a / Double(n1 - 1) + b * b / Double(n2 - 1))
        return studentTwoSided(t: t, df: df)
    }

    /// P(|T| ≥ |t|) for Student's t with `df` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
    public static func studentTwoSided(t: Double, df: Double) -> Double {
        guard t.isFinite else { return 0 }
        return min(1, max(0, regularizedIncompleteBeta(x: df / (df + t * t), a: df / 2, b: 0.5)))
    }

    /// I_x(a, b) by its continued fraction (Lentz's method), as in Numerical Recipes' `betai`.
    static func regularizedIncompleteBeta(x: Double, a: Double, b: Double) -> Double {
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let logBeta: Double = lgamma(a + b) - lgamma(a) - lgamma(b)
        let logPowers: Double = a * log(x) + b * log(1 - x)
        let front = exp(logBeta + logPowers)
        if x < (a + 1) / (a + b + 2) { return front * continuedFraction(x: x, a: a, b: b) / a }
        return 1 - front * continuedFraction(x: 1 - x, a: b, b: a) / b
    }

    static func continuedFraction(x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300
        var c = 1.0, d = 1 - (a + b) * x / (a + 1)
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...300 {
            let m = Double(m)
            let even: Double = (a + 2 * m - 1) * (a + 2 * m)
            var aa: Double = m * (b - m) * x / even
            d = 1 + aa * d
            if abs(d) < tiny { d = tiny }
            c = 1 + aa / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            let odd: Double = (a + 2 * m) * (a + 2 * m + 1)
            aa = -(a + m) * (a + b + m) * x / odd
            d = 1 + aa * d
            if abs(d) < tiny { d = tiny }
            c = 1 + aa / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 3e-14 { break }
        }
        return h
    }
}
