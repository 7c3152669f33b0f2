import Foundation

/// Where the reconcile core reads the time and waits: the system clock in the binary, a
/// `ManualClock` (CairnTesting) in tests, so scheduling is tested without wall time.
public protocol Clock: Sendable {
    /// Seconds since 1970.
    func now() -> Double
    /// Blocks until `deadline` (seconds since 1970) or until `wakeup` is signalled, whichever
    /// comes first. Returns true when woken by the signal (which is then consumed).
    @discardableResult
    func wait(on wakeup: Wakeup, until deadline: Double) -> Bool
}

extension Clock {
    /// Whole seconds since 1970, as the registry records times.
    public func unixNow() -> Int64 { Int64(now()) }

    /// Waits `seconds`; nothing can wake it early.
    public func sleep(_ seconds: Double) {
        wait(on: Wakeup(), until: now() + seconds)
    }
}

/// An event a waiting loop wakes up for (a webhook, a finished training run, a stop). A signal
/// given while nobody waits is kept until the next wait takes it, so none is lost.
public final class Wakeup: @unchecked Sendable {
    let condition = NSCondition()
    var signalled = false
    var followers: [Wakeup] = []

    public init() {}

    /// Wakes the waiter (or the next one to wait).
    public func signal() {
        condition.lock()
        signalled = true
        condition.broadcast()
        let others = followers
        condition.unlock()
        for other in others { other.signal() }
    }

    /// Signals `other` too whenever this is signalled (one event, several waiters).
    public func forward(to other: Wakeup) {
        condition.lock()
        followers.append(other)
        condition.unlock()
    }

    /// A signal no wait has taken yet.
    public var isPending: Bool {
        condition.lock()
        defer { condition.unlock() }
        return signalled
    }

    /// Blocks until signalled (the signal is consumed; returns true) or until `keepWaiting`
    /// answers false when looked at again after a `poke` (returns false). For clocks whose time
    /// moves by hand.
    /// `finish` runs as the wait ends, before anyone else can see this event again (a manual
    /// clock forgets its waiter there, so a test never sees it idle after it woke).
    public func block(while keepWaiting: () -> Bool, finish: () -> Void = {}) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !signalled, keepWaiting() { condition.wait() }
        let woken = signalled
        signalled = false
        finish()
        return woken
    }

    /// Wakes the waiter to look at the time again, without signalling (a manual clock moved).
    public func poke() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}

/// The system clock: `Date()` and condition-variable waits (no polling).
public struct SystemClock: Clock {
    public init() {}

    public func now() -> Double { Date().timeIntervalSince1970 }

    @discardableResult
    public func wait(on wakeup: Wakeup, until deadline: Double) -> Bool {
        wakeup.condition.lock()
        defer { wakeup.condition.unlock() }
        while !wakeup.signalled {
            if !wakeup.condition.wait(until: Date(timeIntervalSince1970: deadline)) { break }
        }
        let woken = wakeup.signalled
        wakeup.signalled = false
        return woken
    }
}

/// Answers "should I stop?" from any thread, and wakes whoever waits on it.
public final class StopFlag: Sendable {
    private let stopped = Locked(false)
    private let event = Wakeup()

    public init() {}

    public var isSet: Bool { stopped.value }

    public func set() {
        stopped.update { $0 = true }
        event.signal()
    }

    /// `wakeup` is signalled when the flag is set (at once if it is set already).
    public func wakes(_ wakeup: Wakeup) {
        event.forward(to: wakeup)
        if isSet { wakeup.signal() }
    }
}
