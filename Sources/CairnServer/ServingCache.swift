import CairnCore
import CairnStore
import CairnTraining
import Foundation

/// The models each target serves, loaded (and verified) before they are swapped in, so a
/// request sees either the old routes with their models or the new ones, never a mix.
public actor ServingCache {
    /// A target's live routes with their verified, loaded models.
    public struct Served: Sendable {
        public var routes: [LiveRoute]
        /// "model@version" → model.
        public var models: [String: RecommenderModel]
    }

    let db: RegistryDatabase
    let loader: ModelLoader
    private var targets: [String: Served] = [:]
    private var problems: [String: String] = [:]

    public init(db: RegistryDatabase, loader: ModelLoader) {
        self.db = db
        self.loader = loader
    }

    static func key(_ route: LiveRoute) -> String { "\(route.model)@\(route.version)" }

    /// Brings the cache in line with the observed targets.
    public func refresh(_ observed: [String: ObservedTarget]) async {
        for (name, target) in observed {
            guard target.assigned, !target.routes.isEmpty else {
                targets[name] = nil
                continue
            }
            if targets[name]?.routes == target.routes { continue }
            var models: [String: RecommenderModel] = [:]
            do {
                for route in target.routes {
                    if let existing = targets.values.lazy.compactMap({ $0.models[Self.key(route)] }).first {
                        models[Self.key(route)] = existing
                        continue
                    }
                    let db = self.db, loader = self.loader
                    models[Self.key(route)] = try await blocking {
                        guard let version = try db.versions(of: route.model)?.first(where: { $0.number == route.version }) else {
                            throw CairnError("\(route.model) v\(route.version) does not exist")
                        }
                        return try loader.load(version)
                    }
                }
                // The swap: one assignment of a complete entry.
                targets[name] = Served(routes: target.routes, models: models)
                problems[name] = nil
            } catch {
                // Keep serving what was loaded before; say why the new routes are not served yet.
                problems[name] = "\(error)"
            }
        }
        for name in targets.keys where observed[name] == nil { targets[name] = nil }
    }

    public func served(_ target: String) -> (Served?, String?) { (targets[target], problems[target]) }
}
