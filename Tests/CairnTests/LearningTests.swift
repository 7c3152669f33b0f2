import CairnCore
import CairnStore
import Foundation
import Testing

/// The learning loop through `cairn serve` over real HTTP on 127.0.0.1 and a real registry:
/// traced requests with shadows, feedback into the next version, A/B readouts.
@Suite(.serialized) struct LearningTests {
    /// Two 50/50 splits of the same two versions, for A/B readouts.
    static let splits = [
        "targets/ab-effect.yaml": """
            apiVersion: cairn/v1
            kind: ServingTarget
            metadata: {name: ab-effect}
            spec:
              tenant: lab
              surface: effect
              routes:
                - {model: homepage-recs, version: latest-approved, weight: 50}
                - {model: homepage-recs-b, version: latest-approved, weight: 50}
            """,
        "targets/ab-null.yaml": """
            apiVersion: cairn/v1
            kind: ServingTarget
            metadata: {name: ab-null}
            spec:
              tenant: lab
              surface: null-effect
              routes:
                - {model: homepage-recs, version: latest-approved, weight: 50}
                - {model: homepage-recs-b, version: latest-approved, weight: 50}
            """,
    ]

    /// The example's homepage models with the shadow's first version approved (as the demo does by a commit).
    static var approvedShadow: String {
        get throws {
            try String(contentsOf: packageRoot.appendingPathComponent("examples/fleet/models/homepage.yaml"), encoding: .utf8)
                + "  decisions:\n    approve: [1]\n"
        }
    }

    /// The example fleet (and the splits) served and trained.
    static func served(extra: [String] = []) throws -> ServeEndToEndTests.Setup {
        let setup = try ServeEndToEndTests.Setup(files: splits.merging(["models/homepage.yaml": try approvedShadow]) { $1 })
        try setup.start(extra: extra)
        try setup.waitFor("the fleet to be trained and live", timeout: 120) {
            let db = try RegistryDatabase(path: setup.dbPath)
            let targets = try db.observedState().targets
            let idle = try db.activeRunCounts() == (0, 0)
            return targets["acme-homepage"]?.shadow.isEmpty == false && targets["ab-null"]?.assigned == true && idle
        }
        return setup
    }

