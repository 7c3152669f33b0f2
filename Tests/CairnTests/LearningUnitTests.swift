@testable import CairnCore

import CairnStore
import Foundation
import Testing

/// The learning loop's pure parts: agreement, statistics, snapshots, feedback parsing, and the
/// trace and feedback tables on both databases.
struct LearningUnitTests {
    @Test func agreementOfRankedLists() throws {
        #expect(Agreement.overlap(["a", "b", "c", "d"], ["b", "a", "x", "y"]) == 0.5)
        #expect(Agreement.overlap([], []) == 1)
        #expect(Agreement.rankCorrelation(["a", "b", "c"], ["a", "b", "c"]) == 1)
        let reversed = try #require(Agreement.rankCorrelation(["a", "b", "c"], ["c", "b", "a"]))
        #expect(abs(reversed + 1) < 1e-12)
        // Disjoint lists rank each other's items below the end: strongly negative, not undefined.
        let disjoint = try #require(Agreement.rankCorrelation(["a", "b"], ["c", "d"]))
        #expect(disjoint < 0)
        #expect(Agreement.rankCorrelation(["a"], ["a"]) == nil)
        #expect(percentile([5, 1, 3, 2, 4], 0.5) == 3 && percentile([5, 1, 3, 2, 4], 0.95) == 5 && percentile([], 0.5) == 0)
    }

    /// Reference values from Student's t distribution tables.
    @Test func welchsTestMatchesTheTDistribution() throws {
        #expect(abs(Statistics.studentTwoSided(t: 2.0, df: 10) - 0.07339) < 1e-4)
        #expect(abs(Statistics.studentTwoSided(t: 2.228, df: 10) - 0.05) < 1e-3)
        #expect(abs(Statistics.studentTwoSided(t: 1.96, df: 1e6) - 0.05) < 1e-3)
        #expect(abs(Statistics.studentTwoSided(t: 0, df: 5) - 1) < 1e-12)
        #expect(Statistics.studentTwoSided(t: 40, df: 100) < 1e-12)
        #expect(Statistics.welchPValue(mean1: 0, variance1: 1, n1: 1, mean2: 1, variance2: 1, n2: 10) == nil)
        // Equal sizes and variances: t = 1 / sqrt(2/50 · 1) = 5, df = 98.
        let p = try #require(Statistics.welchPValue(mean1: 0, variance1: 1, n1: 50, mean2: 1, variance2: 1, n2: 50))
        #expect(p < 1e-5)
    }

    @Test func aReadoutComparesEachRouteWithTheLargestOne() throws {
        let routes = [LiveRoute(model: "b", version: 2, weight: 10), LiveRoute(model: "a", version: 1, weight: 90)]
        let sums = ["a@1": ABReadout.RouteSums(requests: 900, rewardSum: 90, rewardSquares: 90, outcomes: ["click": 90]),
                    "b@2": ABReadout.RouteSums(requests: 100, rewardSum: 30, rewardSquares: 30, outcomes: ["click": 30])]
        let readout = ABReadout.compute(target: "t", since: 0, routes: routes, sums: sums, unattributed: 0, unknownOutcomes: [:])
        #expect(readout.routes[1].isControl && !readout.routes[0].isControl)
        let versus = try #require(readout.routes[0].versusControl)
        #expect(abs(versus.difference - 0.2) < 1e-9 && versus.significant)
        #expect(readout.lines[1].hasSuffix("(control)"))
    }

