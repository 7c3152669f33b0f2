import CairnCore
import CairnYAML

/// Spec decoders, one per kind. Each reads every field it knows, reports every problem,
/// and returns a manifest only when the spec is whole.
enum KindDecoders {
    static func outcomeWeights(_ spec: Fields, _ metadata: ManifestMetadata?, _ r: NodeReader) -> DecodedManifest? {
        var spec = spec
        var weights: [String: Double]?
        if let node = spec.required("weights", hint: "add `weights: {event: number, …}`") {
            if case let .mapping(pairs) = node.content {
                var out: [String: Double] = [:]
                for pair in pairs {
                    guard case let .scalar(event, _) = pair.key.content else { continue }
                    let path = "spec.weights.\(event)"
                    if !Patterns.isEventName(event) {
                        r.error(pair.key, "\(path): '\(event)' is not an event name", hint: Patterns.eventHint)
                        continue
                    }
                    guard let w = r.number(pair.value, path) else { continue }
                    guard (-10...10).contains(w) else {
                        r.error(pair.value, "\(path) is \(w), outside [-10, 10]", hint: "use a weight between -10 and 10")
                        continue
                    }
                    out[event] = w
                }
                if pairs.isEmpty {
                    r.error(node, "spec.weights is empty", hint: "give at least one event a positive weight")
                } else if !out.isEmpty, !out.values.contains(where: { $0 > 0 }) {
                    r.error(node, "spec.weights has no positive weight, so training would learn nothing or learn backwards",
                            hint: "give at least one event (such as a conversion) a weight above 0")
                }
                weights = out
            } else {
                r.error(node, "spec.weights must be a mapping of event to number, found \(r.describe(node))")
            }
        }
        spec.finish()
        guard let metadata, let weights else { return nil }
        return .outcomeWeights(OutcomeWeights(metadata: metadata, weights: weights))
    }

    static func template(_ spec: Fields, _ metadata: ManifestMetadata?, _ r: NodeReader) -> DecodedManifest? {
        var spec = spec
        let displayName = spec.optional("displayName").flatMap { r.nonEmptyString($0, "spec.displayName") }
        let events = spec.required("events", hint: "add `events: [click, convert, …]`").flatMap { node in
            r.stringList(node, "spec.events") { item, s in
                guard Patterns.isEventName(s) else {
                    r.error(item, "spec.events: '\(s)' is not an event name", hint: Patterns.eventHint)
                    return false
                }
                return true
            }
        }
        if let events, events.isEmpty, let node = spec.optional("events") {
            r.error(node, "spec.events is empty", hint: "list the event types this template learns from")
        }
        let weights = spec.required("outcomeWeights", hint: "name the OutcomeWeights this template uses")
            .flatMap { r.name($0, "spec.outcomeWeights") }
        let dataset = spec.required("dataset", hint: "add `dataset: {path: data/interactions.csv}`").flatMap { decodeDataset($0, r) }
        let trainer = spec.required("trainer", hint: "add `trainer: {kind: builtin, algorithm: popularity}`").flatMap { decodeTrainer($0, r) }
        // Known from the raw text, so metric names are checked even when the trainer has errors.
        let builtin = spec.optional("trainer").flatMap { node -> Bool? in
            guard case let .mapping(pairs) = node.content else { return nil }
            return pairs.contains { if case .scalar("kind", _) = $0.key.content, case .string("builtin")? = $0.value.scalarValue { true } else { false } }
        } ?? false
        let evaluation = spec.required("evaluation", hint: "add `evaluation: {metrics: [ndcg@10]}`").flatMap { decodeEvaluation($0, builtin: builtin, r) }
        spec.finish()
        guard let metadata, let events, let weights, let dataset, let trainer, let evaluation else { return nil }
        return .template(Template(metadata: metadata, displayName: displayName, events: events, outcomeWeights: weights,
                                  dataset: dataset, trainer: trainer, evaluation: evaluation))
    }

