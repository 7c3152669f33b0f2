import CairnCore
import Foundation

/// Told what each pass of the daemon's loop did (metrics, logs, the serving cache).
public protocol ReconcileObserver: Sendable {
    /// `observed`: the state the plan was made against; `after`: the state once applied.
    func passSucceeded(plan: Plan, desired: DesiredState, observed: ObservedState, after: ObservedState, duration: Double)
    /// `result`: `source_error`, `invalid` or `failed`.
    func passFailed(reason: String, message: String, result: String, revision: String?, duration: Double)
    /// The source could not be refreshed (`stale`: why; passes go on from its cache), or could again (nil).
    func sourceChanged(stale: String?)
    /// A poll found nothing new (same revision and generation, nothing due): no pass ran.
    func passSkipped()
}

extension ReconcileObserver {
    public func passSkipped() {}
}

/// The daemon's schedule: when the next pass is due. Pure; the loop asks it and sleeps until
/// its next deadline or an event.
public struct Schedule: Sendable, Equatable {
    public var interval: Double
    public var resync: Double
    /// Next poll of the source.
    public var nextPoll: Double
    /// Next pass forced even with nothing new (catches drift).
    public var nextResync: Double
    /// The learning-schedule due time already handled (a pass that could not train does not re-trigger).
    public var handledDue: Int64?

    public init(interval: Double, resync: Double, start: Double) {
        self.interval = interval
        self.resync = resync
        nextPoll = start
        nextResync = start + resync
    }

    /// What is due at `now`.
    public struct Due: Sendable, Equatable {
        /// Run a pass at all.
        public var pass: Bool
        /// Fetch the source first (a poll or a webhook).
        public var fetch: Bool
        /// Run it even when the revision and the observed state are unchanged.
        public var force: Bool

        public init(pass: Bool, fetch: Bool, force: Bool) {
            self.pass = pass
            self.fetch = fetch
            self.force = force
        }
    }

    public mutating func due(now: Double, triggered: Bool, scheduleDue: Int64?, generationMoved: Bool) -> Due {
        let learning = scheduleDue.map { Int64(now) >= $0 && $0 != handledDue } ?? false
        let poll = now >= nextPoll, resyncing = now >= nextResync
        guard triggered || learning || generationMoved || poll || resyncing else { return Due(pass: false, fetch: false, force: false) }
        if learning { handledDue = scheduleDue }
        if resyncing { nextResync = now + resync }
        return Due(pass: true, fetch: triggered || poll, force: triggered || learning || resyncing)
    }

    /// After a pass that polled: the next poll is an interval away, or after a failure a backoff
    /// of 1 s, 2 s, 4 s … (never beyond the interval); both with `jitter` (a factor near 1).
    public mutating func polled(ok: Bool, failures: Int, now: Double, jitter: Double) {
        let base = ok ? interval : min(interval, pow(2, Double(min(max(failures - 1, 0), 16))))
        nextPoll = now + base * jitter
    }

    /// When the loop must wake up next, with nothing happening.
    public func deadline(scheduleDue: Int64?) -> Double {
        var deadline = min(nextPoll, nextResync)
        if let due = scheduleDue, due != handledDue { deadline = min(deadline, Double(due)) }
        return deadline
    }
}

/// `cairn serve`'s reconcile loop: polls the source every interval (with jitter), and runs a
/// pass on a new revision, a changed observed state (a finished training run), a due learning
/// schedule, a webhook, and at least every `resync`. A pass with nothing new returns at once:
/// no parsing, no database writes. Between passes it sleeps until the next deadline or an
/// event; failures back off.
public final class ReconcileLoop: Sendable {
    /// `cairn serve`'s interval, resync and planner options.
    public struct Configuration: Sendable {
        /// Seconds between polls of the source (±10% jitter).
        public var interval: Double
        /// Seconds after which a pass runs even with nothing new.
        public var resync: Double
        public var planner: PlannerOptions
        /// How often the observed state is looked at for changes made by other processes (a
        /// `cairn worker` elsewhere, `cairn rollback`); this process's own changes wake the loop at once.
        public var observeEvery: Double

        public init(interval: Double, resync: Double, planner: PlannerOptions, observeEvery: Double = 2) {
            self.interval = interval
            self.resync = resync
            self.planner = planner
            self.observeEvery = observeEvery
        }
    }

    public let status: ReconcileStatus
    let source: ManifestSource
    let store: RegistryStore
    public let clock: Clock
    let configuration: Configuration
    let observer: ReconcileObserver
    let jitter: @Sendable () -> Double
    let wakeup = Wakeup()
    let triggered = Locked(false)

    public init(source: ManifestSource, store: RegistryStore, clock: Clock, configuration: Configuration, observer: ReconcileObserver,
                jitter: @escaping @Sendable () -> Double = { Double.random(in: 0.9...1.1) }) {
        self.source = source
        self.store = store
        self.clock = clock
        self.configuration = configuration
        self.observer = observer
        self.jitter = jitter
        status = ReconcileStatus(clock: clock)
    }

    /// Asks for a pass with a fetch as soon as possible (a webhook, `POST /v1/reconcile`).
    public func trigger() {
        triggered.update { $0 = true }
        wakeup.signal()
    }

    /// The observed state moved in this process (a training run finished): look at once.
    public func observedChanged() { wakeup.signal() }