    static func json(_ text: String) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { throw FixtureError("not an object: \(text)") }
        return object
    }

    static func recommend(_ s: ServeEndToEndTests.Setup, target: String, user: String, k: Int = 10) throws -> [String: Any] {
        let (status, body) = try s.http("GET", "/v1/targets/\(target)/recommendations?user=\(user)&k=\(k)")
        guard status == 200 else { throw FixtureError("recommendations answered \(status): \(body)") }
        return try json(body)
    }

    static func items(_ answer: [String: Any]) -> [String] {
        (answer["items"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
    }

    @Test func shadowsAreScoredOffTheRequestPathWithoutChangingTheAnswer() throws {
        let s = try Self.served()
        let users = (1...200).map { String(format: "u%04d", $0) }
        var answers: [String: [String: Any]] = [:]
        for user in users { answers[user] = try Self.recommend(s, target: "acme-homepage", user: user) }
        // The served answer is the route's own: the same as `cairn recommend` gives, which scores no shadow.
        for user in users.prefix(5) {
            let cli = try Self.json(try cairn(["recommend", "--target", "acme-homepage", "--user", user, "--db", s.dbPath, "--format", "json"],
                                              env: ["CAIRN_SIGNING_KEY": "73657276652d6b65792d666f722d7465737473"]).stdout)
            #expect(Self.items(cli) == Self.items(answers[user]!))
            #expect(cli["model"] as? String == answers[user]!["model"] as? String)
        }
        // Every answer names its request; its trace holds what was served and each shadow's answer.
        try s.waitFor("200 traces") { (try Self.json(try s.http("GET", "/v1/targets/acme-homepage/traces?limit=0").body)["kept"] as? Int ?? 0) >= 200 }
        let first = answers[users[0]]!
        let id = try #require(first["requestId"] as? String)
        let trace = try Self.json(try s.http("GET", "/v1/traces/\(id)").body)
        #expect(trace["model"] as? String == first["model"] as? String)
        #expect(trace["user"] as? String == users[0])
        let traced = (trace["items"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
        #expect(traced == Self.items(first))
        let shadows = try #require(trace["shadows"] as? [[String: Any]])
        #expect(shadows.count == 1 && shadows[0]["model"] as? String == "homepage-recs-c")
        let overlap = try #require(shadows[0]["overlap"] as? Double)
        #expect(overlap >= 0 && overlap <= 1)
        #expect((shadows[0]["items"] as? [Any])?.count == 10)

        let report = try Self.json(try s.http("GET", "/v1/targets/acme-homepage/traces?limit=5").body)
        #expect((report["traces"] as? [Any])?.count == 5)
        let summary = try #require((report["shadows"] as? [[String: Any]])?.first)
        #expect(summary["model"] as? String == "homepage-recs-c")
        #expect(summary["requests"] as? Int == 200)
        let mean = try #require(summary["meanOverlap"] as? Double)
        #expect(mean > 0 && mean <= 1)
        #expect((summary["p95LatencyMicros"] as? Int ?? 0) > 0)
        // The CLI reads the same traces.
        let cli = try cairn(["traces", "acme-homepage", "--db", s.dbPath])
        #expect(cli.stdout.contains("homepage-recs-c v1: 200 requests"))
        #expect(try s.counter("cairn_traces_total") >= 200)
        // A target without shadows is traced too (for attribution), with no shadow answers.
        let plain = try Self.recommend(s, target: "acme-search", user: "u0001")
        let plainID = try #require(plain["requestId"] as? String)
        try s.waitFor("the plain trace") { try s.http("GET", "/v1/traces/\(plainID)").status == 200 }
        #expect((try Self.json(try s.http("GET", "/v1/traces/\(plainID)").body)["shadows"] as? [Any])?.isEmpty == true)
        #expect(try s.http("GET", "/v1/traces/0123456789abcdef0123456789abcdef").status == 404)
    }

    @Test func tracesAreKeptWithinTheirLimit() throws {
        let s = try Self.served(extra: ["--trace-limit", "50"])
        for n in 1...120 { _ = try Self.recommend(s, target: "acme-search", user: String(format: "u%04d", n)) }
        try s.waitFor("the traces to be written") { try s.counter("cairn_traces_total") >= 120 }
        let kept = try #require(try Self.json(try s.http("GET", "/v1/targets/acme-search/traces?limit=0").body)["kept"] as? Int)
        // Pruned after each write that brings a tenth of the limit: never more than that over it.
        #expect(kept >= 50 && kept < 55, "kept \(kept)")
    }

    static func token(_ s: ServeEndToEndTests.Setup, _ name: String, scope: String) throws -> String {
        try cairn(["token", "create", name, "--scope", scope, "--db", s.dbPath]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// POSTs samples to /v1/feedback; (status, body).
    static func feedback(_ s: ServeEndToEndTests.Setup, token: String, _ samples: [[String: Any]]) throws -> (Int, [String: Any]) {
        let body = try JSONSerialization.data(withJSONObject: samples)
        let (status, text) = try httpRequest(port: s.port, "POST", "/v1/feedback", token: token, body: body, headers: ["Content-Type": "application/json"])
        return (status, (try? json(text)) ?? ["raw": text])
    }

    /// A small seeded generator, so the synthetic outcomes are the same on every run.
    struct Seeded {
        var state: UInt64
        mutating func chance(_ p: Double) -> Bool {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 53) < p
        }
    }

    @Test func feedbackThroughHTTPReachesTheNextVersionsDatasetSnapshot() throws {
        let s = try Self.served()
        let reader = try Self.token(s, "reader", scope: "read"), app = try Self.token(s, "shop-frontend", scope: "feedback")
        let before = try #require(try RegistryDatabase(path: s.dbPath).versions(of: "homepage-recs")?.first)
        #expect(before.learned?.feedbackSamples == 0 && before.learned?.samples == 24000)

        var samples: [[String: Any]] = []
        for n in 1...300 {
            let answer = try Self.recommend(s, target: "acme-homepage", user: String(format: "u%04d", n))
            guard answer["model"] as? String == "homepage-recs", let id = answer["requestId"] as? String else { continue }
            let items = Self.items(answer)
            samples.append(["requestId": id, "item": items[0], "outcome": "convert"])
            samples.append(["requestId": id, "item": items[1], "outcome": "click", "at": "2026-12-01T10:00:00Z"])
        }
        samples.append(["target": "acme-homepage", "user": "u0001", "item": "i0001", "outcome": "bookmarked"])
        // A read token may not report outcomes; bad samples are refused whole, naming the place.
        #expect(try Self.feedback(s, token: reader, samples).0 == 403)
        let comma = try Self.feedback(s, token: app, [samples[0], ["requestId": samples[0]["requestId"]!, "item": "i1,i2", "outcome": "click"]])
        #expect(comma.0 == 400 && (comma.1["error"] as? String)?.contains("samples[1].item") == true)
        let unknownRequest = try Self.feedback(s, token: app, [samples[0], ["requestId": "00000000000000000000000000000000", "item": "i1", "outcome": "click"]])
        #expect(unknownRequest.0 == 422 && (unknownRequest.1["error"] as? String)?.contains("samples[1].requestId: no traced request") == true)
        #expect(try RegistryDatabase(path: s.dbPath).feedbackCounts().isEmpty)

        let (status, accepted) = try Self.feedback(s, token: app, samples)
        #expect(status == 200, "\(accepted)")
        #expect(accepted["accepted"] as? Int == samples.count)
        // An outcome the template does not weigh is kept and counted, and said, never dropped silently.
        #expect((accepted["unknownOutcomes"] as? [String: Int]) == ["engagement-booster/bookmarked": 1])
        #expect((accepted["warnings"] as? [String])?.first?.contains("gives outcome 'bookmarked' no weight") == true)
        #expect(try s.counter("cairn_feedback_total") == samples.count)

        // The next run of the model trains on the dataset plus every sample so far.
        let models = try String(contentsOf: s.work.dir.url.appendingPathComponent("models/homepage.yaml"), encoding: .utf8)
        try s.push("retrain homepage-recs", files: ["models/homepage.yaml": models.replacingOccurrences(
            of: "  learning: {mode: scheduled, every: 24h}\n", with: "  learning: {mode: scheduled, every: 24h}\n  retrainToken: learn-1\n")])
        try s.waitFor("v2 to be trained", timeout: 120) { try RegistryDatabase(path: s.dbPath).versions(of: "homepage-recs")?.count == 2 }
        let after = try #require(try RegistryDatabase(path: s.dbPath).versions(of: "homepage-recs")?.last)
        #expect(after.learned?.feedbackSamples == samples.count)
        #expect(after.learned?.samples == 24000 + samples.count)
        #expect((after.learned?.feedbackThrough ?? 0) > 0)
        #expect(after.datasetHash != before.datasetHash)
        #expect(after.metrics != before.metrics)
        let log = try cairn(["logs", String(after.runID), "--db", s.dbPath]).stdout
        #expect(log.contains("\(samples.count) of the rows are outcome feedback"))

        // The model's record: samples, last trained, last learned, metrics history.
        let report = try Self.json(try cairn(["status", "Model/homepage-recs", "--db", s.dbPath, "--format", "json"]).stdout)
        let row = try #require((report["models"] as? [[String: Any]])?.first)
        #expect(row["trainingSamples"] as? Int == 24000 + samples.count && row["feedbackSamples"] as? Int == samples.count)
        #expect(row["lastLearnedAt"] as? Int == Int(after.createdAt) && row["lastTrainedAt"] as? Int == Int(after.createdAt))
        #expect((row["metricsHistory"] as? [Any])?.count == 2)
        let api = try Self.json(try s.http("GET", "/v1/models/homepage-recs").body)
        #expect((api["record"] as? [String: Any])?["feedbackSamples"] as? Int == samples.count)
    }

    @Test func anABReadoutDetectsAKnownEffectAndNotAnAbsentOne() throws {
        let s = try Self.served()
        let app = try Self.token(s, "shop-frontend", scope: "feedback")
        var random = Seeded(state: 20261207)
        for (target, rates) in [("ab-effect", ["homepage-recs": 0.30, "homepage-recs-b": 0.15]), ("ab-null", ["homepage-recs": 0.2, "homepage-recs-b": 0.2])] {
            var samples: [[String: Any]] = []
            for n in 1...1200 {
                let answer = try Self.recommend(s, target: target, user: String(format: "u%04d", n))
                let model = try #require(answer["model"] as? String)
                if random.chance(rates[model]!) {
                    samples.append(["requestId": answer["requestId"]!, "item": Self.items(answer)[0], "outcome": "click"])
                }
            }
            samples.append(["target": target, "user": "u0001", "item": "i0001", "outcome": "click"])
            for batch in stride(from: 0, to: samples.count, by: 1000) {
                #expect(try Self.feedback(s, token: app, Array(samples[batch..<min(samples.count, batch + 1000)])).0 == 200)
            }
        }
        try s.waitFor("the traces to be written") { try s.counter("cairn_traces_total") >= 2400 }
        func readout(_ target: String) throws -> [[String: Any]] {
            let body = try Self.json(try s.http("GET", "/v1/targets/\(target)/ab").body)
            #expect(body["test"] as? String == "welch-t" && body["unattributed"] as? Int == 1)
            return try #require(body["routes"] as? [[String: Any]])
        }
        let effect = try readout("ab-effect")
        #expect(effect.count == 2 && effect.map { $0["requests"] as? Int ?? 0 }.reduce(0, +) == 1200)
        let control = try #require(effect.first { $0["isControl"] as? Bool == true })
        let challenger = try #require(effect.first { $0["isControl"] as? Bool == false })
        #expect(control["model"] as? String == "homepage-recs")
        let versus = try #require(challenger["versusControl"] as? [String: Any])
        #expect(versus["significant"] as? Bool == true, "\(versus)")
        #expect((versus["difference"] as? Double ?? 0) < 0)
        #expect((control["rewardPerRequest"] as? Double ?? 0) > 0.07 && (control["rewardPerRequest"] as? Double ?? 0) < 0.11)

        let null = try readout("ab-null")
        let nullVersus = try #require(null.first { $0["isControl"] as? Bool == false }?["versusControl"] as? [String: Any])
        #expect(nullVersus["significant"] as? Bool == false, "\(nullVersus)")
        #expect((nullVersus["pValue"] as? Double ?? 0) > 0.05)

        let cli = try cairn(["ab", "ab-effect", "--db", s.dbPath]).stdout
        #expect(cli.contains("homepage-recs-b v1 (50%):") && cli.contains("(significant)") && cli.contains("Welch"))
        #expect(try cairn(["ab", "ab-null", "--db", s.dbPath]).stdout.contains("(not significant)"))
    }
}