    private static func decodeDataset(_ node: YAMLNode, _ r: NodeReader) -> Template.Dataset? {
        guard var f = r.mapping(node, "spec.dataset") else { return nil }
        let path = f.optional("path")
        let uri = f.optional("uri")
        f.finish()
        switch (path, uri) {
        case let (p?, nil):
            guard let s = r.nonEmptyString(p, "spec.dataset.path") else { return nil }
            if s.hasPrefix("/") {
                r.error(p, "spec.dataset.path '\(s)' is absolute", hint: "give a path relative to the manifest root, inside the repository")
                return nil
            }
            return .path(s)
        case let (nil, u?):
            guard let s = r.nonEmptyString(u, "spec.dataset.uri") else { return nil }
            guard s.hasPrefix("file:///") else {
                r.error(u, "spec.dataset.uri '\(s)' is not a file:/// URI",
                        hint: "use an absolute file:///… URI, or keep the file in the repository and use `path:`")
                return nil
            }
            return .uri(s)
        case (_?, _?):
            r.error(node, "spec.dataset has both path and uri", hint: "keep one of them")
        case (nil, nil):
            r.error(node, "spec.dataset needs `path:` (a file in the repository) or `uri:` (file:/// outside it)")
        }
        return nil
    }

    private static func decodeTrainer(_ node: YAMLNode, _ r: NodeReader) -> Template.Trainer? {
        guard var f = r.mapping(node, "spec.trainer") else { return nil }
        enum TrainerKind: String, CaseIterable { case builtin, exec }
        let kind = f.required("kind", hint: "add `kind: builtin` or `kind: exec`").flatMap { r.choice($0, "spec.trainer.kind", TrainerKind.self) }
        guard let kind else {
            return nil
        }
        let result: Template.Trainer?
        switch kind {
        case .builtin:
            let algorithm = f.required("algorithm", hint: "add `algorithm: popularity` or `algorithm: item-knn`")
                .flatMap { r.choice($0, "spec.trainer.algorithm", Template.BuiltinAlgorithm.self) }
            let paramsNode = f.optional("params")
            var params: [String: JSONValue]? = [:]
            if let paramsNode, let algorithm {
                params = decodeBuiltinParams(paramsNode, algorithm, r)
            }
            result = algorithm.flatMap { a in params.map { .builtin(algorithm: a, params: $0) } }
        case .exec:
            let command = f.required("command", hint: "add `command: [python3, train/train.py]`").flatMap { node -> [String]? in
                guard let items = r.list(node, "spec.trainer.command") else { return nil }
                if items.isEmpty {
                    r.error(node, "spec.trainer.command is empty", hint: "give the program and its arguments")
                    return nil
                }
                let parts = items.enumerated().map { r.nonEmptyString($1, "spec.trainer.command[\($0)]") }
                return parts.contains(where: { $0 == nil }) ? nil : parts.compactMap { $0 }
            }
            let timeout = f.optional("timeout").flatMap { r.duration($0, "spec.trainer.timeout") }
            var env: [String: String]? = [:]
            if let envNode = f.optional("env") {
                env = r.stringMap(envNode, "spec.trainer.env")
                if case let .mapping(pairs) = envNode.content {
                    for pair in pairs {
                        guard case let .scalar(k, _) = pair.key.content else { continue }
                        if !Patterns.isEnvName(k) {
                            r.error(pair.key, "spec.trainer.env: '\(k)' is not a variable name", hint: "use letters, digits and '_', not starting with a digit")
                            env = nil
                        } else if k.hasPrefix("CAIRN_") {
                            r.error(pair.key, "spec.trainer.env: '\(k)' is reserved", hint: "CAIRN_ variables are set by Cairn; choose another name")
                            env = nil
                        }
                    }
                }
            }
            var params: [String: JSONValue]? = [:]
            if let p = f.optional("params") {
                if case .mapping = p.content, case let .object(o)? = r.json(p, "spec.trainer.params") {
                    params = o
                } else {
                    r.error(p, "spec.trainer.params must be a mapping, found \(r.describe(p))")
                    params = nil
                }
            }
            if let command, let env, let params {
                result = .exec(command: command, timeout: timeout, env: env, params: params)
            } else {
                result = nil
            }
        }
        f.finish()
        return result
    }

    private static func decodeBuiltinParams(_ node: YAMLNode, _ algorithm: Template.BuiltinAlgorithm, _ r: NodeReader) -> [String: JSONValue]? {
        guard var f = r.mapping(node, "spec.trainer.params") else { return nil }
        let before = r.errorCount
        var out: [String: JSONValue] = [:]
        switch algorithm {
        case .popularity:
            break
        case .itemKNN:
            if let n = f.optional("neighbors"), let v = r.int(n, "spec.trainer.params.neighbors") {
                if (1...1000).contains(v) {
                    out["neighbors"] = .int(v)
                } else {
                    r.error(n, "spec.trainer.params.neighbors is \(v), outside 1…1000", hint: "use a number of neighbours between 1 and 1000")
                }
            }
            if let s = f.optional("shrinkage"), let v = r.number(s, "spec.trainer.params.shrinkage") {
                if v >= 0, v <= 10000 {
                    out["shrinkage"] = v == v.rounded() ? .int(Int(v)) : .double(v)
                } else {
                    r.error(s, "spec.trainer.params.shrinkage is \(v), outside 0…10000", hint: "use a shrinkage between 0 and 10000")
                }
            }
        }
        f.finish()
        return r.errorCount == before ? out : nil
    }

