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

/// The rules on online evidence: shadow evidence, registry ladders, rollback guards.
extension PlannerRuleTests {
    @Test func ruleShadowEvidenceHoldsApprovalsAndPromotionsUntilItIsThere() throws {
        let p = try plan("20-shadow-evidence")
        // Listed for approval, too few traced requests: blocked, saying how many.
        #expect(p.blocked.contains { $0.address.description == "Model/home-a" && $0.version == 2 && $0.reason == "shadow evidence: 80 of 100 traced requests" })
        // Gates pass and the evidence is there: approved, the evidence in the reason.
        let approved = try #require(p.changes.first { $0.action == .approve && $0.address.description == "Model/home-b" })
        #expect(approved.version == 2 && approved.reason.contains("shadow evidence: 150 traced requests"))
        // Gates pass, evidence missing: it stays pending (neither approved nor rejected).
        #expect(!p.changes.contains { $0.address.description == "Model/home-b" && $0.version == 3 })
        #expect(p.blocked.contains { $0.version == 3 && $0.reason.hasSuffix("waits for shadow evidence: 10 of 100 traced requests") })
        // Required for promotion: the route does not go live, the target keeps what it serves.
        #expect(p.blocked.contains { $0.address.description == "ServingTarget/globex" && $0.reason == "route home-c v2: shadow evidence: 20 of 50 traced requests" })
        #expect(!p.changes.contains { $0.action == .promote })
    }

    @Test func ruleLadderStepsAreClimbedOneAtATimeWithTheirEvidence() throws {
        let p = try plan("21-ladder")
        #expect(actions(p, "Model/home-b") == [.stage])
        #expect(actions(p, "Model/home-d") == [.stage], "moving down needs no evidence")
        #expect(p.blocked.contains { $0.address.description == "Model/home-c" && $0.reason.contains("from none the next step is shadow, not champion") })
        #expect(p.blocked.contains { $0.address.description == "Model/home-e" && $0.reason.contains("mean overlap@k 0.1 < 0.2") })
        // The champion keeps its place (and its routes) while its successor is held back.
        #expect(p.blocked.contains { $0.address.description == "Model/home-a" && $0.reason.hasPrefix("stays champion") })
        #expect(!p.changes.contains { $0.action == .demote || $0.action == .promote })
        // The stage change records what it was decided on.
        let move = try #require(try p.changes.first { $0.address.description == "Model/home-b" }?.after?.decode(StageMove.self))
        #expect(move.version == 1 && move.metrics?["ndcg@10"] == 0.31)
    }

    @Test func ruleATrippedGuardRollsBackOnceAndHoldsUntilACommit() throws {
        let p = try plan("22-rollback-guard")
        let rollback = try #require(p.changes.first { $0.address.description == "ServingTarget/acme" })
        #expect(rollback.reason.hasPrefix("rollback guard tripped: home-b v1 reward 0.03/request"))
        let after = try #require(try rollback.after?.decode(Assignment.self))
        #expect(after.routes == [LiveRoute(model: "home-a", version: 1, weight: 100)])
        #expect(after.drift?.guarded == [LiveRoute(model: "home-b", version: 1, weight: 100)] && after.drift?.actor == "rollback-guard")
        // Already tripped: held, shown as drift, not promoted back.
        #expect(p.drift.map(\.address.description) == ["ServingTarget/globex"])
        #expect(p.blocked.contains { $0.address.description == "ServingTarget/globex" && $0.reason.contains("until a commit changes its routes") })
        // Too few requests to judge: nothing.
        #expect(!p.changes.contains { $0.address.description == "ServingTarget/initech" })
        // A change to a live split shows its readout.
        #expect(p.readouts.map(\.target) == ["split"])
        let promote = try #require(try p.changes.first { $0.address.description == "ServingTarget/split" }?.after?.decode(Assignment.self))
        #expect(promote.decidedOn?["home-a@1"]?["ndcg@10"] == 0.3)
    }
}
