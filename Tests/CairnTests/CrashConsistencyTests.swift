import CairnCore
@testable import CairnTraining
import Foundation
import Testing

/// SIGKILLs `cairn reconcile` and `cairn worker` while a fleet is applied and trained, checks the
/// promises after every kill, and checks that carrying on converges to the state an
/// uninterrupted run reaches. Every run starts with two aimed trials, each retried until its kill
/// lands: a reconcile killed the moment one of its apply steps has committed, and a worker
/// killed while it trains. Then come trials with kills at moments drawn from seeds: a fixed,
/// printed list in CI (CAIRN_CRASH_SEEDS), any number by hand (`make crash`: CAIRN_CRASH_TRIALS,
/// CAIRN_CRASH_PADDING, CAIRN_CRASH_SEED for the first seed of a run).
@Suite(.serialized) struct CrashConsistencyTests {
    /// The seeds of a run: CAIRN_CRASH_SEEDS (comma-separated), else CAIRN_CRASH_SEED and the
    /// seeds after it, else a fixed list; so every CI run kills at the same moments.
    static func seeds(trials: Int) -> [UInt64] {
        let env = ProcessInfo.processInfo.environment
        if let list = env["CAIRN_CRASH_SEEDS"] {
            return list.split(separator: ",").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        }
        let first = env["CAIRN_CRASH_SEED"].flatMap(UInt64.init) ?? 20_261_125
        return (0..<UInt64(trials)).map { first &+ $0 }
    }

    /// On PostgreSQL too: the trials' registry is a PostgreSQL database, the reference SQLite.
    @Test(arguments: Backend.available) func killedReconcilesAndWorkersLoseNothingAndConverge(_ backend: Backend) throws {
        let padding = Reliability.setting("CAIRN_CRASH_PADDING", 40)
        let seeds = Self.seeds(trials: Reliability.setting("CAIRN_CRASH_TRIALS", 2))
        print("crash suite: aimed trials, then seeds \(seeds.map(String.init).joined(separator: ",")) (replay one with CAIRN_CRASH_SEEDS=…)")
        let fleet = try ReliabilityFleet(padding: padding)

        let reference = try Registry("cairn-crash-reference")
        let timeline = try drive(fleet, into: reference)
        #expect(try reference.violations() == [])
        let expected = try reference.dump()
        #expect(expected.contains("version model=\"homepage-recs-b\" number=2"), "the second commit retrains popular-now models")

        var injected = 0, missed = 0, brokenAfterKill = 0, diverged = 0, trialsRun = 0
        var classes: [String: Int] = [:]
        var extraInvocations = 0
        /// One trial: drives the fleet into a fresh registry with `kills`; false when no kill landed.
        func trial(_ label: String, _ kills: [Int: Kill]) throws -> Bool {
            trialsRun += 1
            let registry = try Registry("cairn-crash-\(trialsRun)", backend: backend)
            var landed = 0
            let invocations: [Invocation]
            do {
                invocations = try drive(fleet, into: registry, kills: kills) { killed, auditBefore, running in
                    injected += 1
                    landed += 1
                    let written = try registry.auditRows() - auditBefore
                    let where_ = killed.kind == "reconcile"
                        ? (written == 0 ? "reconcile: before its first step committed" : "reconcile: after a step committed")
                        : (running > 0 ? "worker: during training" : "worker: outside training")
                    classes[where_, default: 0] += 1
                    let broken = try registry.violations()
                    if !broken.isEmpty { brokenAfterKill += 1 }
                    #expect(broken == [], "\(label), after killing \(killed.kind) at \(String(format: "%.3f", killed.seconds))s")
                }
            } catch {
                // The driver's own errors name the trial too, so a failing CI run can be replayed.
                throw FixtureError("\(label), kills \(kills.mapValues(\.description)): \(error)")
            }
            missed += kills.count - landed
            extraInvocations += invocations.count - timeline.count
            #expect(try registry.violations() == [], "\(label) after convergence")
            let state = try registry.dump()
            if state != expected {
                diverged += 1
                let a = Set(expected.split(separator: "\n")), b = Set(state.split(separator: "\n"))
                Issue.record("\(label), kills \(kills.mapValues(\.description)) converged elsewhere.\nonly in reference:\n\(a.subtracting(b).sorted().joined(separator: "\n"))\nonly in trial:\n\(b.subtracting(a).sorted().joined(separator: "\n"))")
            }
            return landed > 0
        }

        // Aimed: the first reconcile once a step committed (invocation 0), the first worker while
        // it trains (invocation 1). A kill that finds the process already gone is tried again.
        for (label, kills) in [("aimed: reconcile after a committed step", [0: Kill.afterCommittedStep]),
                               ("aimed: worker during training", [1: Kill.duringTraining])] {
            var attempts = 0
            while try !trial(label, kills) {
                attempts += 1
                try #require(attempts < 5, "\(label): the kill never landed in 5 attempts")
            }
        }
        #expect(classes["reconcile: after a step committed", default: 0] >= 1, "\(classes)")
        #expect(classes["worker: during training", default: 0] >= 1, "\(classes)")

        // Seeded: one or two kills, each at a random invocation, at a random moment of its
        // reference duration; half of a reconcile's kills aim at the last 40% of it (it applies
        // at the end, after reading and planning).
        for seed in seeds {
            var rng = SplitMix64(state: seed)
            var kills: [Int: Kill] = [:]
            for _ in 0..<Int.random(in: 1...2, using: &rng) {
                let index = Int.random(in: 0..<timeline.count, using: &rng)
                let seconds = timeline[index].seconds
                kills[index] = .after(timeline[index].kind == "reconcile" && Bool.random(using: &rng)
                    ? Double.random(in: (seconds * 0.6)...(seconds * 1.05), using: &rng)
                    : Double.random(in: 0...(seconds * 1.1), using: &rng))
            }
            _ = try trial("seed \(seed)", kills)
        }
        #expect(injected >= 2, "the aimed kills landed")
        try Reliability.report(backend == .sqlite ? "crash" : "crash-postgres", [
            "trials": trialsRun, "paddingModels": padding, "seeds": seeds.map(String.init).joined(separator: ","),
            "killsInjected": injected, "killsMissed": missed,
            "killsBy": classes, "brokenAfterKill": brokenAfterKill, "diverged": diverged,
            "referenceInvocations": timeline.count, "extraInvocationsToRecover": extraInvocations,
        ])
    }
}
