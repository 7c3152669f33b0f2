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
        let itemsNode = spec.optional("items")
        let items = itemsNode.flatMap { node -> String? in
            guard var f = r.mapping(node, "spec.items") else { return nil }
            let pathNode = f.required("path", hint: "give the item CSV's path (item_id,title,category) relative to the manifest root")
            let path = pathNode.flatMap { r.nonEmptyString($0, "spec.items.path") }
            f.finish()
            if let path, let pathNode, path.hasPrefix("/") {
                r.error(pathNode, "spec.items.path '\(path)' is absolute", hint: "give a path relative to the manifest root, inside the repository")
                return nil
            }
            return path
        }
        let tuningNode = spec.optional("tuning")
        let tuning = tuningNode.flatMap { decodeTuning($0, trainer: trainer, evaluation: evaluation, r) }
        spec.finish()
        guard let metadata, let events, let weights, let dataset, let trainer, let evaluation, itemsNode == nil || items != nil,
              tuningNode == nil || tuning != nil else { return nil }
        return .template(Template(metadata: metadata, displayName: displayName, events: events, outcomeWeights: weights,
                                  dataset: dataset, trainer: trainer, evaluation: evaluation, items: items, tuning: tuning))
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
        enum TrainerKind: String, CaseIterable { case builtin, exec, slurm }
        let kind = f.required("kind", hint: "add `kind: builtin`, `kind: exec` or `kind: slurm`").flatMap { r.choice($0, "spec.trainer.kind", TrainerKind.self) }
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
            let command = f.required("command", hint: "add `command: [python3, train/train.py]`").flatMap { decodeCommand($0, r) }
            let timeout = f.optional("timeout").flatMap { r.duration($0, "spec.trainer.timeout") }
            let env = decodeTrainerEnv(f.optional("env"), r)
            let params = decodeTrainerParams(f.optional("params"), r)
            if let command, let env, let params {
                result = .exec(command: command, timeout: timeout, env: env, params: params)
            } else {
                result = nil
            }
        case .slurm:
            result = decodeSlurmJob(node, &f, r).map { .slurm(job: $0) }
        }
        f.finish()
        return result
    }

    /// `command: [program, args…]` of an exec or Slurm trainer.
    static func decodeCommand(_ node: YAMLNode, _ r: NodeReader) -> [String]? {
        guard let items = r.list(node, "spec.trainer.command") else { return nil }
        if items.isEmpty {
            r.error(node, "spec.trainer.command is empty", hint: "give the program and its arguments")
            return nil
        }
        let parts = items.enumerated().map { r.nonEmptyString($1, "spec.trainer.command[\($0)]") }
        return parts.contains(where: { $0 == nil }) ? nil : parts.compactMap { $0 }
    }

    /// `env:` of an exec or Slurm trainer: variable names, none of Cairn's own.
    static func decodeTrainerEnv(_ envNode: YAMLNode?, slurm: Bool = false, _ r: NodeReader) -> [String: String]? {
        guard let envNode else { return [:] }
        var env = r.stringMap(envNode, "spec.trainer.env")
        if case let .mapping(pairs) = envNode.content {
            for pair in pairs {
                guard case let .scalar(k, _) = pair.key.content else { continue }
                if !Patterns.isEnvName(k) {
                    r.error(pair.key, "spec.trainer.env: '\(k)' is not a variable name", hint: "use letters, digits and '_', not starting with a digit")
                    env = nil
                } else if k.hasPrefix("CAIRN_") {
                    r.error(pair.key, "spec.trainer.env: '\(k)' is reserved", hint: "CAIRN_ variables are set by Cairn; choose another name")
                    env = nil
                } else if slurm, k.hasPrefix("SLURM_") || k.hasPrefix("SBATCH_") {
                    r.error(pair.key, "spec.trainer.env: '\(k)' is reserved",
                            hint: "SLURM_ and SBATCH_ variables change how sbatch submits the job; use the trainer's fields instead")
                    env = nil
                }
            }
        }
        return env
    }

    /// Free-form `params:` of an exec or Slurm trainer.
    static func decodeTrainerParams(_ p: YAMLNode?, _ r: NodeReader) -> [String: JSONValue]? {
        guard let p else { return [:] }
        if case .mapping = p.content, case let .object(o)? = r.json(p, "spec.trainer.params") {
            return o
        }
        r.error(p, "spec.trainer.params must be a mapping, found \(r.describe(p))")
        return nil
    }

    /// `trainer: {kind: slurm, …}`.
    static func decodeSlurmJob(_ node: YAMLNode, _ f: inout Fields, _ r: NodeReader) -> Template.SlurmJob? {
        let before = r.errorCount
        let commandNode = f.optional("command"), scriptNode = f.optional("script")
        var job = Template.SlurmJob()
        switch (commandNode, scriptNode) {
        case let (c?, nil):
            job.command = decodeCommand(c, r)
        case let (nil, s?):
            if let path = r.nonEmptyString(s, "spec.trainer.script") {
                if path.hasPrefix("/") || path.split(separator: "/").contains("..") {
                    r.error(s, "spec.trainer.script '\(path)' leaves the repository",
                            hint: "give a path relative to the manifest folder, inside the repository, without '..'")
                } else {
                    job.script = path
                }
            }
        case (_?, _?):
            r.error(node, "spec.trainer has both command and script", hint: "keep one of them")
        case (nil, nil):
            r.error(node, "spec.trainer needs `command: [program, args…]` or `script: path/in/repo.sh`",
                    hint: "add `command: [python3, train/train.py]`")
        }
        for key in ["partition", "account"] {
            guard let n = f.optional(key), let v = r.nonEmptyString(n, "spec.trainer.\(key)") else { continue }
            guard v.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-.,".contains($0)) }) else {
                r.error(n, "spec.trainer.\(key) '\(v)' is not a Slurm \(key) name", hint: "use letters, digits, '_', '-', '.' (and ',' between several)")
                continue
            }
            if key == "partition" { job.partition = v } else { job.account = v }
        }
        job.timeout = f.optional("timeout").flatMap { r.duration($0, "spec.trainer.timeout") }
        if let resources = f.optional("resources"), var rf = r.mapping(resources, "spec.trainer.resources") {
            func count(_ key: String, _ range: ClosedRange<Int>) -> Int? {
                guard let n = rf.optional(key), let v = r.int(n, "spec.trainer.resources.\(key)") else { return nil }
                guard range.contains(v) else {
                    r.error(n, "spec.trainer.resources.\(key) is \(v), outside \(range.lowerBound)…\(range.upperBound)")
                    return nil
                }
                return v
            }
            job.gpus = count("gpus", 0...1024)
            job.cpus = count("cpus", 1...100_000)
            if let n = rf.optional("memory"), let v = r.nonEmptyString(n, "spec.trainer.resources.memory") {
                if Self.isSlurmMemory(v) {
                    job.memory = v
                } else {
                    r.error(n, "spec.trainer.resources.memory '\(v)' is not a size", hint: "write a number and K, M, G or T: 16G, 512M")
                }
            }
            rf.finish()
        }
        if let optionsNode = f.optional("options"), r.mapping(optionsNode, "spec.trainer.options") != nil {
            if case let .mapping(pairs) = optionsNode.content {
                for pair in pairs {
                    guard case let .scalar(key, _) = pair.key.content else { continue }
                    let path = "spec.trainer.options.\(key)"
                    let name = key.hasPrefix("--") ? String(key.dropFirst(2)) : key
                    if let why = Template.SlurmJob.ownedOptions[name] {
                        r.error(pair.key, "\(path): sbatch --\(name) cannot be set here", hint: why)
                        continue
                    }
                    guard let kind = Template.SlurmJob.allowedOptions[name] else {
                        let allowed = Template.SlurmJob.allowedOptions.keys.sorted()
                        var hint = "the options a template may add are: \(allowed.joined(separator: ", "))"
                        if let guess = closest(to: name, in: allowed) { hint = "did you mean '\(guess)'? " + hint }
                        r.error(pair.key, "\(path): '\(name)' is not an sbatch option Cairn passes", hint: hint)
                        continue
                    }
                    if key.hasPrefix("--") {
                        r.error(pair.key, "\(path): write the option without '--'", hint: "\(name): …")
                        continue
                    }
                    switch kind {
                    case .flag:
                        if case let .bool(b)? = pair.value.scalarValue {
                            if b { job.options[name] = "true" }
                        } else {
                            r.error(pair.value, "\(path) must be true or false, found \(r.describe(pair.value))")
                        }
                    case .integer:
                        if let v = r.int(pair.value, path) { job.options[name] = String(v) }
                    case .text:
                        let text: String?
                        switch pair.value.scalarValue {
                        case let .int(i)?: text = String(i)
                        default: text = r.nonEmptyString(pair.value, path)
                        }
                        guard let text else { continue }
                        if text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                            r.error(pair.value, "\(path) holds a control character", hint: "give a single-line value")
                        } else {
                            job.options[name] = text
                        }
                    }
                }
            }
        }
        let env = decodeTrainerEnv(f.optional("env"), slurm: true, r)
        let params = decodeTrainerParams(f.optional("params"), r)
        guard r.errorCount == before, let env, let params, job.command != nil || job.script != nil else { return nil }
        job.env = env
        job.params = params
        return job
    }

    /// `--mem` sizes: a whole number, optionally K, M, G or T.
    static func isSlurmMemory(_ s: String) -> Bool {
        var digits = Substring(s)
        if let last = digits.last, "KMGT".contains(last) { digits = digits.dropLast() }
        return !digits.isEmpty && digits.count <= 12 && digits.allSatisfy(\.isASCII) && digits.allSatisfy(\.isNumber) && digits.first != "0"
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
