import CairnCore
import Foundation

/// `cairn reconcile --wait`: reconcile a revision again and again until nothing is left to do
/// (no change to apply, no training run queued or running). Between passes it waits on
/// events, never spinning: a training run this process finished, the observed state moving
/// (another process's worker), a stop, or a backoff that doubles up to 10 s while nothing moves.
public struct Convergence: Sendable {
    /// Where the loop is, for progress lines.
    public struct Progress: Sendable {
        public var passes: Int
        public var queued: Int
        public var running: Int
        /// Runs that ended since the wait began.
        public var done: Int
        public var elapsed: Double
        /// Runs this wait has seen: done, running and queued.
        public var total: Int { done + running + queued }

        /// `training: 1/3 runs done, 1 running, 1 queued`.
        public var line: String {
            "pass \(passes) · training: \(done)/\(total) run\(total == 1 ? "" : "s") done, \(running) running, \(queued) queued"
        }
    }

    public var store: RegistryStore
    public var clock: Clock
    /// Runs training here; nil leaves it to another worker (`--no-train`).
    public var worker: TrainingWorker?
    /// One applying pass (the caller's `ReconcilePass.run`); returns its plan.
    public var pass: @Sendable () throws -> Plan
    /// A plan with changes that differs from the last one shown.
    public var showPlan: @Sendable (Plan) -> Void
    public var progress: @Sendable (Progress) -> Void

    public init(store: RegistryStore, clock: Clock, worker: TrainingWorker?, pass: @escaping @Sendable () throws -> Plan,
                showPlan: @escaping @Sendable (Plan) -> Void, progress: @escaping @Sendable (Progress) -> Void) {
        self.store = store
        self.clock = clock
        self.worker = worker
        self.pass = pass
        self.showPlan = showPlan
        self.progress = progress
    }

    /// Runs until converged, after `first` (the plan of the pass already run, whose observed
    /// generation is `generationBefore`). Returns the last plan and the number of passes.
    public func run(first: Plan, generationBefore: Int, timeout: Double, timeoutText: String, stop: StopFlag) throws -> (plan: Plan, passes: Int) {
        let started = clock.now()
        let wake = Wakeup()
        stop.wakes(wake)
        var plan = first
        var shown = first
        var passes = 1
        var seen = generationBefore
        var idle = 1.0
        /// Queued, running and ended runs, in one read.
        func counts() throws -> (queued: Int, running: Int, finished: Int) {
            let c = try store.runStateCounts()
            return (c["queued", default: 0], c["running", default: 0], c["succeeded", default: 0] + c["failed", default: 0] + c["cancelled", default: 0])
        }
        let finishedBefore = try counts().finished
        func report(_ c: (queued: Int, running: Int, finished: Int)) {
            progress(Progress(passes: passes, queued: c.queued, running: c.running, done: c.finished - finishedBefore, elapsed: clock.now() - started))
        }
        while true {
            let now = try counts()
            let (queued, running) = (now.queued, now.running)
            if plan.changes.isEmpty, queued == 0, running == 0 { return (plan, passes) }
            if stop.isSet { throw CairnError("stopped before converging") }
            if clock.now() - started > timeout {
                if try store.observedState().suspended, !plan.changes.isEmpty {
                    throw CairnError("timed out after \(timeoutText) before converging: applying is suspended, \(plan.changes.count) changes wait",
                                     hint: "run `cairn resume` to apply again")
                }
                let hint = worker == nil
                    ? "a worker must run them: start `cairn worker`, or drop --no-train"
                    : running > 0 ? "another worker is running them: wait for it, or pass a longer --timeout"
                    : "they wait out a retry delay or a lease another worker holds: pass a longer --timeout"
                throw CairnError("timed out after \(timeoutText) before converging: \(queued) training runs queued, \(running) running", hint: hint)
            }
            report(now)
            var worked = false
            if let worker, !worker.configuration.submitsResults {
                // Results that workers without the signing key submitted are recorded here, where it is.
                if TrainingWorker.recordSubmitted(store: store, artifacts: worker.artifacts, now: { clock.unixNow() }, log: { _ in }) > 0 {
                    worked = true
                }
            }
            if let worker {
                while try worker.runOne(stop: stop) != nil {
                    worked = true
                    report(try counts())
                }
            }
            let generation = try store.generation()
            if !worked, generation == seen {
                // Nothing moved: wait for an event, backing off while nothing does.
                clock.wait(on: wake, until: min(clock.now() + idle, started + timeout + 0.001))
                idle = min(idle * 2, 10)
                if try store.generation() == seen { continue }
            } else {
                idle = 1
            }
            seen = try store.generation()
            passes += 1
            plan = try pass()
            if !plan.changes.isEmpty, plan.changes != shown.changes {
                showPlan(plan)
                shown = plan
            }
        }
    }
}
