import CairnCore
import Foundation

/// Picks a target's route for a request: a stable hash of the key (user id) into 0..<100,
/// walked over the routes' cumulative weights. The same user always gets the same route.
public enum RouteChoice {
    public static func pick(_ routes: [LiveRoute], key: String) -> LiveRoute {
        let bucket = Int(fnv1a(key) % 100)
        var total = 0
        for route in routes where route.weight > 0 {
            total += route.weight
            if bucket < total { return route }
        }
        return routes.last { $0.weight > 0 } ?? routes[0]
    }
}

/// Loads a version's builtin model from its artifact, verifying it first.
public struct ModelLoader: Sendable {
    public let store: ArtifactStore
    public let key: SigningKey

    public init(store: ArtifactStore, key: SigningKey) {
        self.store = store
        self.key = key
    }

    public func load(_ version: ModelVersion) throws -> RecommenderModel {
        guard let hash = version.artifactHash, let signature = version.artifactSignature else {
            throw CairnError("\(version.model) v\(version.number) has no artifact")
        }
        try store.verify(hash: hash, signature: signature,
                         identity: VersionIdentity(model: version.model, version: version.number, fingerprint: version.fingerprint), key: key)
        let file = store.folder(hash).appendingPathComponent("model.json")
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw CairnError("\(version.model) v\(version.number) was trained by an exec trainer; Cairn scores builtin models only (serve its artifact with your own runtime)")
        }
        let model = try JSONDecoder().decode(RecommenderModel.self, from: data)
        guard model.format == RecommenderModel.formatName else { throw CairnError("\(file.path) has format \(model.format), not \(RecommenderModel.formatName)") }
        return model
    }
}

/// A recommendation response: which route answered, and the scored items (the same shape
/// from `cairn recommend --format json` and the HTTP API).
public struct Recommendation: Encodable, Sendable {
    /// One recommended item and its score.
    public struct Scored: Encodable, Sendable {
        public var item: String
        public var score: Double
    }

    /// The request's id in the decision traces (`cairn serve` only): name it in feedback.
    public var requestId: String?
    public var target: String
    public var model: String
    public var version: Int
    public var user: String?
    public var items: [Scored]

    public init(target: String, route: LiveRoute, user: String?, scored: [(item: String, score: Double)]) {
        self.target = target
        model = route.model
        version = route.version
        self.user = user
        items = scored.map { Scored(item: $0.item, score: ($0.score * 1e6).rounded() / 1e6) }
    }
}