    private static func decodeEvaluation(_ node: YAMLNode, builtin: Bool, _ r: NodeReader) -> Template.Evaluation? {
        guard var f = r.mapping(node, "spec.evaluation") else { return nil }
        var holdout: Double? = 0.2
        if let h = f.optional("holdout") {
            holdout = r.number(h, "spec.evaluation.holdout")
            if let v = holdout, !(v > 0 && v < 1) {
                r.error(h, "spec.evaluation.holdout is \(v); it must be above 0 and below 1", hint: "0.2 holds out a fifth of each user's events")
                holdout = nil
            }
        }
        var seed: Int? = 42
        if let s = f.optional("seed") {
            seed = r.int(s, "spec.evaluation.seed")
            if let v = seed, v < 0 {
                r.error(s, "spec.evaluation.seed is negative", hint: "use a whole number 0 or above")
                seed = nil
            }
        }
        let metrics = f.required("metrics", hint: "add `metrics: [ndcg@10, recall@20]`").flatMap { node in
            r.stringList(node, "spec.evaluation.metrics") { item, s in
                if builtin, !Patterns.isBuiltinMetric(s) {
                    r.error(item, "spec.evaluation.metrics: the builtin trainers do not compute '\(s)'",
                            hint: "use ndcg@K, recall@K, precision@K, coverage or coverage@K")
                    return false
                }
                if !Patterns.isMetricName(s) {
                    r.error(item, "spec.evaluation.metrics: '\(s)' is not a metric name",
                            hint: "use lower-case letters, digits and '_', optionally followed by @K (ndcg@10)")
                    return false
                }
                return true
            }
        }
        if let metrics, metrics.isEmpty, let node = f.optional("metrics") {
            r.error(node, "spec.evaluation.metrics is empty", hint: "list at least one metric, such as ndcg@10")
        }
        f.finish()
        guard let holdout, let seed, let metrics, !metrics.isEmpty else { return nil }
        return Template.Evaluation(holdout: holdout, metrics: metrics, seed: seed)
    }

    static func model(_ spec: Fields, _ metadata: ManifestMetadata?, _ r: NodeReader) -> DecodedManifest? {
        var spec = spec
        var ok = true
        func take<T>(_ value: T?, present: Bool) -> T? {
            if present, value == nil { ok = false }
            return value
        }
        let template = spec.required("template", hint: "name the Template this model is trained from")
            .flatMap { r.name($0, "spec.template") }
        let lifecycleNode = spec.optional("lifecycle")
        let lifecycle = take(lifecycleNode.flatMap { r.choice($0, "spec.lifecycle", Model.Lifecycle.self) }, present: lifecycleNode != nil) ?? .draft
        let familyNode = spec.optional("family")
        let family = take(familyNode.flatMap { r.name($0, "spec.family") }, present: familyNode != nil)
        let stageNode = spec.optional("stage")
        let stage = take(stageNode.flatMap { r.choice($0, "spec.stage", Model.Stage.self) }, present: stageNode != nil) ?? Model.Stage.none
        let labelNode = spec.optional("label")
        let label = take(labelNode.flatMap { r.nonEmptyString($0, "spec.label") }, present: labelNode != nil)
        let descriptionNode = spec.optional("description")
        let description = take(descriptionNode.flatMap { r.string($0, "spec.description") }, present: descriptionNode != nil)
        let traitsNode = spec.optional("traits")
        let traits = take(traitsNode.flatMap { node in
            r.stringList(node, "spec.traits") { item, s in
                guard Patterns.isTrait(s) else {
                    r.error(item, "spec.traits: '\(s)' is not a trait", hint: "use lower-case letters, digits, '-' and '_'")
                    return false
                }
                return true
            }
        }, present: traitsNode != nil) ?? []
        let learningNode = spec.optional("learning")
        let learning = take(learningNode.flatMap { decodeLearning($0, r) }, present: learningNode != nil) ?? Model.Learning()
        let tokenNode = spec.optional("retrainToken")
        let retrainToken = take(tokenNode.flatMap { r.nonEmptyString($0, "spec.retrainToken") }, present: tokenNode != nil)
        let approvalNode = spec.optional("approval")
        let approval = take(approvalNode.flatMap { decodeApproval($0, r) }, present: approvalNode != nil) ?? Model.Approval()
        let decisionsNode = spec.optional("decisions")
        let decisions = take(decisionsNode.flatMap { decodeDecisions($0, r) }, present: decisionsNode != nil) ?? Model.Decisions()
        spec.finish()

        if stage != .none {
            if lifecycle != .active, let node = stageNode {
                r.error(node, "spec.stage '\(stage.rawValue)' needs lifecycle: active (it is \(lifecycle.rawValue))",
                        hint: "set `lifecycle: active`, or `stage: none`")
                ok = false
            }
            if family == nil, let node = stageNode {
                r.error(node, "spec.stage '\(stage.rawValue)' needs a family", hint: "add `family:` naming the registry family")
                ok = false
            }
        }
        guard ok, let metadata, let template else { return nil }
        return .model(Model(metadata: metadata, template: template, lifecycle: lifecycle, family: family, stage: stage,
                            label: label, description: description, traits: traits, learning: learning,
                            retrainToken: retrainToken, approval: approval, decisions: decisions))
    }

