import CairnCore
import CairnYAML

extension KindDecoders {
    /// `spec.tuning`: `{metric, goal, trials, strategy, refit, space: {param: [values]}}`. The metric
    /// must be one the evaluation reports; a builtin trainer's parameters are checked as its
    /// `params` are (every value of the space must be one it accepts).
    static func decodeTuning(_ node: YAMLNode, trainer: Template.Trainer?, evaluation: Template.Evaluation?, _ r: NodeReader) -> Tuning? {
        guard var f = r.mapping(node, "spec.tuning") else { return nil }
        let before = r.errorCount
        let metricNode = f.required("metric", hint: "name the evaluation metric to optimise, such as ndcg@10")
        let metric = metricNode.flatMap { r.nonEmptyString($0, "spec.tuning.metric") }
        let goal = f.optional("goal").flatMap { r.choice($0, "spec.tuning.goal", Tuning.Goal.self) } ?? .maximize
        let trialsNode = f.required("trials", hint: "give the budget: how many configurations to try (1…\(Tuning.maxTrials))")
        let trials = trialsNode.flatMap { r.int($0, "spec.tuning.trials") }
        let strategy = f.optional("strategy").flatMap { r.choice($0, "spec.tuning.strategy", Tuning.Strategy.self) } ?? .grid
        let refit = f.optional("refit").flatMap { r.bool($0, "spec.tuning.refit") } ?? true
        let spaceNode = f.required("space", hint: "list the values to try per parameter, such as `space: {neighbors: [20, 50, 100]}`")
        var space: [String: [JSONValue]] = [:]
        if let spaceNode, let s = r.mapping(spaceNode, "spec.tuning.space") {
            for pair in s.pairs {
                guard case let .scalar(key, _) = pair.key.content else { continue }
                let valueNode = pair.value
                let path = "spec.tuning.space.\(key)"
                guard let items = r.list(valueNode, path) else { continue }
                if items.isEmpty { r.error(valueNode, "\(path) is empty", hint: "list at least one value to try") }
                var values: [JSONValue] = []
                for (i, item) in items.enumerated() {
                    guard let v = r.json(item, "\(path)[\(i)]") else { continue }
                    if values.contains(v) { r.error(item, "\(path) lists \(v.canonicalText) twice", hint: "remove the repeated value") }
                    values.append(v)
                }
                space[key] = values
            }
            if space.isEmpty { r.error(spaceNode, "spec.tuning.space names no parameter", hint: "add one, such as `neighbors: [20, 50, 100]`") }
        }
        f.finish()
        if let trials, let trialsNode, !(1...Tuning.maxTrials).contains(trials) {
            r.error(trialsNode, "spec.tuning.trials is \(trials), outside 1…\(Tuning.maxTrials)", hint: "each trial trains once on the training split; keep the budget small")
        }
        if let metric, let metricNode, let evaluation, !evaluation.metrics.contains(metric) {
            r.error(metricNode, "spec.tuning.metric '\(metric)' is not one of the evaluation's metrics (\(evaluation.metrics.joined(separator: ", ")))",
                    hint: "add it to spec.evaluation.metrics, or tune on one of them")
        }
        let tuning = Tuning(metric: metric ?? "", goal: goal, trials: trials ?? 1, strategy: strategy, space: space, refit: refit)
        if let spaceNode, tuning.combinations > Tuning.maxCombinations {
            r.error(spaceNode, "spec.tuning.space has \(tuning.combinations) combinations, more than \(Tuning.maxCombinations)", hint: "list fewer values")
        }
        if case let .builtin(algorithm, _)? = trainer, let spaceNode {
            // Every value must be one the trainer's own `params` would accept.
            let accepted = Set(algorithm == .itemKNN ? ["neighbors", "shrinkage"] : [])
            for key in space.keys.sorted() where !accepted.contains(key) {
                r.error(spaceNode, "spec.tuning.space.\(key): the builtin \(algorithm.rawValue) trainer has no parameter '\(key)'",
                        hint: accepted.isEmpty ? "popularity has no parameters to tune; use item-knn, or remove spec.tuning"
                            : "tune \(accepted.sorted().joined(separator: " or "))")
            }
            for (key, values) in space where accepted.contains(key) {
                for v in values {
                    let ok: Bool
                    switch (key, v) {
                    case let ("neighbors", .int(n)): ok = (1...1000).contains(n)
                    case let ("shrinkage", .int(n)): ok = (0...10000).contains(n)
                    case let ("shrinkage", .double(d)): ok = d >= 0 && d <= 10000
                    default: ok = false
                    }
                    if !ok {
                        r.error(spaceNode, "spec.tuning.space.\(key): \(v.canonicalText) is not a value the builtin trainer accepts",
                                hint: key == "neighbors" ? "neighbors are whole numbers 1…1000" : "shrinkage is a number 0…10000")
                    }
                }
            }
        }
        return r.errorCount == before && metric != nil && trials != nil && !space.isEmpty ? tuning : nil
    }
}
