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
        /// The shadows whose models loaded (a shadow that does not load is left out, never
        /// holding up what is served).
        public var shadows: [LiveRoute]
        /// "model@version" → model, for routes and shadows.
        public var models: [String: RecommenderModel]
    }

    let db: RegistryDatabase
    let loader: ModelLoader
    private var targets: [String: Served] = [:]
    private var problems: [String: String] = [:]
    /// The shadows each target declared when its entry was last built.
    private var declaredShadows: [String: [LiveRoute]] = [:]

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
            if targets[name]?.routes == target.routes, declaredShadows[name] == target.shadow { continue }
            var models: [String: RecommenderModel] = [:]
            do {
                for route in target.routes {
                    models[Self.key(route)] = try await load(route)
                }
                var shadows: [LiveRoute] = []
                var shadowProblems: [String] = []
                for shadow in target.shadow {
                    do {
                        models[Self.key(shadow)] = try await load(shadow)
                        shadows.append(shadow)
                    } catch {
                        shadowProblems.append("shadow \(shadow.model) v\(shadow.version): \(error)")
                    }
                }
                // The swap: one assignment of a complete entry.
                targets[name] = Served(routes: target.routes, shadows: shadows, models: models)
                declaredShadows[name] = target.shadow
                problems[name] = shadowProblems.isEmpty ? nil : shadowProblems.joined(separator: "; ")
            } catch {
                // Keep serving what was loaded before; say why the new routes are not served yet.
                problems[name] = "\(error)"
            }
        }
        for name in targets.keys where observed[name] == nil {
            targets[name] = nil
            declaredShadows[name] = nil
        }
    }

    /// A version's model: one already loaded for any target, or read and verified now.
    private func load(_ route: LiveRoute) async throws -> RecommenderModel {
        if let existing = targets.values.lazy.compactMap({ $0.models[Self.key(route)] }).first { return existing }
        let db = self.db, loader = self.loader
        return try await blocking {
            guard let version = try db.versions(of: route.model)?.first(where: { $0.number == route.version }) else {
                throw CairnError("\(route.model) v\(route.version) does not exist")
            }
            return try loader.load(version)
        }
    }

    /// A target's entry, and why it (or one of its shadows) is not what the registry says.
    public func served(_ target: String) -> (Served?, String?) { (targets[target], problems[target]) }
}