    /// Runs until `stop` is set; the current pass is finished first.
    public func run(stop: StopFlag) {
        stop.wakes(wakeup)
        var schedule = Schedule(interval: configuration.interval, resync: configuration.resync, start: clock.now())
        while !stop.isSet {
            let now = clock.now()
            let triggered = self.triggered.update { value -> Bool in
                defer { value = false }
                return value
            }
            // An unreadable database is not "moved": the failing pass then backs off like any other.
            let generation = try? store.generation()
            let moved = generation.map { $0 != status.lastGeneration } ?? false
            let due = schedule.due(now: now, triggered: triggered, scheduleDue: status.nextScheduleDue, generationMoved: moved)
            if due.pass {
                let ok = pass(fetch: due.fetch, force: due.force)
                if now >= schedule.nextPoll || triggered {
                    schedule.polled(ok: ok, failures: status.failures, now: clock.now(), jitter: jitter())
                }
            }
            guard !stop.isSet else { break }
            let deadline = min(schedule.deadline(scheduleDue: status.nextScheduleDue), clock.now() + configuration.observeEvery)
            clock.wait(on: wakeup, until: deadline)
        }
    }

    /// One pass. Returns false when it failed; true when it succeeded or found nothing new.
    @discardableResult
    public func pass(fetch: Bool, force: Bool) -> Bool {
        let started = clock.now()
        if fetch || source.needsRefresh {
            let cached = !source.needsRefresh
            do {
                try source.refresh()
                if status.sourceProblem != nil { observer.sourceChanged(stale: nil) }
                status.sourceRefreshed()
            } catch where cached {
                // The remote is unreachable but its cache is not: passes go on from it, and the
                // status says so (Ready, reason SourceStale) until a fetch succeeds, without flapping.
                if status.sourceProblem == nil { observer.sourceChanged(stale: "\(error)") }
                status.sourceStale("\(error)")
            } catch {
                // Rule 9: a source that cannot be read prunes nothing; the last applied state keeps serving.
                fail(revision: nil, reason: "SourceUnavailable", message: "\(error)", result: "source_error", started: started,
                     generation: try? store.generation())
                return false
            }
        }
        do {
            let (revision, generation) = (try source.resolve(), try store.generation())
            // Nothing new since a pass that succeeded (or a revision known to be invalid): skip.
            // Online evidence (shadow answers, feedback) moves without the generation: a revision
            // that decides on it is planned again at every poll.
            let watching = status.desired?.decidesOnEvidence ?? false
            let unchanged = !status.isStalled && revision == status.lastAttemptedRevision && generation == status.lastGeneration && !watching
            if !force, unchanged || revision == status.invalidRevision {
                // Nothing new: the next poll is an interval away, even while an invalid revision stalls the loop.
                status.passSkipped()
                observer.passSkipped()
                return true
            }
            status.passStarted(revision: revision)
            let desired: DesiredState
            do {
                desired = try ReconcilePass.read(source, recordingIn: store, recording: .failures(limit: 5, sourceErrors: false), clock: clock)
            } catch let invalid as ReconcilePass.InvalidRevision {
                // Rule 8: an invalid revision is applied not at all.
                fail(revision: revision, reason: "ValidationFailed", message: ReconcilePass.invalidMessage(invalid.read.diagnostics.errors, limit: 5),
                     result: "invalid", started: started, generation: try? store.generation(), invalid: true)
                return false
            }
            let outcome = try ReconcilePass.run(desired, source: source, store: store, options: configuration.planner, actor: "reconciler",
                                                lockWait: 10, clock: clock)
            let after = try store.observedState()
            status.passRan()
            observer.passSucceeded(plan: outcome.plan, desired: desired, observed: outcome.observed, after: after, duration: clock.now() - started)
            status.passSucceeded(desired: desired, generation: after.generation, plan: outcome.plan,
                                 nextScheduleDue: Planner.nextScheduledTraining(desired: desired, observed: after))
            return true
        } catch let error as CairnError where error.reason == .untrustedRevision {
            // Like an invalid revision: not applied, and not tried again until the revision moves
            // (or a pass is asked for, after the trust files changed); the last good one keeps serving.
            // Recorded once (it is not tried again), with its stall event.
            try? store.recordFailedPass(revision: status.lastAttemptedRevision, revisionName: source.revisionName, result: "untrusted",
                                        message: error.message, at: clock.unixNow())
            fail(revision: status.lastAttemptedRevision, reason: "UntrustedRevision", message: error.message, result: "untrusted", started: started,
                 generation: try? store.generation(), invalid: true)
            return false
        } catch let error as CairnError where error.reason == .registryTampered {
            fail(revision: nil, reason: "RegistryTampered", message: error.message, result: "failed", started: started, generation: try? store.generation())
            return false
        } catch {
            fail(revision: nil, reason: "PassFailed", message: "\(error)", result: "failed", started: started, generation: try? store.generation())
            return false
        }
    }

    func fail(revision: String?, reason: String, message: String, result: String, started: Double, generation: Int? = nil, invalid: Bool = false) {
        status.passRan()
        status.passFailed(revision: revision, generation: generation, reason: reason, message: message, invalid: invalid)
        observer.passFailed(reason: reason, message: message, result: result, revision: revision, duration: clock.now() - started)
    }
}
