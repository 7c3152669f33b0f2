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

        // A pull request that shifts the split shows the readout so far in its plan.
        let shifted = """
            apiVersion: cairn/v1
            kind: ServingTarget
            metadata: {name: ab-effect}
            spec:
              tenant: lab
              surface: effect
              routes:
                - {model: homepage-recs, version: latest-approved, weight: 80}
                - {model: homepage-recs-b, version: latest-approved, weight: 20}
            """
        let sha = try s.work.commit("shift the split", files: ["targets/ab-effect.yaml": shifted])
        try s.work.git(["push", "-q", "origin", "HEAD:refs/heads/pr-1"])
        let plan = try s.http("GET", "/v1/plan?revision=\(sha)&format=markdown").body
        #expect(plan.contains("#### A/B readout of `ServingTarget/ab-effect` so far") && plan.contains("(significant)"), "\(plan)")
    }

    static func example(_ path: String) throws -> String {
        try String(contentsOf: packageRoot.appendingPathComponent("examples/fleet/\(path)"), encoding: .utf8)
    }

    @Test func anApprovalWaitsForTheShadowEvidenceItsModelRequires() throws {
        let models = try Self.example("models/homepage.yaml") + "    shadowEvidence: {minRequests: 50, minOverlap: 0.01}\n  decisions:\n    approve: [1]\n"
        let target = try Self.example("targets/acme-homepage.yaml").replacingOccurrences(of: "{model: homepage-recs-c, version: latest-approved}",
                                                                                           with: "{model: homepage-recs-c, version: 1}")
        let s = try ServeEndToEndTests.Setup(files: ["models/homepage.yaml": models, "targets/acme-homepage.yaml": target])
        try s.start()
        try s.waitFor("the fleet to be live with the pending shadow", timeout: 120) {
            let db = try RegistryDatabase(path: s.dbPath)
            let idle = try db.activeRunCounts() == (0, 0)
            return try db.observedState().targets["acme-homepage"]?.shadow.first?.model == "homepage-recs-c" && idle
        }
        // Listed for approval, but no shadow answers yet: the plan says what is missing.
        let plan = try s.http("GET", "/v1/plan?format=text").body
        #expect(plan.contains("shadow evidence: no shadow answers traced yet (needs 50)"), "\(plan)")
        #expect(try RegistryDatabase(path: s.dbPath).versions(of: "homepage-recs-c")?.first?.status == .pending)
        for n in 1...60 { _ = try Self.recommend(s, target: "acme-homepage", user: String(format: "u%04d", n)) }
        // The evidence moves without the registry's generation: the loop plans again at its next poll.
        try s.waitFor("v1 to be approved on its evidence") { try RegistryDatabase(path: s.dbPath).versions(of: "homepage-recs-c")?.first?.status == .approved }
        let history = try cairn(["history", "--model", "homepage-recs-c", "--db", s.dbPath]).stdout
        #expect(history.contains("listed in decisions.approve; shadow evidence: 60 traced requests"), "\(history)")
    }

    @Test func aTrippedRollbackGuardRollsBackOnceAndIsAudited() throws {
        func guarded(_ model: String) -> String {
            """
            apiVersion: cairn/v1
            kind: ServingTarget
            metadata: {name: guarded}
            spec:
              tenant: lab
              surface: guarded
              routes:
                - {model: \(model), version: 1, weight: 100}
              rollbackGuard: {minRequests: 100, maxRewardDrop: 0.05}
            """
        }
        let s = try ServeEndToEndTests.Setup(files: ["targets/guarded.yaml": guarded("homepage-recs")])
        try s.start()
        try s.waitFor("the fleet to be live", timeout: 120) {
            let db = try RegistryDatabase(path: s.dbPath)
            let idle = try db.activeRunCounts() == (0, 0)
            return try db.observedState().targets["guarded"]?.routes.first?.model == "homepage-recs" && idle
        }
        let app = try Self.token(s, "shop-frontend", scope: "feedback")
        var random = Seeded(state: 42)
        func traffic(_ n: Int, clickRate: Double, offset: Int) throws {
            var samples: [[String: Any]] = []
            for i in 1...n {
                let answer = try Self.recommend(s, target: "guarded", user: String(format: "u%04d", offset + i))
                if random.chance(clickRate) { samples.append(["requestId": answer["requestId"]!, "item": Self.items(answer)[0], "outcome": "click"]) }
            }
            #expect(try Self.feedback(s, token: app, samples).0 == 200)
        }
        try traffic(150, clickRate: 0.6, offset: 0)
        // A commit puts the popularity baseline live; it does much worse.
        try s.push("try the baseline", files: ["targets/guarded.yaml": guarded("homepage-recs-b")])
        try s.waitFor("the baseline to be live") { try RegistryDatabase(path: s.dbPath).observedState().targets["guarded"]?.routes.first?.model == "homepage-recs-b" }
        // The serving cache follows the registry a moment later: until it does, requests are still
        // answered by the old route and do not count for the baseline (under load that left the
        // guard short of its 100 requests).
        try s.waitFor("the cache to serve the baseline") { try Self.recommend(s, target: "guarded", user: "u9999")["model"] as? String == "homepage-recs-b" }
        try traffic(150, clickRate: 0.1, offset: 150)
        do {
            try s.waitFor("the guard to trip") { try RegistryDatabase(path: s.dbPath).observedState().targets["guarded"]?.routes.first?.model == "homepage-recs" }
        } catch {
            // What the guard read, for a failure that cannot be replayed.
            let reading = try? RegistryDatabase(path: s.dbPath).evidence(EvidenceRequest(guardTargets: ["guarded"])).guards["guarded"]
            let plan = (try? s.http("GET", "/v1/plan?format=text").body) ?? ""
            let history = (try? cairn(["history", "--target", "guarded", "--db", s.dbPath]).stdout) ?? ""
            throw FixtureError("\(error)\nguard reading: \(String(describing: reading))\nplan: \(plan)\nhistory: \(history)")
        }
        let live = try #require(try RegistryDatabase(path: s.dbPath).observedState().targets["guarded"])
        #expect(live.drift?.actor == "rollback-guard" && live.drift?.guarded?.first?.model == "homepage-recs-b")
        #expect(live.drift?.how.contains("rollback guard tripped: homepage-recs-b v1 reward") == true, "\(String(describing: live.drift))")
        // Served by the previous version again; later passes hold it there and never roll back twice.
        try s.waitFor("the cache to serve it") { try Self.recommend(s, target: "guarded", user: "u0001")["model"] as? String == "homepage-recs" }
        try s.waitForPolls(3)
        let rows = try cairn(["history", "--target", "guarded", "--db", s.dbPath]).stdout
        #expect(rows.components(separatedBy: "rollback guard tripped").count - 1 == 1, "\(rows)")
        let plan = try s.http("GET", "/v1/plan?format=text").body
        #expect(plan.contains("stays on homepage-recs v1 (100%) until a commit changes its routes"), "\(plan)")
        let status = try cairn(["status", "--db", s.dbPath]).stdout
        #expect(status.contains("guarded (drift)"))
        #expect(try s.counter("cairn_rollback_guard_trips_total") == 1 && s.log.contains("rollback guard tripped"))
        // The promotion that put the baseline live recorded the metrics it was decided on.
        let audit = try cairn(["history", "--target", "guarded", "--db", s.dbPath, "--format", "json"]).stdout
        #expect(audit.contains("\"decidedOn\"") && audit.contains("\"homepage-recs-b@1\""), "\(audit.prefix(2000))")
        // A commit that declares what the guard put back ends the drift.
        try s.push("keep the champion", files: ["targets/guarded.yaml": guarded("homepage-recs")])
        try s.waitFor("the drift to clear") { try RegistryDatabase(path: s.dbPath).observedState().targets["guarded"]?.drift == nil }
        #expect(try RegistryDatabase(path: s.dbPath).observedState().targets["guarded"]?.routes.first?.model == "homepage-recs")
    }

    @Test func reviewersSeeAnyVersionsRecommendationsWithTitles() throws {
        let s = try Self.served()
        let key = ["CAIRN_SIGNING_KEY": "73657276652d6b65792d666f722d7465737473"]
        func review(_ args: [String]) throws -> [String: Any] {
            let result = try cairn(["recommend"] + args + ["--repo", s.work.dir.url.path, "--db", s.dbPath, "--format", "json"], env: key)
            guard result.status == 0 else { throw FixtureError("recommend \(args): \(result.stderr)") }
            return try Self.json(result.stdout)
        }
        // A random user, chosen by a seed: the same seed gives the same user and the same sample.
        let first = try review(["--model", "homepage-recs", "--random-user", "--seed", "7"])
        let again = try review(["--model", "homepage-recs", "--random-user", "--seed", "7"])
        #expect(first["user"] as? String != nil && first["user"] as? String == again["user"] as? String)
        #expect(Self.items(first) == Self.items(again) && Self.items(first).count == 10)
        // The template's item catalogue gives titles and categories (read at the version's commit).
        let items = try #require(first["items"] as? [[String: Any]])
        #expect(items.allSatisfy { ($0["title"] as? String)?.isEmpty == false && $0["category"] as? String != nil })
        #expect((first["history"] as? [[String: Any]])?.first?["title"] as? String != nil)
        // A new user from the items they interacted with.
        let fresh = try review(["--model", "homepage-recs", "--items", "i0001,i0002"])
        #expect(fresh["user"] == nil && (fresh["history"] as? [[String: Any]])?.map { $0["item"] as? String } == ["i0001", "i0002"])
        #expect(!Self.items(fresh).contains("i0001"))
        // A pending version is scored too: what approving it would put live.
        let pending = try review(["--model", "search-popular", "--version", "1", "--user", "u0001"])
        #expect(pending["status"] as? String == "pending" && Self.items(pending).count == 10)
        // The text form names the titles.
        let text = try cairn(["recommend", "--model", "homepage-recs", "--random-user", "--seed", "7", "--repo", s.work.dir.url.path, "--db", s.dbPath], env: key).stdout
        #expect(text.contains("(random, seed 7)") && ["[running]", "[cycling]", "[camping]", "[swimming]", "[fitness]"].contains { text.contains($0) })
        // The API gives the same sample.
        let api = try Self.json(try s.http("GET", "/v1/models/homepage-recs/versions/1/recommendations?random=7").body)
        #expect(api["user"] as? String == first["user"] as? String && Self.items(api) == Self.items(first))
        #expect(try s.http("GET", "/v1/models/homepage-recs/versions/9/recommendations?random=7").status == 404)
    }

    /// examples/learning/run.sh: the documented walk-through, every step checked by the script.
    @Test func theLearningExampleRunsEndToEnd() throws {
        let result = try runProcess("/bin/bash", [packageRoot.appendingPathComponent("examples/learning/run.sh").path], env: ["CAIRN": cairnBinary])
        #expect(result.status == 0, "\(result.stdout.suffix(2000))\n\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("The learning loop ran end to end."))
        #expect(result.stdout.contains("rollback guard tripped: shop-recs v2 reward"))
        #expect(result.stdout.contains("listed in decisions.approve; shadow evidence:"))
    }

    /// Attack: a feedback sample whose item id carries a line break and a forged row, to add
    /// rows (here a purchase by another user) to the snapshot the next training run reads.
    @Test func feedbackCannotForgeRowsInTheTrainingSnapshot() throws {
        let s = try Self.served()
        let app = try Self.token(s, "shop-frontend", scope: "feedback")
        let forged = "i0001\nu0999,i0042,convert,1796000000"
        for field in ["item", "user", "outcome"] {
            var sample: [String: Any] = ["target": "acme-homepage", "user": "u0001", "item": "i0001", "outcome": "click"]
            sample[field] = forged
            let (status, body) = try Self.feedback(s, token: app, [sample])
            #expect(status == 400 && (body["error"] as? String)?.contains("samples[0].\(field)") == true, "\(field): \(status) \(body)")
        }
        let (status, _) = try Self.feedback(s, token: app, [["target": "acme-homepage", "user": "u0001", "item": "i0001,u0999", "outcome": "click"]])
        #expect(status == 400)
        // Nothing of it reached the registry, nor the rows a run would append to its dataset.
        let snapshot = try RegistryDatabase(path: s.dbPath).feedbackSnapshot(template: "engagement-booster")
        let text = String(decoding: snapshot.appended(to: Array("user_id,item_id,event,timestamp\n".utf8)), as: UTF8.self)
        #expect(snapshot.rows.isEmpty && !text.contains("u0999"), "\(text)")
    }
}
