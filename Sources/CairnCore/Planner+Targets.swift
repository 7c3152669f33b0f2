extension PlanBuilder {
    // MARK: serving targets (phase 3 promotions, phase 4 unassignments)

    mutating func planTargets() {
        let desiredNames = Set(desired.manifests.servingTargets.map(\.metadata.name))
        for target in desired.manifests.servingTargets {
            planTarget(target)
        }
        for (name, old) in observed.targets.sorted(by: { $0.key < $1.key }) where old.assigned && !desiredNames.contains(name) {
            projectedRoutes[name] = nil
            removedRoutes += old.routes.count
            add(Change(action: .archive, address: ManifestAddress(.servingTarget, name),
                       before: .from(Assignment(tenant: old.tenant, surface: old.surface, routes: old.routes, shadow: old.shadow)),
                       reason: "manifest removed: unassign (was \(Describe.routes(old.routes)))"))
        }
    }

    private mutating func planTarget(_ target: ServingTarget) {
        let name = target.metadata.name
        let address = ManifestAddress(.servingTarget, name)
        var routes: [LiveRoute] = []
        var problems: [String] = []
        for route in target.routes {
            switch resolve(route, shadow: false) {
            case let .success(live): routes.append(LiveRoute(model: live.model, version: live.version, weight: route.weight))
            case let .failure(why): problems.append("route \(route.subject): \(why.text)")
            }
        }
        var shadow: [LiveRoute] = []
        for route in target.shadow {
            switch resolve(route, shadow: true) {
            case let .success(live): shadow.append(LiveRoute(model: live.model, version: live.version, weight: 0))
            // A shadow that cannot resolve yet must not hold back what is served.
            case let .failure(why): block(.promote, address, "shadow \(route.subject): \(why.text)")
            }
        }
        routes.sort()
        shadow.sort()
        let old = observed.targets[name]
        if problems.isEmpty, planGuard(target, declared: routes) { return }
        // A version a route would newly put live shows the shadow evidence its model requires first.
        for route in routes where !(old?.assigned == true && old!.routes.contains(route)) {
            if let missing = missingEvidence(route.model, route.version, for: .promotion) {
                problems.append("route \(route.model) v\(route.version): \(missing)")
            }
        }
        if !problems.isEmpty {
            // Rule 2: nothing of a target goes live until every route can; the live routes stay.
            block(.promote, address, problems.joined(separator: "; "))
            return
        }
        let before = old.flatMap { $0.assigned ? Assignment(tenant: $0.tenant, surface: $0.surface, routes: $0.routes, shadow: $0.shadow) : nil }
        var after = Assignment(tenant: target.tenant, surface: target.surface, routes: routes, shadow: shadow)
        if let before, before == after {
            // Git now declares what a change outside it put live: the drift mark goes, nothing else moves.
            if let record = old?.drift {
                add(Change(action: .promote, address: address, before: .from(before), after: .from(after),
                           reason: "git now declares what is live (\(record.how)): drift cleared", file: target.metadata.source.file))
            }
            return
        }
        after.decidedOn = metricsSnapshot(routes + shadow)
        projectedRoutes[name] = routes + shadow
        promotedRoutes += Set(routes).subtracting(before?.routes ?? []).count
        removedRoutes += (before?.routes ?? []).filter { old in !routes.contains { $0.model == old.model } }.count
        var reason = Describe.promotion(from: before?.routes ?? [], to: routes)
        if (before?.shadow ?? []) != shadow { reason += "; shadow " + (shadow.isEmpty ? "none" : Describe.routes(shadow, weights: false)) }
        if let before, before.tenant != target.tenant || before.surface != target.surface {
            reason += "; serves \(target.tenant)/\(target.surface)"
        }
        if let old, let record = old.drift, old.assigned, old.routes != routes {
            // Rule 11: a change made outside git is shown, then the declared state is put back.
            drift.append(DriftItem(address: address, live: Describe.routes(old.routes), declared: Describe.routes(routes),
                                   actor: record.actor, at: record.at, how: record.how))
            reason = "revert drift: " + reason
        }
        add(Change(action: .promote, address: address, before: before.map { .from($0) }, after: .from(after), reason: reason,
                   file: target.metadata.source.file))
        // Each new route and shadow beside what is live: the same model's route, else the
        // target's heaviest route (a champion swap compares the new champion with the old one).
        let live = before?.routes ?? []
        let lead = live.sorted { ($1.weight, $0.model) < ($0.weight, $1.model) }.first
        func metrics(_ r: LiveRoute) -> [String: Double] { observed.models[r.model]?.version(r.version)?.metrics ?? [:] }
        for (entry, isShadow) in routes.map({ ($0, false) }) + shadow.map({ ($0, true) }) {
            if (isShadow ? before?.shadow : before?.routes)?.contains(entry) ?? false { continue }
            let compared = live.first { $0.model == entry.model } ?? lead
            candidates.append(Candidate(target: name, model: entry.model, version: entry.version, metrics: metrics(entry),
                                        label: versionLabel(entry.model, entry.version), shadow: isShadow,
                                        live: compared.map { ($0.model, $0.version, metrics($0)) }))
        }
    }

    struct Unresolved: Error {
        var text: String
    }

    /// The concrete version a route asks for, as it will be after this plan's decisions.
    private func resolve(_ route: ServingTarget.Route, shadow: Bool) -> Result<LiveRoute, Unresolved> {
        let modelName: String
        switch route.subject {
        case let .model(m): modelName = m
        case let .family(f):
            guard let champion = championName(of: f) else { return .failure(Unresolved(text: "family \(f) has no active champion")) }
            modelName = champion
        }
        guard let model = effectiveModels[modelName] else {
            if let declared = desired.manifests.models.first(where: { $0.metadata.name == modelName }) {
                return .failure(Unresolved(text: declared.lifecycle == .deleted ? "Model/\(modelName) is deleted"
                                                : "Model/\(modelName) is not in the registry (its create is blocked)"))
            }
            return .failure(Unresolved(text: "Model/\(modelName) is not declared"))
        }
        guard model.lifecycle == .active else {
            return .failure(Unresolved(text: "Model/\(modelName) is \(model.lifecycle.rawValue); only active models serve"))
        }
        let statuses = projectedStatus[modelName] ?? [:]
        switch route.version {
        case let .number(n):
            guard let status = statuses[n] else {
                return .failure(Unresolved(text: "v\(n) does not exist yet" + runNote(modelName)))
            }
            switch status {
            case .approved: return .success(LiveRoute(model: modelName, version: n, weight: route.weight))
            case .pending:
                // Shadows score versions before anyone approves them; that is what they are for.
                if shadow { return .success(LiveRoute(model: modelName, version: n, weight: 0)) }
                return .failure(Unresolved(text: "v\(n) is pending approval"))
            case .rejected: return .failure(Unresolved(text: "v\(n) was rejected"))
            }
        case .latestApproved, .champion:
            if let n = statuses.filter({ $0.value == .approved }).keys.max() {
                return .success(LiveRoute(model: modelName, version: n, weight: route.weight))
            }
            // A family route names its champion, so the reader knows which model is waiting.
            let who = route.subject == .model(modelName) ? "" : "champion \(modelName) has "
            if let pending = statuses.filter({ $0.value == .pending }).keys.max() {
                return .failure(Unresolved(text: who + "no approved version yet; v\(pending) is pending approval"))
            }
            return .failure(Unresolved(text: who + "no approved version yet" + runNote(modelName)))
        }
    }
}

