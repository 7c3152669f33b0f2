import CairnCore
import Foundation
import Testing

/// Each numbered reconcile rule (the README's "Rules"), stated against its golden case.
@Suite struct PlannerRuleTests {
    func plan(_ name: String) throws -> Plan { try PlannerCase(name: name).run() }

    func actions(_ plan: Plan, _ address: String) -> [Action] {
        plan.changes.filter { $0.address.description == address }.map(\.action)
    }

    @Test func rule1DefaultsAreInert() throws {
        let p = try plan("02-defaults-inert")
        #expect(actions(p, "Model/draft-m") == [.create])
        #expect(p.blocked.contains { $0.address.description == "ServingTarget/draft-target" && $0.reason.contains("Model/draft-m is draft") })
        #expect(!p.changes.contains { $0.action == .promote })
    }

    @Test func rule2PromotionNeedsAnApprovedVersionOfAnActiveModel() throws {
        let p = try plan("04-pending-and-running")
        #expect(p.changes.isEmpty)
        #expect(p.blocked.map(\.reason) == ["route home-b: v1 is pending approval",
                                            "route home-a: v3 does not exist yet (training run 7 is running)"])
    }

    @Test func rule3NewChampionDemotesTheOldOneInTheSameStep() throws {
        let p = try plan("05-champion-swap")
        let demote = try #require(p.changes.first { $0.action == .demote })
        #expect(demote.address.description == "Model/home-a")
        #expect(demote.appliedWith?.description == "Model/home-b")
        #expect(actions(p, "Model/home-b") == [.stage])
    }

    @Test func rule4RoutedModelsAreNotArchived() throws {
        let p = try plan("06-archive-routed")
        #expect(p.blocked.contains {
            $0.action == .archive && $0.address.description == "Model/home-b"
                && $0.reason.hasPrefix("Cannot archive model with active deployments. Remove it from serving targets first.")
        })
        #expect(actions(p, "Model/home-c") == [.archive])
    }

    @Test func rule5TraitsFreezeOnceReady() throws {
        let p = try plan("07-traits-frozen")
        #expect(p.changes.isEmpty)
        #expect(p.blocked.first?.reason.contains("a new standard is a new model") == true)
    }

    @Test func rule6FailedRunLeavesTheLiveVersion() throws {
        let p = try plan("08-failed-run")
        #expect(!p.changes.contains { $0.action == .promote || $0.action == .train })
        #expect(p.blocked.contains { $0.action == .train && $0.reason.hasPrefix("training run 9 failed") })
    }

    @Test func rule7RetrainingCreatesTheNextNumber() throws {
        let p = try plan("09-retrain-token")
        let train = try #require(p.changes.first { $0.action == .train })
        #expect(train.version == 2)
        #expect(train.reason.hasSuffix("retrainToken changed"))
        #expect(!p.changes.contains { $0.action == .promote })
    }

    @Test func rule10SteadyStatePlansNothing() throws {
        let p = try plan("03-steady-state")
        #expect(p.changes.isEmpty && p.blocked.isEmpty && p.drift.isEmpty)
    }

    @Test func rule11DriftIsShownAndReverted() throws {
        let p = try plan("10-drift")
        #expect(p.drift.count == 1)
        #expect(p.drift.first?.actor == "alice")
        #expect(p.changes.first { $0.action == .promote }?.reason.hasPrefix("revert drift: home-a v1 → v2") == true)
    }

    @Test func rule12BulkPromotionsAreRefused() throws {
        let p = try plan("11-bulk-guard")
        #expect(!p.changes.contains { $0.action == .promote })
        #expect(p.blocked.count == 2 && p.blocked.allSatisfy { $0.reason.hasPrefix("bulk guard") })
    }

    @Test func rule12TakingRoutesOffTheAirCountsLikePromoting() throws {
        let p = try plan("18-bulk-guard-removals")
        #expect(p.changes.isEmpty, "no target is unassigned")
        #expect(p.blocked.map(\.address.description) == ["ServingTarget/acme", "ServingTarget/globex"])
        #expect(p.blocked.allSatisfy { $0.action == .archive && $0.reason.contains("takes 3 off the air") })
    }

    @Test func gatesAndDecisions() throws {
        let p = try plan("12-gated-and-decisions")
        let decided = p.changes.filter { $0.action == .approve || $0.action == .reject }.map { "\($0.action.rawValue) \($0.name) v\($0.version!)" }
        #expect(decided == ["approve home-a v2", "reject home-a v3", "reject home-a v4", "reject home-a v5", "approve home-b v2"])
        #expect(p.blocked.contains { $0.action == .reject && $0.version == 1 && $0.reason.contains("is live on ServingTarget/acme") })
    }

    @Test func pruneArchivesAndUnassigns() throws {
        let p = try plan("13-prune")
        #expect(p.changes.map { "\($0.action.rawValue) \($0.address)" } == ["archive Template/t2", "archive Model/home-c", "archive ServingTarget/globex"])
    }

    @Test func learningScheduleTrainsWhenDue() throws {
        // The dataset is outside git: only a run can tell whether it changed.
        let p = try plan("14-learning-schedule")
        #expect(p.changes.map(\.address.description) == ["Model/home-a"])
        #expect(p.skipped.isEmpty)
    }

    /// A schedule falling due on unchanged inputs, the dataset in git included, trains nothing
    /// (it made a byte-identical version that gates approved and put live); the plan says why.
    @Test func aDueScheduleWithTheSameDataInGitIsSkipped() throws {
        let p = try plan("19-schedule-unchanged-data")
        #expect(p.changes.isEmpty)
        #expect(p.skipped.map { "\($0.action.rawValue) \($0.address)" } == ["train Model/home-a"])
        #expect(p.skipped.first?.reason.hasPrefix("learning schedule due (every 1d), but v1 was trained on these exact inputs, dataset included") == true)
    }

    @Test func rollbackIsAPromotionToAnOlderNumber() throws {
        let p = try plan("15-rollback-by-number")
        #expect(p.changes.first?.reason == "rollback: home-a v2 → v1 (90%)")
    }

    /// A run of older inputs is cancelled whether it waits or trains: a running trainer (a Slurm
    /// job holding GPUs) would only produce a version of inputs git no longer has.
    @Test func newFingerprintCancelsQueuedAndRunningRuns() throws {
        let p = try plan("16-superseded-run")
        let changeA = try #require(p.changes.first { $0.action == .train && $0.name == "home-a" })
        let changeB = try #require(p.changes.first { $0.action == .train && $0.name == "home-b" })
        let a = try #require(changeA.after).decode(TrainRequest.self)
        let b = try #require(changeB.after).decode(TrainRequest.self)
        #expect(a.supersedes == [11])
        #expect(b.supersedes == [12])
        #expect(changeA.reason.hasSuffix("; cancels queued run 11"), "\(changeA.reason)")
        #expect(changeB.reason.hasSuffix("; cancels running run 12"), "\(changeB.reason)")
    }

    @Test func shadowsMayScorePendingVersions() throws {
        let p = try plan("17-shadow-pending")
        let payload = try #require(p.changes.first { $0.action == .promote }?.after)
        let after = try payload.decode(Assignment.self)
        #expect(after.shadow == [LiveRoute(model: "home-b", version: 2, weight: 0)])
        #expect(p.blocked.contains { $0.reason.hasPrefix("shadow home-b-next") })
    }

    @Test func orderingFollowsPhasesThenKindThenName() throws {
        let p = try plan("01-fresh-fleet")
        let phases = p.changes.map(\.action.phase)
        #expect(phases == phases.sorted())
        #expect(p.changes.prefix(2).map(\.address.description) == ["OutcomeWeights/w", "Template/t"])
    }
}

