import CairnCore
import CairnReconcile
import CairnTesting
import Foundation
import Testing

/// The daemon's loop on the twins and a manual clock: interval, jitter, backoff, resync,
/// webhooks and finished runs waking a pass. Time moves only when a test advances it; `settle`
/// waits until the loop has done what that made due and sleeps again.
@Suite struct SchedulingTests {
    /// Records when each pass ended, and how.
    final class Recorder: ReconcileObserver, @unchecked Sendable {
        let clock: Clock
        private let list = Locked<[(Double, String)]>([])
        init(clock: Clock) { self.clock = clock }

        var events: [(Double, String)] { list.value }

        func passSucceeded(plan: Plan, desired: DesiredState, observed: ObservedState, after: ObservedState, duration: Double) {
            list.update { $0.append((clock.now(), plan.changes.isEmpty ? "noop" : "applied")) }
        }

        func passFailed(reason: String, message: String, result: String, revision: String?, duration: Double) {
            list.update { $0.append((clock.now(), reason)) }
        }

        func sourceChanged(stale: String?) {}
    }

    /// A loop over the twins, running on its own thread until the test ends.
    final class Daemon: @unchecked Sendable {
        let rig: ReconcileCoreTests.Rig
        let recorder: Recorder
        let loop: ReconcileLoop
        let stop = StopFlag()
        let done = DispatchSemaphore(value: 0)
        let start: Double

        /// `unreachable`: a remote that was never fetched and cannot be.
        init(interval: Double = 60, resync: Double = 600, observeEvery: Double = 2, unreachable: CairnError? = nil) throws {
            rig = ReconcileCoreTests.Rig(cached: unreachable == nil)
            rig.source.failRefresh(unreachable)
            rig.source.publish(try ReconcileCoreTests.fleet("a"))
            recorder = Recorder(clock: rig.clock)
            loop = ReconcileLoop(source: rig.source, store: rig.store, clock: rig.clock,
                                 configuration: .init(interval: interval, resync: resync, planner: PlannerOptions(), observeEvery: observeEvery),
                                 observer: recorder, jitter: { 1.0 })
            start = rig.clock.now()
            let (loop, stop, done) = (loop, stop, done)
            Thread.detachNewThread {
                loop.run(stop: stop)
                done.signal()
            }
            #expect(rig.clock.settle(), "the first pass runs at once")
        }

        /// Advances the clock `seconds` in steps of `step`, letting the loop settle after each.
        func advance(_ seconds: Double, step: Double = 1) {
            var moved = 0.0
            while moved < seconds {
                rig.clock.advance(by: step)
                moved += step
                #expect(rig.clock.settle(), "the loop went back to sleep at +\(rig.clock.now() - start)s")
            }
        }

        /// Pass end times, seconds after the start.
        var passTimes: [Double] { recorder.events.map { $0.0 - start } }

        deinit {
            stop.set()
            done.wait()
        }
    }

    @Test func pollsEachIntervalAndSkipsAPassWithNothingNew() throws {
        let daemon = try Daemon(interval: 60)
        #expect(daemon.recorder.events.map(\.1) == ["applied"])
        #expect(daemon.rig.source.refreshes == 1)
        daemon.advance(59)
        #expect(daemon.rig.source.refreshes == 1, "nothing before the interval")
        daemon.advance(1)
        #expect(daemon.rig.source.refreshes == 2, "a poll at the interval")
        // The revision and the registry are unchanged: the poll skips the pass (no read, no pass counted).
        #expect(daemon.loop.status.passCounts.skipped == 1)
        #expect(daemon.rig.source.reads == 1)
        #expect(daemon.recorder.events.count == 1)
    }

    @Test func failingPassesBackOffUpToTheInterval() throws {
        let daemon = try Daemon(interval: 60, unreachable: CairnError("could not reach https://git.example.com/fleet.git"))
        #expect(daemon.passTimes == [0])
        // 1 s, 2 s, 4 s … after each failure, then the interval: not five passes a second.
        daemon.advance(250)
        #expect(daemon.passTimes == [0, 1, 3, 7, 15, 31, 63, 123, 183, 243])
        #expect(daemon.recorder.events.allSatisfy { $0.1 == "SourceUnavailable" })
        #expect(daemon.loop.status.isStalled)
        // Reachable again: the next poll succeeds, and the loop polls at the interval.
        daemon.rig.source.failRefresh(nil)
        daemon.advance(60)
        #expect(!daemon.loop.status.isStalled)
        #expect(daemon.loop.status.failures == 0)
        #expect(daemon.recorder.events.last?.1 == "applied")
    }

    /// A remote that becomes unreachable after a first fetch: passes go on from the cache and
    /// `Ready` says `SourceStale`, stably (a pass from the cache used to clear `Stalled`, so
    /// `/readyz` flapped), until a fetch succeeds.
    @Test func anUnreachableRemoteWithACacheIsStaleNotFlapping() throws {
        let daemon = try Daemon(interval: 60)
        func ready() -> (String?, String?) {
            let c = daemon.loop.status.conditions["Ready"]
            return (c?.status, c?.reason)
        }
        // The first pass applied the fleet; promotions wait for training.
        #expect(ready() == ("True", "Blocked"))
        daemon.rig.source.failRefresh(CairnError("cannot fetch https://git.example.com/fleet.git: connection refused"))
        daemon.advance(60)
        #expect(ready() == ("True", "SourceStale"))
        #expect(daemon.loop.status.conditions["Ready"]?.message.contains("connection refused") == true)
        #expect(!daemon.loop.status.isStalled)
        // A pass that does not fetch (a finished run) keeps saying so; so does every poll.
        _ = try daemon.rig.worker.runOne(stop: StopFlag())
        daemon.loop.observedChanged()
        #expect(daemon.rig.clock.settle())
        #expect(ready() == ("True", "SourceStale"))
        daemon.advance(180)
        #expect(ready() == ("True", "SourceStale"))
        #expect(!daemon.recorder.events.contains { $0.1 == "SourceUnavailable" })
        daemon.rig.source.failRefresh(nil)
        daemon.advance(60)
        #expect(ready() == ("True", "Blocked"))
        #expect(daemon.loop.status.sourceProblem == nil)
    }

