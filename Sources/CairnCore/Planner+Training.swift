extension PlanBuilder {
    // MARK: training (phase 1)

    /// The fingerprint inputs an active model should have a version for, or nil if its template
    /// or weights are missing (validation prevents that for a valid revision).
    mutating func desiredInputs(_ model: Model) -> (FingerprintInputs, Template, OutcomeWeights)? {
        guard let template = templatesByName[model.template], let weights = weightsByName[template.outcomeWeights] else { return nil }
        // The template's and weights' hashes are the same for every model using them: compute once.
        var inputs: FingerprintInputs
        if let parts = fingerprintParts[template.metadata.name] {
            inputs = parts
        } else {
            inputs = FingerprintInputs.forModel(model, template: template, weights: weights, datasetHash: desired.datasetHashes[template.metadata.name])
            fingerprintParts[template.metadata.name] = inputs
        }
        inputs.traits = model.traits.sorted()
        inputs.retrainToken = model.retrainToken
        return (inputs, template, weights)
    }

    func runs(of model: String) -> [TrainingRun] { runsByModel[model] ?? [] }

    mutating func planTraining() {
        for model in desired.manifests.models {
            let name = model.metadata.name
            guard let effective = effectiveModels[name], effective.lifecycle == .active,
                  let (inputs, template, weights) = desiredInputs(effective) else { continue }
            let address = ManifestAddress(.model, name)
            let fingerprint: String
            if let known = fingerprints[inputs] {
                fingerprint = known
            } else {
                fingerprint = inputs.fingerprint
                fingerprints[inputs] = fingerprint
            }
            let modelRuns = runs(of: name)
            if modelRuns.contains(where: { $0.fingerprint == fingerprint && $0.state.isActive }) { continue }
            let versions = observed.models[name]?.versions ?? []
            var reason: String
            if let same = versions.filter({ $0.fingerprint == fingerprint }).max(by: { $0.number < $1.number }) {
                // Up to date; only the learning schedule can ask for another run.
                guard effective.learning.mode == .scheduled, let every = effective.learning.every,
                      let last = modelRuns.filter({ $0.state == .succeeded }).compactMap(\.finishedAt).max(),
                      now - last >= Int64(every.seconds) else { continue }
                if !inputs.dataset.hasPrefix("uri:") {
                    // The dataset is in git and unchanged: a run would learn nothing new and make
                    // a copy of a version that may already be live.
                    skipped.append(SkippedChange(action: .train, address: address, reason:
                        "learning schedule due (every \(every)), but v\(same.number) was trained on these exact inputs, dataset included; "
                        + "the next commit that changes the dataset trains (or change retrainToken)"))
                    continue
                }
                reason = "learning schedule: every \(every), last successful run finished \(Describe.time(last))"
            } else if let made = modelRuns.last(where: { $0.fingerprint == fingerprint && $0.state == .succeeded }), let number = made.version {
                // Its version of these inputs was deleted: training again would bring it back.
                skipped.append(SkippedChange(action: .train, address: address, reason:
                    "v\(number) was trained on these inputs and deleted; change the inputs or retrainToken to train again"))
                continue
            } else if let failed = modelRuns.last(where: { $0.fingerprint == fingerprint }), failed.state == .failed {
                // Rule 6: a failed run is not retried blindly; a fix or a new token changes the fingerprint.
                block(.train, address, "training run \(failed.id) failed: \(failed.reason ?? "no reason recorded"); "
                      + "fix the template or data, or change retrainToken to try again")
                continue
            } else if let latest = versions.max(by: { $0.number < $1.number }) {
                let why = inputs.differences(from: latest.fingerprintInputs)
                reason = "fingerprint \(fingerprint.prefix(8))…: " + (why.isEmpty ? "new inputs" : why.joined(separator: ", "))
            } else {
                reason = "fingerprint \(fingerprint.prefix(8))…: no version yet"
            }
            if let tuning = template.tuning {
                let tried = min(tuning.trials, tuning.combinations)
                reason += "; tunes \(tried) trial\(tried == 1 ? "" : "s") (\(tuning.strategy.rawValue) over \(tuning.space.keys.sorted().joined(separator: ", "))) "
                    + "on \(tuning.metric), then \(tuning.refit ? "refits the best on all data" : "keeps the best trial's model")"
            }
            // Runs of older inputs, queued or running, are cancelled in the apply's transaction
            // (a running trainer is stopped, a Slurm job cancelled, by its worker).
            let supersededRuns = modelRuns.filter { ($0.state == .queued || $0.state == .running) && $0.fingerprint != fingerprint }
            let superseded = supersededRuns.map(\.id)
            let request = TrainRequest(model: name, fingerprint: fingerprint, inputs: inputs, template: template, weights: weights,
                                       datasetPath: desired.datasetFiles[template.metadata.name], commit: desired.commit.sha,
                                       supersedes: superseded, manifestRoot: desired.manifestRoot)
            let parts = trainPayloadParts[template.metadata.name] ?? (.from(template), .from(weights))
            trainPayloadParts[template.metadata.name] = parts
            let next = max(versions.map(\.number).max() ?? 0, modelRuns.compactMap(\.version).max() ?? 0) + 1
            trainedModels.insert(name)
            add(Change(action: .train, address: address, version: next, after: request.payload(template: parts.template, weights: parts.weights),
                       reason: reason + (superseded.isEmpty ? "" : "; cancels " + Describe.runs(supersededRuns)),
                       file: model.metadata.source.file))
        }
    }

    // MARK: approvals and rejections (phase 2)

    mutating func planDecisions() {
        for model in desired.manifests.models where model.lifecycle != .deleted {
            let name = model.metadata.name
            guard let old = observed.models[name] else {
                for v in model.decisions.approve + model.decisions.reject {
                    block(model.decisions.approve.contains(v) ? .approve : .reject, ManifestAddress(.model, name), version: v,
                          "v\(v) does not exist yet" + runNote(name))
                }
                continue
            }
            let effective = effectiveModels[name] ?? model
            let address = ManifestAddress(.model, name)
            let listed = Set(model.decisions.approve + model.decisions.reject)
            for v in model.decisions.approve.sorted() {
                guard let version = old.version(v) else {
                    block(.approve, address, version: v, "v\(v) does not exist yet" + runNote(name))
                    continue
                }
                if version.status != .approved {
                    if let missing = missingEvidence(name, v, for: .approval) {
                        block(.approve, address, version: v, missing)
                        continue
                    }
                    decide(version, .approved, "listed in decisions.approve" + evidenceNote(name, v, for: .approval), address: address,
                           file: model.metadata.source.file)
                }
            }
            for v in model.decisions.reject.sorted() {
                guard let version = old.version(v) else {
                    block(.reject, address, version: v, "v\(v) does not exist yet" + runNote(name))
                    continue
                }
                guard version.status != .rejected else { continue }
                if version.status == .approved, let target = liveTarget(model: name, version: v) {
                    block(.reject, address, version: v, "v\(v) is live on ServingTarget/\(target); route that target to another version first")
                    continue
                }
                decide(version, .rejected, "listed in decisions.reject", address: address, file: model.metadata.source.file)
            }
            guard effective.approval.mode == .gated else { continue }
            var best: [String: Double] = [:]
            for version in old.versions.sorted(by: { $0.number < $1.number }) {
                if projectedStatus[name]?[version.number] == .approved {
                    best = ApprovalPolicy.including(version.metrics, in: best)
                    continue
                }
                guard version.status == .pending, !listed.contains(version.number),
                      var decision = ApprovalPolicy.decide(effective.approval, metrics: version.metrics, best: best, evidenceRequired: false) else { continue }
                if decision.status == .approved {
                    if let missing = missingEvidence(name, version.number, for: .approval) {
                        // The gates pass; approval waits for the shadow evidence the model requires.
                        block(.approve, address, version: version.number, decision.reason + "; waits for " + missing)
                        continue
                    }
                    decision.reason += evidenceNote(name, version.number, for: .approval)
                }
                decide(version, decision.status, decision.reason, address: address, file: model.metadata.source.file)
                if decision.status == .approved { best = ApprovalPolicy.including(version.metrics, in: best) }
            }
        }
    }

    private mutating func decide(_ version: ModelVersion, _ status: ModelVersion.Status, _ reason: String, address: ManifestAddress, file: String) {
        projectedStatus[version.model, default: [:]][version.number] = status
        add(Change(action: status == .approved ? .approve : .reject, address: address, version: version.number,
                   before: .string(version.status.rawValue), after: .from(Decision(model: version.model, version: version.number, status: status)),
                   reason: reason, file: file))
        if status == .approved {
            let live = observed.models[version.model]?.latestApproved
            candidates.append(Candidate(target: nil, model: version.model, version: version.number, metrics: version.metrics,
                                        label: versionLabel(version.model, version.number), live: live.map { ($0.model, $0.number, $0.metrics) }))
        }
    }

    /// A version's label as this revision sets it.
    func versionLabel(_ model: String, _ version: Int) -> String? {
        (effectiveModels[model] ?? observed.models[model]?.spec)?.labelsByVersion[version]?.label
    }

    /// A target serving `model` v`version` now.
    func liveTarget(model: String, version: Int) -> String? {
        observed.targets.values.filter(\.assigned).sorted { $0.name < $1.name }
            .first { $0.routes.contains { $0.model == model && $0.version == version } }?.name
    }

    /// ": training run 3 is queued", when the model has a run in flight.
    func runNote(_ model: String) -> String {
        if let run = runs(of: model).last(where: { $0.state.isActive }) { return " (training run \(run.id) is \(run.state.rawValue))" }
        if trainedModels.contains(model) { return " (training is queued by this plan)" }
        return ""
    }
}

