import CairnReconcile
import Foundation

/// A clock that moves only when a test says so. Waits block until the test advances the time
/// past their deadline or their event is signalled; `waitForSleepers` lets a test know a loop
/// has gone back to sleep, so scheduling is tested without wall time and without sleeps.
public final class ManualClock: Clock, @unchecked Sendable {
    private let lock = NSCondition()
    private var time: Double
    private var sleepers: [ObjectIdentifier: Wakeup] = [:]
    private var deadlines: [ObjectIdentifier: Double] = [:]
    /// Moves whenever a waiter parks or leaves, so `settle` can tell that what it looked at held still.
    private var parkings = 0

    /// Waits on a clock that `advancesOnWait` move its time to their deadline at once
    /// (single-threaded code that sleeps, such as waiting out a lease).
    private let advancesOnWait: Bool

    public init(at start: Double = 1_800_000_000, advancesOnWait: Bool = false) {
        time = start
        self.advancesOnWait = advancesOnWait
    }

    public func now() -> Double { lock.withLock { time } }

    @discardableResult
    public func wait(on wakeup: Wakeup, until deadline: Double) -> Bool {
        if advancesOnWait, !wakeup.isPending {
            lock.withLock { time = max(time, deadline) }
            return false
        }
        let id = ObjectIdentifier(wakeup)
        lock.withLock {
            sleepers[id] = wakeup
            deadlines[id] = deadline
            parkings += 1
            lock.broadcast()
        }
        return wakeup.block(while: { now() < deadline }, finish: {
            lock.withLock {
                sleepers[id] = nil
                deadlines[id] = nil
                parkings += 1
                lock.broadcast()
            }
        })
    }

    /// Moves the time forward and wakes every waiter whose deadline has come.
    public func advance(by seconds: Double) {
        let waiting = lock.withLock {
            time += seconds
            return Array(sleepers.values)
        }
        for w in waiting { w.poke() }
    }

    /// Blocks until `count` loops are parked and idle: each waits for a deadline still ahead
    /// and has no event pending (so it has finished what the last `advance` or signal made it
    /// do). False if that does not happen within `timeout` seconds of real time (a hung or
    /// spinning loop fails the test instead of hanging it). Returns true at once when `unless`
    /// answers true (the loop has ended).
    @discardableResult
    public func settle(_ count: Int = 1, timeout: Double = 10, unless ended: () -> Bool = { false }) -> Bool {
        let limit = Date().addingTimeInterval(timeout)
        while true {
            // Read under the clock's lock, look at the events outside it (a waiter holds its
            // event's lock while it reads the time).
            let (parked, ahead, waiting, seen) = lock.withLock {
                (sleepers.count, deadlines.values.allSatisfy { $0 > time }, Array(sleepers.values), parkings)
            }
            // A waiter may take its event between the two looks (and then runs, though it was
            // parked a moment ago): idle only if nobody parked or left meanwhile.
            if parked >= count, ahead, !waiting.contains(where: { $0.isPending }), lock.withLock({ parkings == seen }) { return true }
            if ended() { return true }
            if Date() >= limit { return false }
            lock.withLock { _ = lock.wait(until: min(limit, Date().addingTimeInterval(0.002))) }
        }
    }

    /// The earliest deadline a waiter has, if any waits.
    public var nextDeadline: Double? { lock.withLock { deadlines.values.min() } }
}