    /// The shortest learning cadence accepted; anything faster would keep the queue full.
    static let minimumLearningInterval = 60

    private static func decodeLearning(_ node: YAMLNode, _ r: NodeReader) -> Model.Learning? {
        guard var f = r.mapping(node, "spec.learning") else { return nil }
        let modeNode = f.optional("mode")
        let mode = modeNode.flatMap { r.choice($0, "spec.learning.mode", Model.LearningMode.self) }
        let everyNode = f.optional("every")
        let every = everyNode.flatMap { r.duration($0, "spec.learning.every") }
        f.finish()
        if modeNode != nil, mode == nil { return nil }
        if everyNode != nil, every == nil { return nil }
        let m = mode ?? Model.LearningMode.none
        switch m {
        case .scheduled:
            guard let every else {
                r.error(node, "spec.learning.mode scheduled needs `every`", hint: "add `every: 24h` (how often to retrain)")
                return nil
            }
            if every.seconds < minimumLearningInterval, let everyNode {
                r.error(everyNode, "spec.learning.every is \(every); the shortest cadence is 1m", hint: "use 1m or more")
                return nil
            }
        case .none:
            if let everyNode {
                r.warning(everyNode, "spec.learning.every is ignored while mode is none", hint: "set `mode: scheduled`, or remove `every`")
            }
        }
        return Model.Learning(mode: m, every: every)
    }

    private static func decodeApproval(_ node: YAMLNode, _ r: NodeReader) -> Model.Approval? {
        guard var f = r.mapping(node, "spec.approval") else { return nil }
        let modeNode = f.optional("mode")
        let mode = modeNode.flatMap { r.choice($0, "spec.approval.mode", Model.ApprovalMode.self) }
        var gates: [Model.Gate]? = []
        if let gatesNode = f.optional("gates") {
            if let items = r.list(gatesNode, "spec.approval.gates") {
                let decoded = items.enumerated().map { decodeGate($1, "spec.approval.gates[\($0)]", r) }
                gates = decoded.contains(where: { $0 == nil }) ? nil : decoded.compactMap { $0 }
            } else {
                gates = nil
            }
        }
        f.finish()
        if modeNode != nil, mode == nil { return nil }
        guard let gates else { return nil }
        let m = mode ?? .manual
        if m == .gated, gates.isEmpty {
            r.error(node, "spec.approval.mode gated has no gates, so every version would be approved unseen",
                    hint: "add `gates:` such as [{metric: ndcg@10, min: 0.2}], or use mode: manual")
            return nil
        }
        return Model.Approval(mode: m, gates: gates)
    }

