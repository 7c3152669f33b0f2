import CairnCore
import CairnReconcile
import CairnStore
import Foundation
import GRDB
import Testing

/// `cairn db migrate`, the built binary: a SQLite registry moved to a real PostgreSQL server
/// (and back), audit chain included, verified on arrival; refusals write nothing.
@Suite(.enabled(if: TestPostgres.available, TestPostgres.skipMessage))
struct DatabaseMigrateTests {
    /// The example fleet reconciled and trained on SQLite, with an API token.
    func trainedFleet() throws -> (ReconcileEndToEndTests.Fleet, String) {
        let fleet = try ReconcileEndToEndTests.Fleet()
        let env = Registry.env
        let first = try cairn(["reconcile", "--wait", "--repo", fleet.repo.path, "--db", fleet.dbPath], cwd: fleet.repo.path, env: env)
        #expect(first.status == 3, "\(first.stdout)\(first.stderr)")
        let token = try fleet.runDB(["token", "create", "dashboard", "--scope", "read"])
        #expect(token.status == 0, "\(token.stderr)")
        return (fleet, token.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").last.map(String.init) ?? "")
    }

    @Test func aRegistryMovesToPostgresAndBackAsTheSameRegistry() throws {
        let (fleet, token) = try trainedFleet()
        let target = try TestPostgres.freshDatabase("migrate")
        // A password on the command line is refused (the process list shows it to every local
        // user), without echoing it; one in PGPASSWORD is used and never printed.
        let withPassword = target.replacingOccurrences(of: "postgres@", with: "postgres:hunter2-secret@")
        let refused = try cairn(["db", "migrate", "--from", fleet.dbPath, "--to", withPassword])
        #expect(refused.status == 64, "\(refused.stderr)")
        #expect(refused.stderr.contains("--to must not carry a password"), "\(refused.stderr)")
        #expect(!(refused.stdout + refused.stderr).contains("hunter2-secret"))
        #expect(try cairn(["status", "--db", withPassword]).status == 64)
        let moved = try cairn(["db", "migrate", "--from", fleet.dbPath, "--to", target], env: ["PGPASSWORD": "hunter2-secret"])
        #expect(moved.status == 0, "\(moved.stdout)\(moved.stderr)")
        #expect(moved.stdout.contains("audit chain intact on arrival"))
        #expect(!(moved.stdout + moved.stderr).contains("hunter2-secret"))

        let source = try #require(try RegistryDatabase.openForReading(path: fleet.dbPath))
        let copy = try #require(try RegistryDatabase.openForReading(location: target))
        #expect(try copy.observedState() == source.observedState())
        let all = RegistryDatabase.HistoryFilter(limit: 10_000)
        #expect(try copy.history(all) == source.history(all))
        #expect(try copy.tokens() == source.tokens())
        #expect(token.hasPrefix("cairn_"), "\(token)")
        #expect(try copy.scope(ofToken: token) == .read)
        let verify = try cairn(["audit", "verify", "--db", target])
        #expect(verify.status == 0, "\(verify.stdout)")
        // The same plan from either registry: nothing to do.
        let plan = try cairn(["plan", "--repo", fleet.repo.path, "--db", target, "--detailed-exitcode"])
        #expect(plan.status == 0, "\(plan.stdout)")

        // The moved registry carries on: a new commit retrains, with run ids after the copied ones.
        let lastRun = try source.recentRuns(limit: 1).first?.id ?? 0
        try ReliabilityFleet.edit(fleet.repo, "weights/clicks-only.yaml", "no_action: 0.0", "no_action: 0.05")
        _ = try fleet.repo.commit("weights: a small reward for no action")
        let next = try cairn(["reconcile", "--repo", fleet.repo.path, "--db", target], env: Registry.env)
        #expect(next.status == 0 || next.status == 3, "\(next.stdout)\(next.stderr)")
        let runs = try copy.recentRuns(limit: 1)
        #expect(runs.first.map { $0.id > lastRun } == true, "\(runs)")

        // And back to a new SQLite file.
        let back = fleet.repo.dir.url.appendingPathComponent("back.db").path
        let returned = try cairn(["db", "migrate", "--from", target, "--to", back])
        #expect(returned.status == 0, "\(returned.stdout)\(returned.stderr)")
        let file = try #require(try RegistryDatabase.openForReading(path: back))
        #expect(try file.observedState() == copy.observedState())
        #expect(try file.verifyAudit() == nil)
    }

    @Test func aCopyIntoARegistryThatHoldsDataOrFromAnEditedOneWritesNothing() throws {
        let (fleet, _) = try trainedFleet()
        let target = try TestPostgres.freshDatabase("migrate")
        #expect(try cairn(["db", "migrate", "--from", fleet.dbPath, "--to", target]).status == 0)
        let copy = try #require(try RegistryDatabase.openForReading(location: target))
        let rows = try copy.auditCount(), generation = try copy.generation()
        let again = try cairn(["db", "migrate", "--from", fleet.dbPath, "--to", target])
        #expect(again.status == 1)
        #expect(again.stderr.contains("is not empty"), "\(again.stderr)")
        #expect(try copy.auditCount() == rows && copy.generation() == generation)

        // A decision forged in the SQLite file beside Cairn is not laundered into a new registry.
        try DatabaseQueue(path: fleet.dbPath).write { try $0.execute(sql: "UPDATE versions SET status = 'approved' WHERE status = 'pending'") }
        let fresh = try TestPostgres.freshDatabase("migrate")
        let refused = try cairn(["db", "migrate", "--from", fleet.dbPath, "--to", fresh])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("does not match its audit history"), "\(refused.stderr)")
        #expect(try RegistryDatabase.openForReading(location: fresh)?.auditCount() ?? 0 == 0)
    }
}
