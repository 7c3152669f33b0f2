import CairnCore
import CairnStore
import CairnTraining
import Foundation

/// Records decision traces off the request path. A request hands over what it served and the
/// shadows' models; one background thread scores the shadows, then writes traces in batches.
/// The hand-over never waits: past `capacity` pending traces a request's trace is dropped, and
/// past `shedDepth` the shadows are not scored (the trace says `shed`); both are counted.
public final class TraceRecorder: @unchecked Sendable {
    /// How long traces are kept, and how many at most.
    public struct Retention: Sendable {
        public var maxAge: Int64
        public var maxRows: Int

        public init(maxAge: Int64 = 7 * 86400, maxRows: Int = 1_000_000) {
            self.maxAge = maxAge
            self.maxRows = maxRows
        }
    }

    /// What the counters say (for /metrics and tests).
    public struct Counts: Sendable, Equatable {
        public var recorded = 0
        public var shed = 0
        public var dropped = 0
        public var pruned = 0
        public var writeFailures = 0
    }

    struct Pending {
        var trace: DecisionTrace
        var history: [String]
        var shadows: [(route: LiveRoute, model: RecommenderModel)]
    }

    let db: RegistryDatabase
    let retention: Retention
    let capacity: Int
    let shedDepth: Int
    let flushInterval: TimeInterval
    private let condition = NSCondition()
    private var queue: [Pending] = []
    /// Scored and not yet written, by request id (feedback may name one before it is written).
    private var unwritten: [String: DecisionTrace] = [:]
    private var counts = Counts()
    private var stopping = false
    private var stopped = false
    private var lastPrune: Date = .distantPast
    private var writtenSincePrune = 0

    public init(db: RegistryDatabase, retention: Retention = Retention(), capacity: Int = 10_000, shedDepth: Int = 1_000,
                flushInterval: TimeInterval = 0.5) {
        self.db = db
        self.retention = retention
        self.capacity = capacity
        self.shedDepth = shedDepth
        self.flushInterval = flushInterval
        let thread = Thread { [self] in run() }
        thread.name = "cairn-traces"
        thread.start()
    }

    /// Hands a served request over; never blocks on scoring or the database.
    public func submit(_ trace: DecisionTrace, history: [String], shadows: [(route: LiveRoute, model: RecommenderModel)]) {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping, queue.count < capacity else {
            counts.dropped += 1
            return
        }
        queue.append(Pending(trace: trace, history: history, shadows: shadows))
        condition.signal()
    }

    /// A trace not written yet (nil when it is written, or unknown).
    public func pending(_ requestId: String) -> DecisionTrace? {
        condition.lock()
        defer { condition.unlock() }
        return unwritten[requestId] ?? queue.first { $0.trace.requestId == requestId }?.trace
    }

    public var counters: Counts {
        condition.lock()
        defer { condition.unlock() }
        return counts
    }

    /// Scores and writes what is pending, then stops the thread.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    private func run() {
        var batch: [DecisionTrace] = []
        var lastWrite = Date()
        while true {
            condition.lock()
            while queue.isEmpty && !stopping && (batch.isEmpty || Date().timeIntervalSince(lastWrite) < flushInterval) {
                _ = condition.wait(until: batch.isEmpty ? Date().addingTimeInterval(60) : lastWrite.addingTimeInterval(flushInterval))
            }
            let taken = queue.prefix(256)
            queue.removeFirst(taken.count)
            let behind = queue.count >= shedDepth
            let finishing = stopping && queue.isEmpty
            condition.unlock()

            for var pending in taken {
                if behind || pending.shadows.isEmpty {
                    pending.trace.shed = behind && !pending.shadows.isEmpty
                } else {
                    pending.trace.shadows = pending.shadows.map { Self.score($0.route, $0.model, trace: pending.trace, history: pending.history) }
                }
                batch.append(pending.trace)
                condition.lock()
                unwritten[pending.trace.requestId] = pending.trace
                if pending.trace.shed { counts.shed += 1 }
                condition.unlock()
            }
            if !batch.isEmpty && (finishing || batch.count >= 500 || Date().timeIntervalSince(lastWrite) >= flushInterval) {
                write(batch)
                batch.removeAll()
                lastWrite = Date()
            }
            if finishing && batch.isEmpty {
                condition.lock()
                stopped = true
                condition.broadcast()
                condition.unlock()
                return
            }
        }
    }

    private func write(_ batch: [DecisionTrace]) {
        var failed = false
        do {
            try db.recordTraces(batch)
        } catch {
            failed = true
        }
        var pruned = 0
        writtenSincePrune += batch.count
        // Counting down to the newest maxRows reads that many index entries: at most once a
        // minute, or when a tenth of the limit was written since.
        if Date().timeIntervalSince(lastPrune) >= 60 || writtenSincePrune * 10 >= retention.maxRows {
            lastPrune = Date()
            writtenSincePrune = 0
            let cutoff = (Int64(Date().timeIntervalSince1970) - retention.maxAge) * 1000
            pruned = (try? db.pruneTraces(before: cutoff, keeping: retention.maxRows)) ?? 0
        }
        condition.lock()
        for trace in batch { unwritten[trace.requestId] = nil }
        if failed { counts.writeFailures += batch.count } else { counts.recorded += batch.count }
        counts.pruned += pruned
        condition.broadcast()
        condition.unlock()
    }

    /// A shadow's answer to the trace's request, timed.
    static func score(_ route: LiveRoute, _ model: RecommenderModel, trace: DecisionTrace, history: [String]) -> DecisionTrace.Shadow {
        let started = DispatchTime.now().uptimeNanoseconds
        let scored = model.recommend(user: trace.user, items: history, k: trace.k)
        let micros = Int((DispatchTime.now().uptimeNanoseconds - started) / 1000)
        let items = Recommendation(target: trace.target, route: route, user: trace.user, scored: scored).items
            .map { DecisionTrace.Scored(item: $0.item, score: $0.score) }
        return DecisionTrace.Shadow(model: route.model, version: route.version, items: items, latencyMicros: micros, served: trace.items)
    }
}