    private static func decodeGate(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> Model.Gate? {
        guard var f = r.mapping(node, path) else { return nil }
        let metric = f.required("metric", hint: "name the metric this gate checks").flatMap { r.nonEmptyString($0, "\(path).metric") }
        let minNode = f.optional("min"), maxNode = f.optional("max"), regressionNode = f.optional("maxRegression")
        let min = minNode.flatMap { r.number($0, "\(path).min") }
        let max = maxNode.flatMap { r.number($0, "\(path).max") }
        let regression = regressionNode.flatMap { r.number($0, "\(path).maxRegression") }
        f.finish()
        if (minNode != nil && min == nil) || (maxNode != nil && max == nil) || (regressionNode != nil && regression == nil) { return nil }
        if min == nil, max == nil, regression == nil {
            r.error(node, "\(path) has no bound", hint: "add `min:`, `max:` or `maxRegression:`")
            return nil
        }
        if let regression, regression < 0, let regressionNode {
            r.error(regressionNode, "\(path).maxRegression is negative", hint: "give the largest drop allowed, 0 or more")
            return nil
        }
        if let min, let max, min > max {
            r.error(node, "\(path) has min \(min) above max \(max)", hint: "no version could pass; fix the bounds")
            return nil
        }
        guard let metric else { return nil }
        return Model.Gate(metric: metric, min: min, max: max, maxRegression: regression)
    }

    private static func decodeDecisions(_ node: YAMLNode, _ r: NodeReader) -> Model.Decisions? {
        guard var f = r.mapping(node, "spec.decisions") else { return nil }
        func versions(_ key: String) -> ([Int]?, [Int: YAMLNode]) {
            guard let n = f.optional(key) else { return ([], [:]) }
            guard let items = r.list(n, "spec.decisions.\(key)") else { return (nil, [:]) }
            var out: [Int] = []
            var nodes: [Int: YAMLNode] = [:]
            var ok = true
            for (i, item) in items.enumerated() {
                guard let v = r.int(item, "spec.decisions.\(key)[\(i)]") else { ok = false; continue }
                if v < 1 {
                    r.error(item, "spec.decisions.\(key)[\(i)] is \(v); version numbers start at 1", hint: "list version numbers as `cairn versions MODEL` shows them")
                    ok = false
                } else if nodes[v] != nil {
                    r.error(item, "spec.decisions.\(key) lists version \(v) twice", hint: "remove the repeated entry")
                    ok = false
                } else {
                    out.append(v)
                    nodes[v] = item
                }
            }
            return (ok ? out : nil, nodes)
        }
        let (approve, approveNodes) = versions("approve")
        let (reject, _) = versions("reject")
        f.finish()
        guard let approve, let reject else { return nil }
        let both = Set(approve).intersection(reject).sorted()
        for v in both {
            r.error(approveNodes[v]!, "version \(v) is both approved and rejected", hint: "keep it in one of the two lists")
        }
        return both.isEmpty ? Model.Decisions(approve: approve, reject: reject) : nil
    }

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
        guard let metadata, let tenant, let surface, let routes, let shadow, !r.diagnostics.hasErrors else { return nil }
        return .servingTarget(ServingTarget(metadata: metadata, tenant: tenant, surface: surface, routes: routes, shadow: shadow))
    }

    private static func decodeRoutes(_ node: YAMLNode, _ path: String, shadow: Bool, _ r: NodeReader) -> [ServingTarget.Route]? {
        guard let items = r.list(node, path) else { return nil }
        let routes = items.enumerated().map { decodeRoute($1, "\(path)[\($0)]", shadow: shadow, single: items.count == 1, r) }
        return routes.contains(where: { $0 == nil }) ? nil : routes.compactMap { $0 }
    }

    private static func decodeRoute(_ node: YAMLNode, _ path: String, shadow: Bool, single: Bool, _ r: NodeReader) -> ServingTarget.Route? {
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

/// Name formats of fields that are not document names.
enum Patterns {
    static let eventHint = "use lower-case letters, digits and '_', starting with a letter (click, add_to_cart)"

    static func isEventName(_ s: String) -> Bool {
        guard let first = s.utf8.first, first >= 0x61, first <= 0x7a, s.utf8.count <= 63 else { return false }
        return s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }
    }

    static func isTrait(_ s: String) -> Bool {
        guard let first = s.utf8.first, (first >= 0x61 && first <= 0x7a) || (first >= 0x30 && first <= 0x39), s.utf8.count <= 63 else { return false }
        return s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f || $0 == 0x2d }
    }

    static func isEnvName(_ s: String) -> Bool {
        guard let first = s.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5f }
    }

    /// `name` or `name@K`: lower-case letters, digits and `_`, K from 1.
    static func isMetricName(_ s: String) -> Bool {
        let parts = s.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count <= 2, isEventName(String(parts[0])) else { return false }
        if parts.count == 2 {
            guard let k = Int(parts[1]), k >= 1, k <= 10000, !parts[1].hasPrefix("0") else { return false }
        }
        return true
    }

    /// What the builtin trainers compute: ndcg@K, recall@K, precision@K, coverage, coverage@K.
    static func isBuiltinMetric(_ s: String) -> Bool {
        guard isMetricName(s) else { return false }
        let parts = s.split(separator: "@")
        switch parts[0] {
        case "ndcg", "recall", "precision": return parts.count == 2
        case "coverage": return true
        default: return false
        }
    }
}