/// Approval gates: every gate must pass.
public enum Gates {
    /// Whether `metrics` pass every gate, and why in words. `best` holds the best value of each
    /// metric among approved versions so far (for `maxRegression`).
    public static func evaluate(_ gates: [Model.Gate], metrics: [String: Double], best: [String: Double]) -> (Bool, String) {
        var passed = true
        var parts: [String] = []
        for gate in gates {
            guard let value = metrics[gate.metric] else {
                passed = false
                parts.append("\(gate.metric) missing")
                continue
            }
            let v = Describe.number(value)
            if let min = gate.min {
                let ok = value >= min
                passed = passed && ok
                parts.append("\(gate.metric) \(v) \(ok ? "≥" : "<") min \(Describe.number(min))")
            }
            if let max = gate.max {
                let ok = value <= max
                passed = passed && ok
                parts.append("\(gate.metric) \(v) \(ok ? "≤" : ">") max \(Describe.number(max))")
            }
            if let allowed = gate.maxRegression {
                if let top = best[gate.metric] {
                    let drop = top - value
                    let ok = drop <= allowed + 1e-12
                    passed = passed && ok
                    parts.append("\(gate.metric) \(v) vs best approved \(Describe.number(top)): "
                                 + (ok ? "within" : "drops more than") + " maxRegression \(Describe.number(allowed))")
                } else {
                    parts.append("\(gate.metric) \(v): no approved version to regress from")
                }
            }
        }
        var seen: Set<String> = []
        return (passed, parts.filter { seen.insert($0).inserted }.joined(separator: "; "))
    }
}

extension Planner {
    /// When the next learning schedule falls due (unix seconds), so a daemon knows when an
    /// unchanged revision still needs a pass; nil if no active model learns on a schedule.
    public static func nextScheduledTraining(desired: DesiredState, observed: ObservedState) -> Int64? {
        var next: Int64?
        let busy = Set(observed.runs.filter(\.state.isActive).map(\.model))
        var lastSucceeded: [String: Int64] = [:]
        for run in observed.runs where run.state == .succeeded {
            if let finished = run.finishedAt { lastSucceeded[run.model] = max(lastSucceeded[run.model] ?? finished, finished) }
        }
        for model in desired.manifests.models where model.lifecycle == .active && model.learning.mode == .scheduled {
            // A model already training is not due; its run finishing moves the observed generation.
            guard let every = model.learning.every, !busy.contains(model.metadata.name) else { continue }
            guard let last = lastSucceeded[model.metadata.name] else { continue }
            let due = last + Int64(every.seconds)
            next = min(next ?? due, due)
        }
        return next
    }
}
