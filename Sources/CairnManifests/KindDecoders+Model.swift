import CairnCore
import CairnYAML

extension KindDecoders {
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
        let labelsNode = spec.optional("versionLabels")
        let versionLabels = take(labelsNode.flatMap { decodeVersionLabels($0, r) }, present: labelsNode != nil)
        let tenantNode = spec.optional("tenant")
        let tenant = take(tenantNode.flatMap { r.name($0, "spec.tenant") }, present: tenantNode != nil)
        let discoverNode = spec.optional("discover")
        let discover = take(discoverNode.flatMap { r.bool($0, "spec.discover") }, present: discoverNode != nil) ?? false
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
                            retrainToken: retrainToken, approval: approval, decisions: decisions, versionLabels: versionLabels,
                            tenant: tenant, discover: discover))
    }

    /// The shortest learning cadence accepted; anything faster would keep the queue full.
    static let minimumLearningInterval = 60

    static func decodeLearning(_ node: YAMLNode, _ r: NodeReader) -> Model.Learning? {
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

    static func decodeApproval(_ node: YAMLNode, _ r: NodeReader) -> Model.Approval? {
        guard var f = r.mapping(node, "spec.approval") else { return nil }
        let modeNode = f.optional("mode")
        let mode = modeNode.flatMap { r.choice($0, "spec.approval.mode", Model.ApprovalMode.self) }
        var gates: [Model.Gate]? = []
        let evidenceNode = f.optional("shadowEvidence")
        let evidence = evidenceNode.flatMap { decodeShadowEvidence($0, "spec.approval.shadowEvidence", r) }
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
        if evidenceNode != nil, evidence == nil { return nil }
        guard let gates else { return nil }
        let m = mode ?? .manual
        if m == .gated, gates.isEmpty {
            r.error(node, "spec.approval.mode gated has no gates, so every version would be approved unseen",
                    hint: "add `gates:` such as [{metric: ndcg@10, min: 0.2}], or use mode: manual")
            return nil
        }
        return Model.Approval(mode: m, gates: gates, shadowEvidence: evidence)
    }

    static func decodeShadowEvidence(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> ShadowEvidenceRequirement? {
        guard var f = r.mapping(node, path) else { return nil }
        let requestsNode = f.required("minRequests", hint: "give how many traced requests the version must have answered as a shadow")
        let requests = requestsNode.flatMap { r.int($0, "\(path).minRequests") }
        let overlap = bounded(f.optional("minOverlap"), "\(path).minOverlap", 0...1, r)
        let rank = bounded(f.optional("minRankCorrelation"), "\(path).minRankCorrelation", -1...1, r)
        let latency = bounded(f.optional("maxLatencyP95Ms"), "\(path).maxLatencyP95Ms", 0.001...600_000, r)
        let stepNode = f.optional("requiredFor")
        let step = stepNode.flatMap { r.choice($0, "\(path).requiredFor", ShadowEvidenceRequirement.Step.self) }
        f.finish()
        guard let requests, let requestsNode, overlap.ok, rank.ok, latency.ok, stepNode == nil || step != nil else { return nil }
        if requests < 1 {
            r.error(requestsNode, "\(path).minRequests is \(requests)", hint: "give 1 or more (a few hundred traced requests make a mean worth reading)")
            return nil
        }
        return ShadowEvidenceRequirement(minRequests: requests, minOverlap: overlap.value, minRankCorrelation: rank.value,
                                         maxLatencyP95Ms: latency.value, requiredFor: step ?? .approval)
    }

    /// An optional number within `range`; `ok` is false when it is there and wrong (said).
    static func bounded(_ node: YAMLNode?, _ path: String, _ range: ClosedRange<Double>, _ r: NodeReader) -> (value: Double?, ok: Bool) {
        guard let node else { return (nil, true) }
        guard let value = r.number(node, path) else { return (nil, false) }
        guard range.contains(value) else {
            r.error(node, "\(path) is \(value), outside \(Describe.number(range.lowerBound))…\(Describe.number(range.upperBound))",
                    hint: "give a value within the range")
            return (nil, false)
        }
        return (value, true)
    }

    static func decodeGate(_ node: YAMLNode, _ path: String, _ r: NodeReader) -> Model.Gate? {
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

    /// Longest version label: it is a name in tables, not a text.
    static let maximumLabelLength = 100

    static func decodeVersionLabels(_ node: YAMLNode, _ r: NodeReader) -> [Model.VersionLabel]? {
        guard let items = r.list(node, "spec.versionLabels") else { return nil }
        var out: [Model.VersionLabel] = []
        var seen: Set<Int> = []
        var ok = true
        for (i, item) in items.enumerated() {
            let path = "spec.versionLabels[\(i)]"
            guard var f = r.mapping(item, path) else { ok = false; continue }
            let versionNode = f.required("version", hint: "give the version number as `cairn versions MODEL` shows it")
            let version = versionNode.flatMap { r.int($0, "\(path).version") }
            let labelNode = f.optional("label"), descriptionNode = f.optional("description")
            let label = labelNode.flatMap { r.nonEmptyString($0, "\(path).label") }
            let description = descriptionNode.flatMap { r.string($0, "\(path).description") }
            f.finish()
            if (labelNode != nil && label == nil) || (descriptionNode != nil && description == nil) { ok = false; continue }
            guard let version, let versionNode else { ok = false; continue }
            if version < 1 {
                r.error(versionNode, "\(path).version is \(version); version numbers start at 1", hint: "give the version number as `cairn versions MODEL` shows it")
                ok = false
                continue
            }
            if !seen.insert(version).inserted {
                r.error(versionNode, "spec.versionLabels lists version \(version) twice", hint: "keep one entry per version")
                ok = false
                continue
            }
            if label == nil, description == nil {
                r.error(item, "\(path) has neither label nor description", hint: "add `label:` or `description:`, or remove the entry")
                ok = false
                continue
            }
            if let label, let labelNode, label.unicodeScalars.count > maximumLabelLength || label.contains(where: \.isNewline) {
                r.error(labelNode, "\(path).label is not a one-line label of at most \(maximumLabelLength) characters",
                        hint: "keep the label short; put the rest in `description:`")
                ok = false
                continue
            }
            out.append(Model.VersionLabel(version: version, label: label, description: description))
        }
        return ok ? out : nil
    }

    static func decodeDecisions(_ node: YAMLNode, _ r: NodeReader) -> Model.Decisions? {
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
        let (reject, rejectNodes) = versions("reject")
        let (delete, deleteNodes) = versions("delete")
        f.finish()
        guard let approve, let reject, let delete else { return nil }
        let both = Set(approve).intersection(reject).sorted()
        for v in both {
            r.error(approveNodes[v]!, "version \(v) is both approved and rejected", hint: "keep it in one of the two lists")
        }
        let decidedAndDeleted = Set(approve + reject).intersection(delete).sorted()
        for v in decidedAndDeleted {
            r.error(deleteNodes[v]!, "version \(v) is deleted and also listed in \(approveNodes[v] != nil ? "approve" : "reject")",
                    hint: "a deleted version is gone: remove it from \(approveNodes[v] != nil || rejectNodes[v] == nil ? "approve" : "reject")")
        }
        return both.isEmpty && decidedAndDeleted.isEmpty ? Model.Decisions(approve: approve, reject: reject, delete: delete) : nil
    }

    static func modelFamily(_ spec: Fields, _ metadata: ManifestMetadata?, _ r: NodeReader) -> DecodedManifest? {
        var spec = spec
        var steps: [ModelFamily.Step]?
        if let node = spec.required("ladder", hint: "add `ladder: [{stage: shadow}, {stage: challenger}, {stage: champion}]`"),
           let items = r.list(node, "spec.ladder") {
            var out: [ModelFamily.Step] = []
            var seen: Set<Model.Stage> = []
            var ok = !items.isEmpty
            if items.isEmpty { r.error(node, "spec.ladder is empty", hint: "list the stages the family's models climb, in order") }
            for (i, item) in items.enumerated() {
                let path = "spec.ladder[\(i)]"
                guard var f = r.mapping(item, path) else { ok = false; continue }
                let stageNode = f.required("stage", hint: "name the stage: shadow, challenger or champion")
                let stage = stageNode.flatMap { r.choice($0, "\(path).stage", Model.Stage.self) }
                let evidenceNode = f.optional("shadowEvidence")
                let evidence = evidenceNode.flatMap { decodeShadowEvidence($0, "\(path).shadowEvidence", r) }
                f.finish()
                guard let stage, let stageNode, evidenceNode == nil || evidence != nil else { ok = false; continue }
                if stage == .none {
                    r.error(stageNode, "\(path).stage is none", hint: "the ladder lists the stages above none; a model leaves the ladder by `stage: none`")
                    ok = false
                } else if !seen.insert(stage).inserted {
                    r.error(stageNode, "spec.ladder lists \(stage.rawValue) twice", hint: "each stage is one rung")
                    ok = false
                }
                if let evidenceNode, evidence?.requiredFor == .promotion {
                    r.error(evidenceNode, "\(path).shadowEvidence.requiredFor does not apply to a ladder step", hint: "remove it: a step's evidence is required for the stage move")
                    ok = false
                }
                out.append(ModelFamily.Step(stage: stage, shadowEvidence: evidence))
            }
            steps = ok ? out : nil
        }
        spec.finish()
        guard let metadata, let steps, !r.diagnostics.hasErrors else { return nil }
        return .modelFamily(ModelFamily(metadata: metadata, ladder: steps))
    }
}
