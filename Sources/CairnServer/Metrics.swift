import CairnCore
import CairnStore
import Foundation
import Metrics
import Prometheus

/// The daemon's Prometheus metrics (names as in the README's endpoint table). Every family has
/// HELP and TYPE, and every labelled family is created for all its known label values at start,
/// so a scrape (and `promtool check metrics`) sees each series from the first pass on.
public final class CairnMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    private let lock = NSLock()
    private var revisionGauge: Prometheus.Gauge?
    private let duration: ValueHistogram
    private let passes: [String: Prometheus.Counter]
    private let changes: [String: Prometheus.Gauge]
    private let runs: [String: Prometheus.Gauge]
    private let drift: Prometheus.Gauge
    private let suspended: Prometheus.Gauge
    private let sourceStale: Prometheus.Gauge
    private let ready: Prometheus.Gauge
    private let polls: Prometheus.Counter
    private let traces: [String: Prometheus.Counter]
    private let feedback: [Bool: Prometheus.Counter]
    private var tracesReported = TraceRecorder.Counts()
    private let guardTrips: Prometheus.Counter

    /// `cairn_reconcile_total{result}`: every result a pass can have.
    static let results = ["applied", "noop", "suspended", "invalid", "untrusted", "source_error", "failed"]

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        duration = registry.makeValueHistogram(name: "cairn_reconcile_duration_seconds",
                                               buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
                                               help: "How long reconcile passes took, in seconds (skipped polls are not passes).")
        passes = Dictionary(uniqueKeysWithValues: Self.results.map {
            ($0, registry.makeCounter(name: "cairn_reconcile_total", labels: [("result", $0)], help: "Reconcile passes by result."))
        })
        changes = Dictionary(uniqueKeysWithValues: (Action.allCases.map(\.rawValue) + ["blocked"]).map {
            ($0, registry.makeGauge(name: "cairn_plan_changes", labels: [("action", $0)], help: "Changes in the last pass's plan, by action (and blocked)."))
        })
        runs = Dictionary(uniqueKeysWithValues: TrainingRun.State.allCases.map(\.rawValue).map {
            ($0, registry.makeGauge(name: "cairn_training_runs", labels: [("state", $0)], help: "Training runs in the registry, by state."))
        })
        drift = registry.makeGauge(name: "cairn_drift_items", help: "Targets changed outside git in the last pass's plan.")
        suspended = registry.makeGauge(name: "cairn_suspended", help: "1 while applying is suspended (cairn suspend), else 0.")
        sourceStale = registry.makeGauge(name: "cairn_source_stale",
                                         help: "1 while the remote cannot be fetched and passes go on from the cached source, else 0.")
        polls = registry.makeCounter(name: "cairn_polls_total",
                                     help: "Times the loop looked at the source and the registry: passes, and polls that found nothing new and skipped the pass.")
        traces = Dictionary(uniqueKeysWithValues: ["recorded", "shed", "dropped", "write_failed"].map {
            ($0, registry.makeCounter(name: "cairn_traces_total", labels: [("result", $0)],
                                      help: "Decision traces of recommendation requests: recorded (shed ones included), shed (shadows not scored: the recorder was behind), dropped (not recorded: its queue was full), write_failed."))
        })
        feedback = Dictionary(uniqueKeysWithValues: [true, false].map {
            ($0, registry.makeCounter(name: "cairn_feedback_total", labels: [("known", $0 ? "true" : "false")],
                                      help: "Outcome samples received; known=false: an outcome type the template does not weigh (kept, never learned from)."))
        })
        guardTrips = registry.makeCounter(name: "cairn_rollback_guard_trips_total",
                                          help: "Rollback guards that tripped: a target returned to its previous routes on online evidence (it shows as drift until a commit decides).")
        ready = registry.makeGauge(name: "cairn_ready",
                                   help: "1 while the Ready condition is True (what /readyz answers 200 for), else 0: stalled, or a signing key that does not verify what is live.")
    }

    /// Creates the registry (swift-metrics is pointed at it too, for libraries that report through it); once per process.
    public static func bootstrap() -> CairnMetrics {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return CairnMetrics(registry: registry)
    }

    func recordPass(plan: Plan, observed: ObservedState, result: String, duration seconds: Double) {
        duration.record(seconds)
        passes[result]?.increment()
        for action in Action.allCases {
            changes[action.rawValue]?.set(to: Double(plan.changes.filter { $0.action == action }.count))
        }
        changes["blocked"]?.set(to: Double(plan.blocked.count))
        drift.set(to: Double(plan.drift.count))
        suspended.set(to: observed.suspended ? 1 : 0)
        if let revision = observed.lastAppliedRevision {
            lock.lock()
            defer { lock.unlock() }
            if let old = revisionGauge { registry.unregisterGauge(old) }
            let gauge = registry.makeGauge(name: "cairn_last_applied_revision_info", labels: [("revision", revision)],
                                           help: "The commit last applied (always 1).")
            gauge.set(to: 1.0)
            revisionGauge = gauge
        }
    }

    func recordSourceStale(_ stale: Bool) { sourceStale.set(to: stale ? 1 : 0) }

    /// One more look by the loop (a pass, or a poll that skipped one).
    func recordPoll() { polls.increment() }

    func recordGuardTrip() { guardTrips.increment() }

    func recordFeedback(known: Int, unknown: Int) {
        if known > 0 { feedback[true]?.increment(by: Int64(known)) }
        if unknown > 0 { feedback[false]?.increment(by: Int64(unknown)) }
    }

    /// Brings the trace counters up to the recorder's.
    func recordTraceCounts(_ now: TraceRecorder.Counts) {
        lock.lock()
        defer { lock.unlock() }
        let before = tracesReported
        for (name, delta) in [("recorded", now.recorded - before.recorded), ("shed", now.shed - before.shed),
                              ("dropped", now.dropped - before.dropped), ("write_failed", now.writeFailures - before.writeFailures)] where delta > 0 {
            traces[name]?.increment(by: Int64(delta))
        }
        tracesReported = now
    }

    func recordFailure(result: String, duration seconds: Double) {
        duration.record(seconds)
        passes[result]?.increment()
    }

    /// Refreshes the gauges read from the database, then renders the exposition text.
    func render(db: RegistryDatabase, ready isReady: Bool) -> String {
        ready.set(to: isReady ? 1 : 0)
        if let counts = try? db.runStateCounts() {
            for (state, gauge) in runs { gauge.set(to: Double(counts[state] ?? 0)) }
        }
        return registry.emitToString()
    }
}
