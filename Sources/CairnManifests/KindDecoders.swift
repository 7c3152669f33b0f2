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

    static func decodeDataset(_ node: YAMLNode, _ r: NodeReader) -> Template.Dataset? {
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

    static func decodeTrainer(_ node: YAMLNode, _ r: NodeReader) -> Template.Trainer? {
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

    static func decodeBuiltinParams(_ node: YAMLNode, _ algorithm: Template.BuiltinAlgorithm, _ r: NodeReader) -> [String: JSONValue]? {
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

    static func decodeEvaluation(_ node: YAMLNode, builtin: Bool, _ r: NodeReader) -> Template.Evaluation? {
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
