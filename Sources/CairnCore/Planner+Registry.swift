/// The operator's caps on registered models: per tenant, and a default for every other tenant
/// (`--model-quota lab=20 --model-quota '*=100'`, or `CAIRN_MODEL_QUOTA=lab=20,*=100`).
public struct ModelQuotas: Sendable, Equatable {
    public var perTenant: [String: Int]
    public var fallback: Int?

    public init(perTenant: [String: Int] = [:], fallback: Int? = nil) {
        self.perTenant = perTenant
        self.fallback = fallback
    }

    public var isEmpty: Bool { perTenant.isEmpty && fallback == nil }

    public func limit(_ tenant: String) -> Int? { perTenant[tenant] ?? fallback }

    /// `TENANT=N` items (`*` for every other tenant), from flags and a comma-separated list.
    public static func parse(_ items: [String]) throws -> ModelQuotas {
        var quotas = ModelQuotas()
        for item in items.flatMap({ $0.split(separator: ",").map(String.init) }) {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, let n = Int(parts[1]), n >= 0 else {
                throw CairnError("model quota '\(item)' is not TENANT=N", hint: "write lab=20 (at most 20 registered models in tenant lab), or *=100 for every other tenant")
            }
            if parts[0] == "*" { quotas.fallback = n } else { quotas.perTenant[parts[0]] = n }
        }
        return quotas
    }

    /// How the flag that sets `tenant`'s limit is written, for messages.
    public func flag(_ tenant: String) -> String {
        perTenant[tenant] != nil ? "--model-quota \(tenant)=\(perTenant[tenant]!)" : "--model-quota '*=\(fallback ?? 0)'"
    }
}

extension PlanBuilder {
    // MARK: quotas (creates beyond the operator's cap are blocked)

    /// The models this plan may not create: those beyond their tenant's cap, in name order, each
    /// with its reason. Every registered model counts (archived ones included: they are still in
    /// the registry) until it is deleted.
    func modelsOverQuota(_ quotas: ModelQuotas) -> [String: String] {
        guard !quotas.isEmpty else { return [:] }
        let declared = Dictionary(uniqueKeysWithValues: desired.manifests.models.map { ($0.metadata.name, $0) })
        var count: [String: Int] = [:]
        for (name, old) in observed.models {
            let tenant = declared[name].map(\.quotaTenant) ?? old.spec.quotaTenant
            count[tenant, default: 0] += 1
        }
        var refused: [String: String] = [:]
        for model in desired.manifests.models where observed.models[model.metadata.name] == nil && model.lifecycle != .deleted {
            let tenant = model.quotaTenant
            guard let limit = quotas.limit(tenant) else { continue }
            let registered = count[tenant, default: 0]
            if registered >= limit {
                refused[model.metadata.name] = "quota: tenant \(tenant) has \(registered) registered model\(registered == 1 ? "" : "s") "
                    + "of the \(limit) allowed (\(quotas.flag(tenant)); archived models count until deleted): "
                    + "delete a model for good (`lifecycle: deleted`), or ask the operator to raise the quota"
            } else {
                count[tenant] = registered + 1
            }
        }
        return refused
    }

    // MARK: discovery (phase 0)

