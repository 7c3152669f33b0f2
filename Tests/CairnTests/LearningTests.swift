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
}