    @Test func anInvalidRevisionIsReadOnceAndThenPolledAtTheInterval() throws {
        let daemon = try Daemon(interval: 60)
        daemon.rig.source.publishInvalid(commit: CommitInfo(sha: String(repeating: "e", count: 40), authorName: "x", authorEmail: "x@example.com",
                                                           time: 0, summary: "bad"),
                                         errors: [.error("unknown field 'stagee'", at: SourceLocation(file: "models/homepage.yaml", line: 12, column: 3))])
        daemon.advance(60)
        #expect(daemon.recorder.events.map(\.1) == ["applied", "ValidationFailed"])
        #expect(daemon.loop.status.isStalled)
        let (refreshes, reads) = (daemon.rig.source.refreshes, daemon.rig.source.reads)
        // Stalled on a revision known to be invalid: polled each interval, never read again.
        daemon.advance(300)
        #expect(daemon.rig.source.refreshes == refreshes + 5)
        #expect(daemon.rig.source.reads == reads)
        #expect(daemon.recorder.events.count == 2)
        // A good commit clears it at the next poll.
        daemon.rig.source.publish(try ReconcileCoreTests.fleet("f"))
        daemon.advance(60)
        #expect(!daemon.loop.status.isStalled)
    }

    @Test func aResyncForcesAPassWithNothingNew() throws {
        let daemon = try Daemon(interval: 60, resync: 300)
        daemon.rig.store.setSuspended(true)
        daemon.rig.store.setSuspended(false)
        daemon.advance(2)
        let before = daemon.recorder.events.count
        daemon.advance(240, step: 60)
        #expect(daemon.recorder.events.count == before, "polls with nothing new skip the pass")
        daemon.advance(60, step: 60)
        #expect(daemon.recorder.events.count == before + 1, "the resync at 300 s runs one")
    }

    @Test func aWebhookWakesTheLoopAtOnce() throws {
        let daemon = try Daemon(interval: 3600)
        daemon.loop.trigger()
        #expect(daemon.rig.clock.settle())
        #expect(daemon.rig.source.refreshes == 2, "fetched without waiting for the interval")
        #expect(daemon.passTimes == [0, 0], "a webhook forces a pass at once")
    }

    @Test func aFinishedRunWakesTheLoopWithoutPolling() throws {
        let daemon = try Daemon(interval: 3600, observeEvery: 3600)
        // The first pass queued training; a worker in this process finishes one run.
        let worker = TrainingWorker(store: daemon.rig.store, trainer: daemon.rig.trainer, artifacts: InMemoryArtifacts(), clock: daemon.rig.clock,
                                    finished: { daemon.loop.observedChanged() }) { _ in }
        #expect(try worker.runOne(stop: StopFlag()) != nil)
        #expect(daemon.rig.clock.settle())
        #expect(daemon.passTimes == [0, 0], "the observed state moved: one pass at once, no fetch")
        #expect(daemon.rig.source.refreshes == 1)
    }

    @Test func aDueLearningScheduleRunsOnePassThatTrains() throws {
        let daemon = try Daemon(interval: 3600, resync: 7 * 86_400)
        for _ in 0..<2 {
            _ = try daemon.rig.trainAll()
            daemon.loop.observedChanged()
            #expect(daemon.rig.clock.settle())
        }
        #expect(try daemon.rig.routes("acme-homepage") == ["homepage-recs v1 90%", "homepage-recs-b v1 10%"])
        // The loop sleeps until the schedule is due (or the next poll), not until a timer tick.
        #expect(try daemon.rig.store.activeRunCounts().queued == 0)
        daemon.advance(86_400, step: 3600)
        #expect(try daemon.rig.store.activeRunCounts().queued == 1, "homepage-recs learns every 24h")
        #expect(daemon.rig.trainer.runs.count == 5)
    }

    @Test func theScheduleIsPure() {
        var schedule = Schedule(interval: 60, resync: 600, start: 0)
        #expect(schedule.due(now: 0, triggered: false, scheduleDue: nil, generationMoved: false) == .init(pass: true, fetch: true, force: false))
        schedule.polled(ok: true, failures: 0, now: 0, jitter: 1.1)
        #expect(schedule.nextPoll == 66, "±10% jitter")
        #expect(schedule.due(now: 30, triggered: false, scheduleDue: nil, generationMoved: false).pass == false)
        #expect(schedule.due(now: 30, triggered: false, scheduleDue: nil, generationMoved: true) == .init(pass: true, fetch: false, force: false))
        #expect(schedule.due(now: 30, triggered: false, scheduleDue: 20, generationMoved: false) == .init(pass: true, fetch: false, force: true))
        #expect(schedule.due(now: 31, triggered: false, scheduleDue: 20, generationMoved: false).pass == false, "a due time triggers once")
        for (failures, wait) in [(1, 1.0), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60)] {
            schedule.polled(ok: false, failures: failures, now: 100, jitter: 1)
            #expect(schedule.nextPoll == 100 + wait, "failure \(failures)")
        }
        #expect(schedule.deadline(scheduleDue: 90) == 90)
    }
}