    /// A draft that asks for discovery gets the traits measured from its template's data at this
    /// commit, unless it already has them for the same data; once trained, its traits are locked.
    mutating func planDiscovery() {
        for model in desired.manifests.models where model.discover == true && model.lifecycle == .draft {
            let name = model.metadata.name
            guard effectiveModels[name] != nil else { continue }
            let address = ManifestAddress(.model, name)
            let old = observed.models[name]
            guard let template = templatesByName[model.template] else { continue }
            if let old, !old.versions.isEmpty || runs(of: name).contains(where: { $0.state != .cancelled }) {
                var known = old.discovered
                known?.commit = desired.discoveries[template.metadata.name]?.commit ?? ""
                if known == nil || known != desired.discoveries[template.metadata.name] {
                    skipped.append(SkippedChange(action: .discover, address: address,
                                                 reason: "traits lock when a model is first trained; this one has been, so its data is not discovered again"))
                }
                continue
            }
            if case let .uri(uri) = template.dataset {
                block(.discover, address, "discovery reads the template's dataset at the commit, and Template/\(template.metadata.name)'s is outside git (\(uri)): "
                      + "commit the dataset (or a representative sample) to discover, or declare the traits")
                continue
            }
            guard let traits = desired.discoveries[template.metadata.name] else {
                block(.discover, address, desired.discoveryErrors[template.metadata.name].map { "cannot measure Template/\(template.metadata.name)'s dataset: \($0)" }
                      ?? "Template/\(template.metadata.name)'s dataset was not read")
                continue
            }
            if var known = old?.discovered {
                known.commit = traits.commit
                if known == traits { continue }
            }
            add(Change(action: .discover, address: address, before: old?.discovered.map { .from($0) }, after: .from(traits),
                       reason: traits.summary, file: model.metadata.source.file))
        }
    }

    // MARK: deletion (phase 4)

    /// Targets that serve (or, once this plan applies, will serve) `model`, or one version of it.
    func targetsServing(_ model: String, version: Int? = nil) -> [String] {
        let live = projectedRoutes.filter { $0.value.contains { $0.model == model && (version == nil || $0.version == version) } }.map(\.key)
        var declared: [String] = []
        if version == nil {
            declared = desired.manifests.servingTargets.filter { target in
                (target.routes + target.shadow).contains { route in
                    switch route.subject {
                    case let .model(m): return m == model
                    case let .family(f): return championName(of: f) == model
                    }
                }
            }.map(\.metadata.name)
        }
        return Set(live + declared).sorted()
    }

    /// `lifecycle: deleted` removes a model for good, `decisions.delete` single versions; never
    /// while anything serves them. The audit row keeps what was deleted.
    mutating func planDeletions() {
        for model in desired.manifests.models {
            let name = model.metadata.name
            guard let old = observed.models[name] else { continue }
            let address = ManifestAddress(.model, name)
            let file = model.metadata.source.file
            if model.lifecycle == .deleted {
                let targets = targetsServing(name)
                if !targets.isEmpty {
                    block(.delete, address, "Cannot delete model with active deployments. Remove it from serving targets first. "
                          + "(served by \(targets.map { "ServingTarget/\($0)" }.joined(separator: ", ")))")
                    continue
                }
                // A running trainer (or its batch job) is let finish first: its run must end where a
                // worker can see it, so nothing it started outlives the model.
                if let running = runs(of: name).first(where: { $0.state == .running }) {
                    block(.delete, address, "training run \(running.id) is running: the model is deleted once it ends "
                          + "(queued runs are cancelled with the model)")
                    continue
                }
                let active = runs(of: name).filter(\.state.isActive)
                add(Change(action: .delete, address: address, before: .from(old),
                           reason: "lifecycle deleted: the model, its \(old.versions.count) version\(old.versions.count == 1 ? "" : "s") and its runs"
                               + (active.isEmpty ? "" : " (cancels \(Describe.runs(active)))") + " leave the registry; the audit history keeps them",
                           file: file))
                continue
            }
            for n in model.decisions.deleted.sorted() {
                guard let version = old.version(n) else { continue }
                let targets = targetsServing(name, version: n)
                if !targets.isEmpty {
                    block(.delete, address, version: n, "Cannot delete a version with active deployments. Remove it from serving targets first. "
                          + "(v\(n) is served by \(targets.map { "ServingTarget/\($0)" }.joined(separator: ", ")))")
                    continue
                }
                add(Change(action: .delete, address: address, version: n, before: .from(version),
                           reason: "listed in decisions.delete (\(version.status.rawValue)"
                               + (version.artifactHash.map { ", artifact \($0.prefix(12))… left for `cairn artifact gc`" } ?? "") + ")",
                           file: file))
            }
        }
    }
}