/// Wording shared by plan reasons and renderers.
public enum Describe {
    /// `queued run 11`, `running run 12`, `queued runs 11, 13, running run 12`.
    static func runs(_ runs: [TrainingRun]) -> String {
        var parts: [String] = []
        for state in [TrainingRun.State.queued, .running] {
            let ids = runs.filter { $0.state == state }.map(\.id)
            guard !ids.isEmpty else { continue }
            parts.append("\(state.rawValue) run\(ids.count == 1 ? "" : "s") \(ids.map(String.init).joined(separator: ", "))")
        }
        return parts.joined(separator: ", ")
    }

    /// Shortest decimal that reads back as the same number: 1.0 → "1.0", 0.25 → "0.25".
    public static func number(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e15 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    /// UTC, to the second: 2026-11-20T08:00:00Z.
    public static func time(_ unix: Int64) -> String {
        var t = time_t(unix)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
    }

    public static func routes(_ routes: [LiveRoute], weights: Bool = true) -> String {
        if routes.isEmpty { return "nothing" }
        return routes.map { weights ? "\($0.model) v\($0.version) (\($0.weight)%)" : "\($0.model) v\($0.version)" }
            .joined(separator: ", ")
    }

    static func promotion(from old: [LiveRoute], to new: [LiveRoute]) -> String {
        if old.isEmpty { return Describe.routes(new) }
        var parts: [String] = []
        for route in new {
            if let previous = old.first(where: { $0.model == route.model }) {
                if previous.version == route.version, previous.weight == route.weight { continue }
                var text = "\(route.model) v\(previous.version) → v\(route.version)"
                if previous.version > route.version { text = "rollback: " + text }
                if previous.weight != route.weight { text += " (\(previous.weight)% → \(route.weight)%)" } else { text += " (\(route.weight)%)" }
                parts.append(text)
            } else {
                parts.append("\(route.model) v\(route.version) (\(route.weight)%)")
            }
        }
        for route in old where !new.contains(where: { $0.model == route.model }) {
            parts.append("\(route.model) v\(route.version) removed")
        }
        return parts.isEmpty ? "routes unchanged" : parts.joined(separator: ", ")
    }

    static func weightsSummary(_ w: [String: Double]) -> String {
        w.keys.sorted().map { "\($0) \(number(w[$0]!))" }.joined(separator: ", ")
    }

    static func weights(_ old: [String: Double], _ new: [String: Double], metadataChanged: Bool) -> String {
        var parts: [String] = []
        for key in Set(old.keys).union(new.keys).sorted() {
            switch (old[key], new[key]) {
            case let (a?, b?) where a != b: parts.append("\(key) \(number(a)) → \(number(b))")
            case let (nil, b?): parts.append("\(key) + \(number(b))")
            case (_?, nil): parts.append("\(key) removed")
            default: break
            }
        }
        if metadataChanged { parts.append("metadata changed") }
        return parts.joined(separator: ", ")
    }

    public static func template(_ t: Template) -> String {
        let trainer: String
        switch t.trainer {
        case let .builtin(algorithm, _): trainer = "builtin \(algorithm.rawValue)"
        case let .exec(command, _, _, _): trainer = "exec \(command.first ?? "")"
        case let .slurm(job): trainer = "slurm " + (job.script ?? job.command?.first ?? "")
        }
        return "\(trainer), weights \(t.outcomeWeights)"
    }

    /// A model's changed fields, with version labels spelt out (`v2 label "winter catalogue"; v1 description removed`).
    static func modelChanges(_ old: Model, _ new: Model) -> String {
        var o = old, n = new
        o.versionLabels = nil
        n.versionLabels = nil
        var parts: [String] = []
        if o != n { parts.append(changedFields(o, n)) }
        let before = old.labelsByVersion, after = new.labelsByVersion
        for v in Set(before.keys).union(after.keys).sorted() {
            let b = before[v], a = after[v]
            if b?.label != a?.label {
                parts.append("v\(v) label " + (a?.label.map { "\"\($0)\"" } ?? "removed"))
            }
            if b?.description != a?.description {
                parts.append("v\(v) description " + (a?.description == nil ? "removed" : b?.description == nil ? "set" : "changed"))
            }
        }
        return parts.isEmpty ? "changed" : parts.joined(separator: "; ")
    }

    /// The top-level fields that differ between two values, by their JSON form.
    static func changedFields<T: Encodable>(_ old: T, _ new: T) -> String {
        guard case let .object(a) = JSONValue.from(old), case let .object(b) = JSONValue.from(new) else { return "changed" }
        let keys = Set(a.keys).union(b.keys).filter { a[$0]?.canonicalText != b[$0]?.canonicalText }.sorted()
        return keys.isEmpty ? "changed" : keys.joined(separator: ", ") + " changed"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