    @Test func feedbackIsAppendedUnderTheDatasetsOwnHeader() {
        let snapshot = FeedbackSnapshot(through: 7, rows: [.init(user: "u9", item: "i9", outcome: "click", at: 1_764_000_000)])
        let dataset = Array("timestamp,event,item_id,user_id,extra\r\n1,click,i1,u1,x".utf8)
        #expect(String(decoding: snapshot.appended(to: dataset), as: UTF8.self)
                    == "timestamp,event,item_id,user_id,extra\r\n1,click,i1,u1,x\n1764000000,click,i9,u9,\n")
        #expect(FeedbackSnapshot(through: 0, rows: []).appended(to: dataset) == dataset)
    }

    @Test func feedbackBodiesAreCheckedFieldByField() throws {
        let one = try FeedbackInput.parse(Array(#"{"requestId": "r1", "item": "i1", "outcome": "click", "at": "2026-12-01T00:00:00Z"}"#.utf8), limit: 10)
        #expect(one == [FeedbackInput(requestId: "r1", target: nil, user: nil, item: "i1", outcome: "click", at: 1_796_083_200)])
        #expect(try FeedbackInput.parse(Array(#"{"samples": [{"target": "t", "user": "u", "item": "i", "outcome": "o"}]}"#.utf8), limit: 10).count == 1)
        func refusal(_ body: String, limit: Int = 10) -> String {
            do {
                _ = try FeedbackInput.parse(Array(body.utf8), limit: limit)
                return "accepted"
            } catch { return "\(error)" }
        }
        #expect(refusal("not json").contains("not JSON"))
        #expect(refusal(#"[{"item": "i", "outcome": "o"}, {"item": "i"}]"#).contains("samples[1].outcome: missing"))
        #expect(refusal(#"[{"item": "i\nx", "outcome": "o"}]"#).contains("samples[0].item"))
        #expect(refusal(#"[{"item": "i", "outcome": "o", "weight": 3}]"#).contains("samples[0].weight: unknown field"))
        #expect(refusal(#"[{"item": "i", "outcome": "o", "at": "yesterday"}]"#).contains("samples[0].at"))
        #expect(refusal(#"[{"item": "i", "outcome": "o"}, {"item": "i", "outcome": "o"}]"#, limit: 1).contains("at most 1"))
        #expect(refusal("[]").contains("no samples"))
    }

    @Test(arguments: Backend.available) func tracesAndFeedbackOnEachDatabase(_ backend: Backend) throws {
        let dir = TempDir("cairn-learning")
        let db = try backend.fresh(in: dir)
        defer { db.close() }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let served = [DecisionTrace.Scored(item: "a", score: 1), DecisionTrace.Scored(item: "b", score: 0.5)]
        let shadow = DecisionTrace.Shadow(model: "s", version: 1, items: [DecisionTrace.Scored(item: "b", score: 1)], latencyMicros: 20, served: served)
        var traces: [DecisionTrace] = []
        for n in 0..<30 {
            let at: Int64 = now - Int64(30 - n) * 1000
            traces.append(DecisionTrace(requestId: String(format: "r%02d", n), at: at, target: n % 2 == 0 ? "t" : "u", user: "u\(n)",
                                        model: "m", version: 1, k: 2, items: served, latencyMicros: 10 + n, shadows: [shadow]))
        }
        try db.recordTraces(traces)
        #expect(try db.trace("r03") == traces[3])
        #expect(try db.traces(target: "t", limit: 3).map(\.requestId) == ["r28", "r26", "r24"])
        #expect(try db.traceCounts(target: "t") == (15, 30))
        // Age first, then the newest maxRows.
        #expect(try db.pruneTraces(before: now - 20 * 1000, keeping: 100) == 10)
        #expect(try db.pruneTraces(before: 0, keeping: 5) == 15)
        #expect(try db.traceCounts(target: "t").total == 5 && db.trace("r29") != nil && db.trace("r24") == nil)

        try db.recordFeedback([FeedbackSample(at: 1, requestId: "r29", target: "u", model: "m", version: 1, template: "tpl", user: "u29", item: "a", outcome: "click", weight: 0.5),
                               FeedbackSample(at: 2, requestId: nil, target: "u", model: "m", version: 1, template: "tpl", user: "u1", item: "b", outcome: "odd", weight: nil),
                               FeedbackSample(at: 3, requestId: nil, target: "v", model: "n", version: 1, template: "other", user: "u1", item: "b", outcome: "click", weight: 1)],
                              receivedAt: 10)
        let snapshot = try db.feedbackSnapshot(template: "tpl")
        #expect(snapshot.rows.map(\.outcome) == ["click", "odd"] && snapshot.through == 2)
        #expect(try db.feedbackCounts()["tpl"]! == (2, 1))
        let (sums, unattributed, unknown) = try db.experimentSums(target: "u", since: 0)
        #expect(sums["m@1"]?.requests == 3 && sums["m@1"]?.rewardSum == 0.5 && unattributed == 1 && unknown.isEmpty)
    }
}
