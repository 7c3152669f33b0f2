@testable import CairnTraining
import Foundation
import Testing

/// SIGKILLs `cairn reconcile` and `cairn worker` at random moments while a fleet is applied and
/// trained, checks the promises after every kill, and checks that carrying on converges to the
/// state an uninterrupted run reaches. CI runs a few trials; `make crash` runs the full size
/// (CAIRN_CRASH_TRIALS, CAIRN_CRASH_PADDING, CAIRN_CRASH_SEED).
@Suite(.serialized) struct CrashConsistencyTests {
    @Test func killedReconcilesAndWorkersLoseNothingAndConverge() throws {
        let trials = Reliability.setting("CAIRN_CRASH_TRIALS", 3)
        let padding = Reliability.setting("CAIRN_CRASH_PADDING", 40)
        let seed = UInt64(Reliability.setting("CAIRN_CRASH_SEED", Int(UInt32.random(in: 1...UInt32.max))))
        let fleet = try ReliabilityFleet(padding: padding)

        let reference = Registry("cairn-crash-reference")
        let timeline = try drive(fleet, into: reference)
        #expect(try reference.violations() == [])
        let expected = try reference.dump()
        #expect(expected.contains("version model=\"homepage-recs-b\" number=2"), "the second commit retrains popular-now models")

        // Seeded, so a failing trial can be replayed (CAIRN_CRASH_SEED).
        var rng = SplitMix64(state: seed)
        var injected = 0, missed = 0, brokenAfterKill = 0, diverged = 0
        var classes: [String: Int] = [:]
        var extraInvocations = 0
        for trial in 0..<trials {
            // One or two kills, each at a random invocation, at a random moment of its reference
            // duration. A reconcile applies at the end of its run, after reading and planning, so
            // half of its kills aim at the last 40% of it.
            var kills: [Int: Double] = [:]
            for _ in 0..<Int.random(in: 1...2, using: &rng) {
                let index = Int.random(in: 0..<timeline.count, using: &rng)
                let seconds = timeline[index].seconds
                kills[index] = timeline[index].kind == "reconcile" && Bool.random(using: &rng)
                    ? Double.random(in: (seconds * 0.6)...(seconds * 1.05), using: &rng)
                    : Double.random(in: 0...(seconds * 1.1), using: &rng)
            }
            let registry = Registry("cairn-crash-\(trial)")
            let invocations = try drive(fleet, into: registry, kills: kills) { killed, auditBefore, running in
                injected += 1
                let written = try registry.auditRows() - auditBefore
                let where_ = killed.kind == "reconcile"
                    ? (written == 0 ? "reconcile: before its first step committed" : "reconcile: after a step committed")
                    : (running > 0 ? "worker: during training" : "worker: outside training")
                classes[where_, default: 0] += 1
                let broken = try registry.violations()
                if !broken.isEmpty { brokenAfterKill += 1 }
                #expect(broken == [], "trial \(trial) (seed \(seed)), after killing \(killed.kind) at \(killed.seconds)s")
            }
            missed += kills.count - invocations.filter(\.killed).count
            extraInvocations += invocations.count - timeline.count
            #expect(try registry.violations() == [], "trial \(trial) (seed \(seed)) after convergence")
            let state = try registry.dump()
            if state != expected {
                diverged += 1
                let a = Set(expected.split(separator: "\n")), b = Set(state.split(separator: "\n"))
                Issue.record("trial \(trial) (seed \(seed), kills \(kills)) converged elsewhere.\nonly in reference:\n\(a.subtracting(b).sorted().joined(separator: "\n"))\nonly in trial:\n\(b.subtracting(a).sorted().joined(separator: "\n"))")
            }
        }
        #expect(injected > 0 || trials == 0, "no kill landed")
        try Reliability.report("crash", [
            "trials": trials, "paddingModels": padding, "seed": seed, "killsInjected": injected, "killsMissed": missed,
            "killsBy": classes, "brokenAfterKill": brokenAfterKill, "diverged": diverged,
            "referenceInvocations": timeline.count, "extraInvocationsToRecover": extraInvocations,
        ])
    }
}