@Suite struct PayloadTests {
    @Test func trainPayloadsAreWhatTheirTypeEncodesTo() throws {
        let p = try PlannerCase(name: "16-superseded-run").run()
        for change in p.changes where change.action == .train {
            let payload = try #require(change.after)
            let request = try payload.decode(TrainRequest.self)
            #expect(JSONValue.from(request) == payload)
        }
    }

    @Test func fingerprintInputsBuildTheJSONTheirTypeEncodesTo() {
        for token in [nil, "2026-12-q4"] {
            let inputs = FingerprintInputs(template: "t", dataset: "uri:s3://x", weights: "w", traits: ["b", "a"], retrainToken: token)
            #expect(inputs.jsonValue == JSONValue.from(inputs))
        }
    }

    @Test func encoderMatchesTheJSONTextRoundTrip() throws {
        let p = try PlannerCase(name: "12-gated-and-decisions").run()
        let viaText = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(p))
        #expect(JSONValue.from(p) == viaText)
    }
}

@Suite struct ScheduleTests {
    @Test func aModelAlreadyTrainingIsNotDue() throws {
        let c = PlannerCase(name: "14-learning-schedule")
        let (loaded, tree) = try PlannerCase.load(c.folder.appendingPathComponent("desired"))
        let desired = try PlannerCase.desiredState(loaded, tree)
        let fixture = try JSONDecoder().decode(ObservedFixture.self, from: Data(contentsOf: c.folder.appendingPathComponent("observed.json")))
        var observed = try fixture.build(previous: desired, desired: desired)
        // home-a's last run finished 1799910000 and learns every 24h; home-b every 2d.
        #expect(Planner.nextScheduledTraining(desired: desired, observed: observed) == Int64(1_799_910_000 + 86_400))
        observed.runs.append(TrainingRun(id: 9, model: "home-a", fingerprint: "f", state: .running, createdAt: 1_799_999_000))
        #expect(Planner.nextScheduledTraining(desired: desired, observed: observed) == Int64(1_799_910_000 + 2 * 86_400))
    }
}
