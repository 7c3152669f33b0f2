import CairnCore
import CairnStore
import Foundation
import Metrics
import Prometheus

/// The daemon's Prometheus metrics (names as in the README's endpoint table), through swift-metrics.
public final class CairnMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    private let lock = NSLock()
    private var revisionGauge: Prometheus.Gauge?
    private let duration: Metrics.Timer

    public init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
        duration = Metrics.Timer(label: "cairn_reconcile_duration_seconds")
    }

    /// Points swift-metrics at the registry; once per process.
    public static func bootstrap() -> CairnMetrics {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return CairnMetrics(registry: registry)
    }

    func recordPass(plan: Plan, observed: ObservedState, result: String, duration seconds: Double) {
        duration.recordNanoseconds(Int64(seconds * 1e9))
        Counter(label: "cairn_reconcile_total", dimensions: [("result", result)]).increment()
        for action in Action.allCases {
            Gauge(label: "cairn_plan_changes", dimensions: [("action", action.rawValue)]).record(plan.changes.filter { $0.action == action }.count)
        }
        Gauge(label: "cairn_plan_changes", dimensions: [("action", "blocked")]).record(plan.blocked.count)
        Gauge(label: "cairn_drift_items").record(plan.drift.count)
        Gauge(label: "cairn_suspended").record(observed.suspended ? 1 : 0)
        if let revision = observed.lastAppliedRevision {
            lock.lock()
            defer { lock.unlock() }
            if let old = revisionGauge { registry.unregisterGauge(old) }
            let gauge = registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "cairn_last_applied_revision_info", unitName: "", helpText: "The commit last applied (always 1)."), labels: [("revision", revision)])
            gauge.set(to: 1.0)
            revisionGauge = gauge
        }
    }

    func recordFailure(result: String, duration seconds: Double) {
        duration.recordNanoseconds(Int64(seconds * 1e9))
        Counter(label: "cairn_reconcile_total", dimensions: [("result", result)]).increment()
    }

    /// Refreshes the gauges read from the database, then renders the exposition text.
    func render(db: RegistryDatabase) -> String {
        if let runs = try? db.runStateCounts() {
            for state in TrainingRun.State.allCases {
                Gauge(label: "cairn_training_runs", dimensions: [("state", state.rawValue)]).record(runs[state.rawValue] ?? 0)
            }
        }
        return registry.emitToString()
    }
}
