import ArgumentParser
import CairnCore
import CairnStore
import CairnTraining
import Foundation

/// `cairn traces TARGET`: the decision traces `cairn serve` recorded, and how each shadow agrees
/// with what was served.
struct Traces: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a target's decision traces and its shadows' agreement with what was served.",
        discussion: """
            Each recommendation request `cairn serve` answers is traced: the served version's items and latency, and each shadow's \
            answer to the same request (scored after the answer was sent). Agreement: overlap@k (share of the served items the shadow \
            also returned) and Spearman's rank correlation of the two lists; latencies p50/p95.
            """
    )

    @Argument(help: "The serving target.")
    var target: String

    @Option(help: "How many of the newest traces to list.")
    var limit: Int = 10

    @Option(help: "One trace, by the request id the answer carried.")
    var request: String?

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if limit < 0 || limit > 1000 { throw ValidationError("--limit must be between 0 and 1000") }
    }

    func run() throws {
        try reportingFailures(format: output.format) {
            guard let db = try database.openForReading() else { throw CairnError("no registry database at \(database.shown)") }
            if let request {
                guard let trace = try db.trace(request), trace.target == target else {
                    throw CairnError("no trace of request \(request) for ServingTarget/\(target)", hint: "traces are kept for `cairn serve --trace-retention` (7d)")
                }
                if output.format == .json { return printJSON(trace) }
                print(Self.describe(trace))
                return
            }
            let report = try TraceReport.of(target: target, db: db, limit: limit)
            if output.format == .json { return printJSON(report) }
            print("ServingTarget/\(target): \(report.kept) trace\(report.kept == 1 ? "" : "s") kept")
            if report.shadows.isEmpty { print("No shadow answers traced.") }
            for s in report.shadows {
                print("  shadow \(s.model) v\(s.version): \(s.requests) requests, overlap@k \(String(format: "%.3f", s.meanOverlap)), "
                      + "rank correlation \(s.meanRankCorrelation.map { String(format: "%.3f", $0) } ?? "-"), "
                      + "latency p50 \(s.p50LatencyMicros) µs, p95 \(s.p95LatencyMicros) µs (served p95 \(s.servedP95LatencyMicros) µs)")
            }
            for trace in report.traces { print(Self.describe(trace)) }
        }
    }

    static func describe(_ t: DecisionTrace) -> String {
        var lines = ["\(t.requestId)  \(Describe.time(t.at / 1000))  \(t.user.map { "user \($0)" } ?? "items only")  → \(t.model) v\(t.version) "
                     + "(\(t.latencyMicros) µs): " + t.items.prefix(5).map(\.item).joined(separator: " ") + (t.items.count > 5 ? " …" : "")]
        if t.shed { lines.append("    shadows shed (the recorder was behind)") }
        for s in t.shadows {
            lines.append("    shadow \(s.model) v\(s.version) (\(s.latencyMicros) µs, overlap \(String(format: "%.2f", s.overlap))): "
                         + s.items.prefix(5).map(\.item).joined(separator: " ") + (s.items.count > 5 ? " …" : ""))
        }
        return lines.joined(separator: "\n")
    }
}

/// `cairn ab TARGET`: the A/B readout of a traffic split.
struct AB: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ab",
        abstract: "Show the A/B readout of a target's traffic split.",
        discussion: """
            Per route: traced requests, the outcomes feedback attributed to them by request id, and the weighted reward per request \
            (the template's OutcomeWeights). Each route is compared with the control (the route of the largest weight) by Welch's \
            two-sample t-test on the per-request reward; significant when p < 0.05.
            """
    )

    @Argument(help: "The serving target.")
    var target: String

    @Option(help: "Only requests traced since this time (unix seconds or 2026-12-01T00:00:00Z; default: when the live routes were promoted).")
    var since: String?

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try reportingFailures(format: output.format) {
            guard let db = try database.openForReading() else { throw CairnError("no registry database at \(database.shown)") }
            var from: Int64?
            if let since {
                guard let t = Int64(since) ?? Interactions.parseTimestamp(ArraySlice(Array(since.utf8))) else {
                    throw CairnError("--since \(since) is neither unix seconds nor an ISO 8601 time (2026-12-01T00:00:00Z)")
                }
                from = t
            }
            let readout = try ExperimentReport.readout(target: target, db: db, since: from).get()
            if output.format == .json { return printJSON(readout) }
            print("ServingTarget/\(target): A/B readout since \(Describe.time(readout.since)) (Welch's t-test, α = \(readout.alpha))")
            for line in readout.lines { print("  " + line) }
            for r in readout.routes where !r.outcomes.isEmpty {
                print("  \(r.model) v\(r.version) outcomes: " + r.outcomes.keys.sorted().map { "\($0)=\(r.outcomes[$0]!)" }.joined(separator: " "))
            }
            if readout.unattributed > 0 { print("  \(readout.unattributed) outcome(s) without a request id: not attributed to a route") }
            if !readout.unknownOutcomes.isEmpty {
                print("  warning: outcome types the template does not weigh (counted, never rewarded): "
                      + readout.unknownOutcomes.keys.sorted().map { "\($0)=\(readout.unknownOutcomes[$0]!)" }.joined(separator: " "))
            }
        }
    }
}
