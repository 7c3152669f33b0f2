import CairnCore
import CairnStore
import Foundation
import Testing

/// Durable notifications: events written with the audit rows they report, delivered by
/// `cairn serve` to real HTTP receivers on 127.0.0.1 (Tests/Receivers/receiver.py).
@Suite(.serialized) struct NotificationTests {
    /// A receiver process and what it logged.
    final class Receiver: @unchecked Sendable {
        let dir = TempDir("cairn-receiver")
        let process: Process
        let port: Int
        var log: String { dir.path + "/received.jsonl" }

        init(failFirst: Int = 0, delay: Double = 0, secret: String) throws {
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", packageRoot.appendingPathComponent("Tests/Receivers/receiver.py").path, dir.path + "/port", dir.path + "/received.jsonl",
                                 "--fail-first", String(failFirst), "--delay", String(delay), "--secret", secret]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(10)
            while FileManager.default.contents(atPath: dir.path + "/port") == nil {
                guard Date() < deadline else { throw FixtureError("the receiver did not start") }
                Thread.sleep(forTimeInterval: 0.05)
            }
            port = Int(String(decoding: FileManager.default.contents(atPath: dir.path + "/port")!, as: UTF8.self))!
        }

        deinit {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }

        /// What it answered 200 to, in order.
        func received() -> [[String: Any]] {
            guard let text = try? String(contentsOfFile: log, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    /// `cairn serve` on the example fleet, notifying `receivers` (name → (receiver, events, format)).
    static func serve(_ receivers: [(name: String, receiver: Receiver, events: [String]?, format: String)], secret: String) throws -> ServeEndToEndTests.Setup {
        let setup = try ServeEndToEndTests.Setup()
        let secretFile = setup.dir.path + "/hook.secret"
        try (secret + "\n").write(toFile: secretFile, atomically: true, encoding: .utf8)
        let list = receivers.map { r -> [String: Any] in
            var entry: [String: Any] = ["name": r.name, "url": "http://127.0.0.1:\(r.receiver.port)/hooks/\(r.name)", "secretFile": secretFile, "format": r.format]
            if let events = r.events { entry["events"] = events }
            return entry
        }
        let file = setup.dir.path + "/receivers.json"
        try JSONSerialization.data(withJSONObject: ["receivers": list]).write(to: URL(fileURLWithPath: file))
        try setup.start(extra: ["--notify", file])
        return setup
    }

    static func events(_ setup: ServeEndToEndTests.Setup) throws -> [NotificationEvent] { try RegistryDatabase(path: setup.dbPath).events() }

    @Test func aReceiverThatFailsAtFirstGetsEveryEventOnceInOrderSigned() throws {
        let secret = "receiver-secret-42"
        let flaky = try Receiver(failFirst: 3, secret: secret), chat = try Receiver(secret: secret)
        let setup = try Self.serve([("ops", flaky, nil, "json"), ("chat", chat, ["promotion"], "slack")], secret: secret)
        try setup.waitFor("the fleet to be trained and promoted, and every event delivered", timeout: 120) {
            let db = try RegistryDatabase(path: setup.dbPath)
            let idle = try db.activeRunCounts() == (0, 0)
            let events = try db.events()
            return idle && events.contains { $0.kind == "promotion" } && flaky.received().count == events.count
        }
        let events = try Self.events(setup)
        #expect(Set(events.map(\.kind)).isSuperset(of: ["promotion", "approval"]), "\(events.map(\.kind))")
        let got = flaky.received()
        let keys = got.compactMap { $0["key"] as? String }
        // Every event exactly once by its idempotency key, in event order, signed with the secret.
        #expect(keys.count == events.count && Set(keys).count == events.count, "\(keys)")
        let ids = got.compactMap { ($0["body"] as? [String: Any])?["id"] as? String }.compactMap { Int($0.split(separator: "-").last ?? "") }
        #expect(ids == events.map(\.id), "delivered in event order: \(ids)")
        #expect(got.allSatisfy { $0["signed"] as? Bool == true })
        let first = try #require(got.first?["body"] as? [String: Any])
        #expect(first["formatVersion"] as? String == "1" && first["kind"] as? String == events[0].kind)
        // The failed attempts are on the record.
        let records = try RegistryDatabase(path: setup.dbPath).deliveries(receiver: "ops", limit: 1000)
        #expect(records.allSatisfy { $0.state == "delivered" } && records.map(\.attempts).reduce(0, +) == events.count + 3)
        // The chat receiver takes promotions only, in the Slack-compatible form.
        try setup.waitFor("the promotions to reach the chat receiver") { chat.received().count == events.filter { $0.kind == "promotion" }.count }
        #expect(chat.received().allSatisfy { (($0["body"] as? [String: Any])?["text"] as? String)?.hasPrefix("Cairn promotion: ServingTarget/") == true })
        let listed = try cairn(["notifications", "--db", setup.dbPath, "--receiver", "chat"]).stdout
        #expect(listed.contains("promotion") && listed.contains("delivered"))
    }

    @Test func killingServeWhileItDeliversLosesNothing() throws {
        let secret = "receiver-secret-43"
        let slow = try Receiver(delay: 1.5, secret: secret)
        let setup = try Self.serve([("ops", slow, nil, "json")], secret: secret)
        // Killed once training is over (a killed worker's runs wait for their lease), while deliveries are under way.
        try setup.waitFor("the fleet trained, some events delivered and some still pending", timeout: 120) {
            let db = try RegistryDatabase(path: setup.dbPath)
            let idle = try db.activeRunCounts() == (0, 0)
            let pending = try db.deliveries(receiver: "ops", state: "pending").count
            return idle && slow.received().count >= 1 && pending >= 2
        }
        kill(setup.daemon!.processIdentifier, SIGKILL)
        setup.daemon!.waitUntilExit()
        try setup.start(extra: ["--notify", setup.dir.path + "/receivers.json"])
        try setup.waitFor("every event delivered after the restart", timeout: 120) {
            let db = try RegistryDatabase(path: setup.dbPath)
            let idle = try db.activeRunCounts() == (0, 0)
            let pending = try db.deliveries(receiver: "ops", state: "pending")
            let count = try db.events().count
            return idle && pending.isEmpty && Set(slow.received().compactMap { $0["key"] as? String }).count == count
        }
        let keys = slow.received().compactMap { $0["key"] as? String }
        // At least once: a delivery the kill cut off between the answer and its record may come twice, never more.
        #expect(keys.count - Set(keys).count <= 1, "\(keys)")
    }

    @Test func aSlowReceiverNeverDelaysReconciling() throws {
        let secret = "receiver-secret-44"
        let slow = try Receiver(delay: 4, secret: secret)
        let setup = try Self.serve([("ops", slow, nil, "json")], secret: secret)
        try setup.waitFor("the fleet to be trained and promoted", timeout: 120) {
            let db = try RegistryDatabase(path: setup.dbPath)
            let idle = try db.activeRunCounts() == (0, 0)
            let promoted = try db.events().contains { $0.kind == "promotion" }
            return idle && promoted
        }
        let models = try String(contentsOf: setup.work.dir.url.appendingPathComponent("models/search.yaml"), encoding: .utf8)
        let sha = try setup.push("label search-knn v1", files: ["models/search.yaml": models.replacingOccurrences(
            of: "  label: Search re-ranking neighbours\n", with: "  label: Search re-ranking neighbours\n  versionLabels: [{version: 1, label: catalogue one}]\n")])
        let pushed = Date()
        try setup.waitFor("the commit to be applied") { try setup.status()["lastAppliedRevision"] as? String == sha }
        let took = Date().timeIntervalSince(pushed)
        let pending = try RegistryDatabase(path: setup.dbPath).deliveries(receiver: "ops", state: "pending").count
        #expect(pending > 0, "the receiver is still working through its backlog")
        #expect(took < 4 * Double(pending), "applied in \(took) s while \(pending) deliveries of 4 s each wait")
    }
}

/// The outbox's bookkeeping on both databases.
struct OutboxStoreTests {
    @Test(arguments: Backend.available) func eventsAndDeliveriesOnEachDatabase(_ backend: Backend) throws {
        let dir = TempDir("cairn-outbox")
        let db = try backend.fresh(in: dir)
        defer { db.close() }
        // A recorded failed pass writes its stall event in its own transaction.
        try db.recordFailedPass(revision: String(repeating: "a", count: 40), revisionName: "main", result: "invalid", message: "3 errors", at: 100)
        try db.recordFailedPass(revision: String(repeating: "b", count: 40), revisionName: "main", result: "untrusted", message: "not signed", at: 101)
        let events = try db.events()
        #expect(events.map(\.kind) == ["stall", "stall"] && events[0].address == "revision aaaaaaaaaaaa")
        #expect(try db.enqueueDeliveries(receiver: "ops", kinds: ["stall"], now: 200) == 2)
        #expect(try db.enqueueDeliveries(receiver: "ops", kinds: ["stall"], now: 201) == 0, "each event once per receiver")
        #expect(try db.enqueueDeliveries(receiver: "chat", kinds: ["promotion"], now: 200) == 0)
        // A receiver new to the registry gets the recent events only.
        #expect(try db.enqueueDeliveries(receiver: "late", kinds: ["stall"], now: 200, notBefore: 101) == 1)
        #expect(try db.deliveries(receiver: "late").map(\.eventID) == [events[1].id])
        // In event order: the first holds the second back until it is delivered or given up.
        let first = try #require(try db.nextDelivery(receiver: "ops"))
        #expect(first.event.id == events[0].id && first.attempts == 0)
        try db.markAttemptFailed(event: first.event.id, receiver: "ops", error: "HTTP 500", retryAt: 300)
        let again = try #require(try db.nextDelivery(receiver: "ops"))
        #expect(again.event.id == events[0].id && again.attempts == 1 && again.nextAttemptAt == 300)
        try db.markDelivered(event: first.event.id, receiver: "ops", at: 301)
        let second = try #require(try db.nextDelivery(receiver: "ops"))
        #expect(second.event.id == events[1].id)
        try db.markAttemptFailed(event: second.event.id, receiver: "ops", error: "timed out", retryAt: nil)
        #expect(try db.nextDelivery(receiver: "ops") == nil)
        #expect(try db.deliveries(receiver: "ops").map(\.state) == ["failed", "delivered"])
        #expect(try db.retryDeliveries(event: nil, receiver: "ops", now: 400) == 1)
        #expect(try db.nextDelivery(receiver: "ops")?.event.id == events[1].id)
        #expect(try db.notificationPrefix() == (try db.notificationPrefix()))
    }
}
