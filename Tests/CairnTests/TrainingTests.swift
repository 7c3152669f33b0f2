import CairnCore
@testable import CairnTraining
import Foundation
import Testing

@Suite struct TrainingTests {
    static let weights: [String: Double] = ["click": 1, "convert": 2, "complaint": -3, "no_action": 0]

    @Test func interactionsAreWeightedAndFolded() throws {
        let csv = """
        timestamp,event,item_id,user_id
        2026-11-01T00:00:00Z,click,a,u1
        1793577600,convert,a,u1
        2026-11-01T00:00:00Z,complaint,b,u1
        2026-11-01T00:00:00Z,no_action,c,u1
        2026-11-01T00:00:00Z,view,d,u1
        2026-11-02T10:00:00Z,click,b,u2

        """
        let data = try Interactions.load(Array(csv.utf8), events: ["click", "convert", "complaint", "no_action", "view"], weights: Self.weights)
        #expect(data.users == ["u1", "u2"])
        #expect(data.items == ["a", "b"])
        #expect(data.pairs[0] == [Interactions.Pair(item: 0, signal: 3, lastSeen: 1_793_577_600), Interactions.Pair(item: 1, signal: -3, lastSeen: 1_793_491_200)])
        #expect(data.pairs[1] == [Interactions.Pair(item: 1, signal: 1, lastSeen: 1_793_613_600)])
    }

    @Test func badDataSaysWhere() {
        #expect { try Interactions.load(Array("user_id,item_id,event\nu,i,click\n".utf8), events: ["click"], weights: Self.weights) }
            throws: { ($0 as? CairnError)?.message.contains("no 'timestamp' column") == true }
        #expect { try Interactions.load(Array("user_id,item_id,event,timestamp\nu,i,click,yesterday\n".utf8), events: ["click"], weights: Self.weights) }
            throws: { ($0 as? CairnError)?.message.hasPrefix("dataset line 2, column 4: the timestamp (9 bytes) is neither") == true }
        #expect { try Interactions.load(Array("user_id,item_id,event,timestamp\nu,i\n".utf8), events: ["click"], weights: Self.weights) }
            throws: { ($0 as? CairnError)?.message == "dataset line 2: 2 columns, expected 4" }
    }

    @Test func metricsAreComputedAsDefined() {
        // Items 0…3; the model ranks by popularity 3 > 2 > 1 > 0.
        let model = RecommenderModel(format: RecommenderModel.formatName, algorithm: "popularity", items: ["a", "b", "c", "d"],
                                     popularity: [1, 2, 3, 4], neighbors: nil, users: [:], seen: [:])
        let train: [[Interactions.Pair]] = [[Interactions.Pair(item: 3, signal: 1, lastSeen: 0)], []]
        // User 0 (has seen d) gets [c, b, a]; held out: b. User 1 gets [d, c, b, a]; held out: a and d.
        let metrics = Evaluation.measure(model, train: train, heldOut: [0: [1], 1: [0, 3]],
                                         metrics: ["ndcg@2", "recall@2", "precision@2", "coverage@1"])
        let ndcgUser0 = (1 / log2(3.0)) / 1
        let ndcgUser1 = 1.0 / (1 + 1 / log2(3.0))
        #expect(abs(metrics["ndcg@2"]! - ((ndcgUser0 + ndcgUser1) / 2 * 1e6).rounded() / 1e6) < 1e-9)
        #expect(metrics["recall@2"] == 0.75)
        #expect(metrics["precision@2"] == 0.5)
        #expect(metrics["coverage@1"] == 0.5)
    }

    func fleetData() throws -> Interactions {
        let bytes = try Data(contentsOf: packageRoot.appendingPathComponent("examples/fleet/data/interactions.csv"))
        return try Interactions.load([UInt8](bytes), events: ["click", "convert", "renewed"], weights: ["click": 0.3, "convert": 1, "renewed": 1.2])
    }

    func measure(_ data: Interactions, _ algorithm: Template.BuiltinAlgorithm, _ params: [String: JSONValue], seed: Int = 42) -> [String: Double] {
        let (train, held) = Evaluation.split(data, holdout: 0.2, seed: seed)
        let model = Fit.model(data, userPairs: train, algorithm: algorithm, params: params)
        return Evaluation.measure(model, train: train, heldOut: held, metrics: ["ndcg@10", "recall@20", "precision@5", "coverage"])
    }

