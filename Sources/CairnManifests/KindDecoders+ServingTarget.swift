import CairnCore
import CairnYAML

extension KindDecoders {
    static func servingTarget(_ spec: Fields, _ metadata: ManifestMetadata?, _ r: NodeReader) -> DecodedManifest? {
        var spec = spec
        let tenant = spec.required("tenant", hint: "name the tenant this target serves").flatMap { r.name($0, "spec.tenant") }
        let surface = spec.required("surface", hint: "name the surface (homepage, search, …)").flatMap { r.name($0, "spec.surface") }
        var routes: [ServingTarget.Route]?
        if let node = spec.required("routes", hint: "add `routes: [{model: NAME, version: N}]`") {
            routes = decodeRoutes(node, "spec.routes", shadow: false, r)
            if let items = routes, items.isEmpty {
                r.error(node, "spec.routes is empty", hint: "route traffic to at least one model; delete the target to unassign it")
                routes = nil
            }
        }
        var shadow: [ServingTarget.Route]? = []
        if let node = spec.optional("shadow") {
            shadow = decodeRoutes(node, "spec.shadow", shadow: true, r)
        }
        let guardNode = spec.optional("rollbackGuard")
        let rollbackGuard = guardNode.flatMap { decodeRollbackGuard($0, r) }
        spec.finish()
        if let routes, let shadow {
            var seen: [ServingTarget.RouteSubject: String] = [:]
            for (i, route) in routes.enumerated() {
                let path = "spec.routes[\(i)]"
                if let first = seen[route.subject] {
                    r.report(.error("\(path) routes to \(route.subject) again (also \(first))", at: route.source,
                                                address: r.address, hint: "merge the two routes into one"))
                }
                seen[route.subject] = path
            }
            for (i, route) in shadow.enumerated() {
                let path = "spec.shadow[\(i)]"
                if let first = seen[route.subject] {
                    r.report(.error("\(path) shadows \(route.subject), which \(first) already names", at: route.source,
                                                address: r.address, hint: "a model is either served or shadowed on one target"))
                }
                seen[route.subject] = path
            }
            let total = routes.reduce(0) { $0 + $1.weight }
            if total != 100, let node = spec.optional("routes") {
                r.error(node, "spec.routes weights add up to \(total), not 100", hint: "make the route weights sum to 100")
            }
        }
        guard let metadata, let tenant, let surface, let routes, let shadow, guardNode == nil || rollbackGuard != nil,
              !r.diagnostics.hasErrors else { return nil }
        return .servingTarget(ServingTarget(metadata: metadata, tenant: tenant, surface: surface, routes: routes, shadow: shadow,
                                            rollbackGuard: rollbackGuard))
    }

    static func decodeRollbackGuard(_ node: YAMLNode, _ r: NodeReader) -> RollbackGuard? {
        let path = "spec.rollbackGuard"
        guard var f = r.mapping(node, path) else { return nil }
        let requestsNode = f.required("minRequests", hint: "give how many requests each compared version must have served before the guard judges")
        let requests = requestsNode.flatMap { r.int($0, "\(path).minRequests") }
        let drop = bounded(f.optional("maxRewardDrop"), "\(path).maxRewardDrop", 0...1_000, r)
        let latency = bounded(f.optional("maxLatencyP95Ms"), "\(path).maxLatencyP95Ms", 0.001...600_000, r)
        f.finish()
        guard let requests, let requestsNode, drop.ok, latency.ok else { return nil }
        if requests < 1 {
            r.error(requestsNode, "\(path).minRequests is \(requests)", hint: "give 1 or more")
            return nil
        }
        if drop.value == nil, latency.value == nil {
            r.error(node, "\(path) has no bound", hint: "add `maxRewardDrop:` (reward per request from feedback) or `maxLatencyP95Ms:`")
            return nil
        }
        return RollbackGuard(minRequests: requests, maxRewardDrop: drop.value, maxLatencyP95Ms: latency.value)
    }

    static func decodeRoutes(_ node: YAMLNode, _ path: String, shadow: Bool, _ r: NodeReader) -> [ServingTarget.Route]? {
        guard let items = r.list(node, path) else { return nil }
        let routes = items.enumerated().map { decodeRoute($1, "\(path)[\($0)]", shadow: shadow, single: items.count == 1, r) }
        return routes.contains(where: { $0 == nil }) ? nil : routes.compactMap { $0 }
    }

    static func decodeRoute(_ node: YAMLNode, _ path: String, shadow: Bool, single: Bool, _ r: NodeReader) -> ServingTarget.Route? {
        guard var f = r.mapping(node, path) else { return nil }
        let modelNode = f.optional("model")
        let familyNode = f.optional("family")
        let model = modelNode.flatMap { r.name($0, "\(path).model") }
        let family = familyNode.flatMap { r.name($0, "\(path).family") }
        let versionNode = f.required("version", hint: "add `version:` with a number, latest-approved or champion")
        var version: ServingTarget.VersionSelector?
        if let v = versionNode {
            switch v.scalarValue {
            case let .int(n)?:
                if n >= 1 { version = .number(n) } else { r.error(v, "\(path).version is \(n); version numbers start at 1") }
            case .string("latest-approved")?: version = .latestApproved
            case .string("champion")?: version = .champion
            default:
                r.error(v, "\(path).version must be a version number, latest-approved or champion; found \(r.describe(v))")
            }
        }
        var weight: Int? = single || shadow ? 100 : nil
        if shadow {
            // Shadows are never served, so a weight would mean nothing.
            _ = f.optional("weight").map { r.error($0, "\(path).weight is not used on a shadow", hint: "remove it; shadows get no traffic") }
        } else if let w = f.optional("weight") {
            weight = r.int(w, "\(path).weight")
            if let v = weight, !(0...100).contains(v) {
                r.error(w, "\(path).weight is \(v), outside 0…100", hint: "give the percent of traffic for this route")
                weight = nil
            }
        } else if !single {
            r.error(node, "\(path).weight is missing", hint: "with several routes, each needs a weight; the weights sum to 100")
        }
        f.finish()

        let subject: ServingTarget.RouteSubject?
        switch (modelNode, familyNode) {
        case (_?, _?):
            r.error(node, "\(path) has both model and family", hint: "use `model:` for a model, or `family:` with `version: champion`")
            return nil
        case (nil, nil):
            r.error(node, "\(path) names no model", hint: "add `model: NAME` (or `family: NAME` with `version: champion`)")
            return nil
        case (_?, nil): subject = model.map { .model($0) }
        case (nil, _?): subject = family.map { .family($0) }
        }
        if case .family? = subject, let version, version != .champion, let versionNode {
            r.error(versionNode, "\(path) names a family, so its version must be champion", hint: "set `version: champion`, or use `model:`")
            return nil
        }
        if case .model? = subject, version == .champion, let versionNode {
            r.error(versionNode, "\(path).version champion needs `family:` instead of `model:`",
                    hint: "write `family: NAME, version: champion`, or give a version number")
            return nil
        }
        guard let subject, let version, let weight else { return nil }
        return ServingTarget.Route(subject: subject, version: version, weight: weight, source: r.location(node))
    }
}
