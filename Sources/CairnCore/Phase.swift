/// The observed phase of a model (computed, never written in git).
public enum ModelPhase: String, Sendable, Codable {
    /// Not yet trained (or never approved).
    case draft
    /// A run is queued or running; an earlier ready version keeps serving meanwhile.
    case busy
    /// Has a version that may go live.
    case ready
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
        if let v = model.versions.last { return (.draft, "v\(v.number) is \(v.status.rawValue)") }
        return (.draft, nil)
    }
}