    @Test func metricsAreRealAndMoveWithParamsDataAndSeed() throws {
        let data = try fleetData()
        let knn = measure(data, .itemKNN, ["neighbors": .int(50)])
        #expect(knn == measure(data, .itemKNN, ["neighbors": .int(50)]))
        let pop = measure(data, .popularity, [:])
        let narrow = measure(data, .itemKNN, ["neighbors": .int(2)])
        // The example data has taste groups, so neighbours beat popularity.
        #expect(knn["ndcg@10"]! > pop["ndcg@10"]!)
        #expect(knn["ndcg@10"]! != narrow["ndcg@10"]!)
        #expect(knn["ndcg@10"]! != measure(data, .itemKNN, ["neighbors": .int(50)], seed: 7)["ndcg@10"]!)
        for v in Array(knn.values) + Array(pop.values) { #expect(v >= 0 && v <= 1) }
        var fewer = data
        fewer.pairs = fewer.pairs.map { Array($0.prefix(3)) }
        #expect(measure(fewer, .itemKNN, ["neighbors": .int(50)]) != knn)
    }

    @Test func splitIsSeededPerUserAndNeverHoldsOutEverything() throws {
        let data = try fleetData()
        let a = Evaluation.split(data, holdout: 0.2, seed: 42)
        let b = Evaluation.split(data, holdout: 0.2, seed: 42)
        #expect(a.heldOut == b.heldOut)
        #expect(a.heldOut != Evaluation.split(data, holdout: 0.2, seed: 43).heldOut)
        for (u, held) in a.heldOut {
            #expect(!held.isEmpty)
            #expect(a.train[u].contains { $0.signal > 0 })
            #expect(!a.train[u].contains { held.contains($0.item) })
        }
    }

    @Test func recommendationsSkipWhatTheUserHasSeen() throws {
        let data = try fleetData()
        let model = Fit.model(data, userPairs: data.pairs, algorithm: .itemKNN, params: ["neighbors": .int(20)])
        let user = data.users[0]
        let recs = model.recommend(user: user, items: [], k: 10)
        #expect(recs.count == 10)
        let seen = Set((model.seen[user] ?? []).map { model.items[$0] })
        #expect(recs.allSatisfy { !seen.contains($0.item) })
        #expect(recs.map(\.score) == recs.map(\.score).sorted(by: >))
        let anonymous = model.recommend(user: nil, items: ["i0001", "i0009"], k: 5)
        #expect(anonymous.count == 5 && !anonymous.contains { $0.item == "i0001" })
    }

    @Test func routeChoiceIsStableAndFollowsWeights() {
        let routes = [LiveRoute(model: "a", version: 1, weight: 90), LiveRoute(model: "b", version: 1, weight: 10)]
        #expect(RouteChoice.pick(routes, key: "u0042") == RouteChoice.pick(routes, key: "u0042"))
        let toB = (0..<10_000).filter { RouteChoice.pick(routes, key: "user-\($0)").model == "b" }.count
        #expect((800...1200).contains(toB))
        #expect(RouteChoice.pick([LiveRoute(model: "a", version: 1, weight: 0), LiveRoute(model: "b", version: 2, weight: 100)], key: "x").model == "b")
    }

    @Test func artifactsAreContentAddressedAndSigned() throws {
        let dir = TempDir("cairn-artifacts")
        let store = ArtifactStore(root: dir.url.appendingPathComponent("store"))
        func staging(_ name: String) throws -> URL {
            let s = dir.url.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: s.appendingPathComponent("sub"), withIntermediateDirectories: true)
            try Data("model".utf8).write(to: s.appendingPathComponent("model.json"))
            try Data("weights".utf8).write(to: s.appendingPathComponent("sub/w.bin"))
            return s
        }
        let hash = try store.store(staging: try staging("one"))
        #expect(try store.store(staging: try staging("two")) == hash)
        #expect(!FileManager.default.fileExists(atPath: dir.url.appendingPathComponent("two").path))
        let key = SigningKey(bytes: Array("k".utf8))
        let identity = VersionIdentity(model: "m", version: 3, fingerprint: "f")
        let signature = key.sign(contentHash: hash, identity: identity)
        try store.verify(hash: hash, signature: signature, identity: identity, key: key)
        #expect(throws: CairnError.self) {
            try store.verify(hash: hash, signature: signature, identity: VersionIdentity(model: "m", version: 4, fingerprint: "f"), key: key)
        }
        #expect { try store.verify(hash: hash, signature: signature, identity: identity, key: SigningKey(bytes: Array("other".utf8))) }
            throws: { ($0 as? CairnError)?.message.contains("signature this key did not make") == true }
        try Data("changed".utf8).write(to: store.folder(hash).appendingPathComponent("sub/w.bin"))
        #expect { try store.verify(hash: hash, signature: signature, identity: identity, key: key) }
            throws: { ($0 as? CairnError)?.message.contains("was tampered with") == true }
    }

    @Test func signingKeyIsGeneratedPrivateOnceAndEnvironmentWins() throws {
        let dir = TempDir("cairn-key")
        let file = dir.url.appendingPathComponent("keys/signing.key")
        var notices: [String] = []
        let first = try SigningKey.load(environment: [:], file: file) { notices.append($0) }
        let again = try SigningKey.load(environment: [:], file: file) { notices.append($0) }
        #expect(first.bytes == again.bytes && first.bytes.count == 32)
        #expect(notices.count == 1 && notices[0].contains("generated a signing key"))
        let mode = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try SigningKey.load(environment: ["CAIRN_SIGNING_KEY": "00112233445566778899aabbccddeeff"], file: file) { _ in }.bytes.count == 16)
    }

    /// One key, one encoding: `CAIRN_SIGNING_KEY=$(cat signing.key)` is the key in the file, and a
    /// value that is not a key is refused without being quoted.
    @Test func theEnvironmentAndTheKeyFileReadTheSameEncoding() throws {
        let dir = TempDir("cairn-key")
        let file = dir.url.appendingPathComponent("signing.key")
        let generated = try SigningKey.load(environment: [:], file: file) { _ in }
        let text = try String(contentsOf: file, encoding: .utf8)
        let fromEnvironment = try SigningKey.load(environment: ["CAIRN_SIGNING_KEY": text.trimmingCharacters(in: .newlines)], file: file) { _ in }
        #expect(fromEnvironment.bytes == generated.bytes)
        let identity = VersionIdentity(model: "m", version: 1, fingerprint: "f")
        #expect(fromEnvironment.verify(generated.sign(contentHash: "abc", identity: identity), contentHash: "abc", identity: identity))
        #expect(throws: CairnError.self) { try SigningKey.load(environment: ["CAIRN_SIGNING_KEY": "s3cret-passphrase"], file: file) { _ in } }
        do {
            _ = try SigningKey.load(environment: ["CAIRN_SIGNING_KEY": "s3cret-passphrase"], file: file) { _ in }
        } catch let error as CairnError {
            #expect(!error.message.contains("s3cret"), "the key is never quoted: \(error.message)")
        }
    }
}
