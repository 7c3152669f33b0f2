/// The observed phase of a model (computed, never written in git).
public enum ModelPhase: String, Sendable, Codable {
    /// Not yet trained.
    case draft
    /// A run is queued or running; an earlier ready version keeps serving meanwhile.
    case busy
    /// Has a version that may go live.
    case ready
    /// Trained; its latest version awaits a decision (in git, or by gates it has not met yet).
    case pending
    /// Trained; every version was rejected. A new one needs a change or a `retrainToken`.
    case rejected
    /// The last run failed; the definition and live versions are intact.
    case failed
    case archived

    /// The phase, and a detail such as "training run 4 is running".
    public static func of(_ model: ObservedModel, runs: [TrainingRun]) -> (ModelPhase, String?) {
        if model.archived { return (.archived, nil) }
        let mine = runs.filter { $0.model == model.spec.metadata.name }.sorted { $0.id < $1.id }
        if let active = mine.last(where: { $0.state.isActive }) {
            return (.busy, "training run \(active.id) is \(active.state.rawValue)")
        }
        if let last = mine.last(where: { $0.state == .succeeded || $0.state == .failed }), last.state == .failed {
            return (.failed, "training run \(last.id) failed: \(last.reason ?? "no reason recorded")")
        }
        if let v = model.latestApproved { return (.ready, "v\(v.number) approved") }
        if let v = model.versions.max(by: { $0.number < $1.number }) {
            if v.status == .pending { return (.pending, "v\(v.number) awaits approval") }
            return (.rejected, "v\(v.number) rejected" + (v.statusReason.map { " (\($0))" } ?? ""))
        }
        return (.draft, nil)
    }
}
