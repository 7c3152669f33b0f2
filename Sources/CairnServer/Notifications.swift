import CairnCore
import CairnGit
import CairnReconcile
import CairnStore
import Crypto
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import ServiceLifecycle

/// A receiver of notifications, as the operator declares it (`cairn serve --notify FILE`).
public struct NotificationReceiver: Sendable, Equatable, Decodable {
    /// `json` (the event, signed) or `slack` (`{"text": …}`, for Slack-compatible incoming webhooks; signed too).
    public enum Format: String, Sendable, Decodable { case json, slack }

    public var name: String
    public var url: String
    /// The event kinds it takes (all when absent).
    public var events: [String]?
    /// A file holding the HMAC secret (its content, trailing newline removed).
    public var secretFile: String?
    public var format: Format?
    /// How long an event is tried before it is given up as failed (a duration; default 24h).
    public var maxAge: String?

    var kinds: Set<String> { Set(events ?? NotificationEvent.kinds) }

    /// The operator's receivers file: `{"receivers": [{name, url, events, secretFile, format, maxAge}]}`.
    public static func load(_ path: String) throws -> [NotificationReceiver] {
        struct File: Decodable { var receivers: [NotificationReceiver] }
        guard let data = FileManager.default.contents(atPath: path) else { throw CairnError("cannot read the receivers file \(path)") }
        let receivers: [NotificationReceiver]
        do {
            receivers = try JSONDecoder().decode(File.self, from: data).receivers
        } catch {
            throw CairnError("the receivers file \(path) is not {\"receivers\": [{\"name\", \"url\", \"events\", \"secretFile\", \"format\", \"maxAge\"}]}: \(error)")
        }
        var names = Set<String>()
        for r in receivers {
            guard !r.name.isEmpty, names.insert(r.name).inserted else { throw CairnError("\(path): receiver names must be unique and not empty ('\(r.name)')") }
            guard let url = URL(string: r.url), ["http", "https"].contains(url.scheme ?? "") else {
                throw CairnError("\(path): receiver \(r.name) has url '\(RemoteMirror.redacted(r.url))', not an http(s) URL")
            }
            if let unknown = (r.events ?? []).first(where: { !NotificationEvent.kinds.contains($0) }) {
                throw CairnError("\(path): receiver \(r.name) takes unknown event '\(unknown)'", hint: "events: \(NotificationEvent.kinds.joined(separator: ", "))")
            }
            if let age = r.maxAge, ManifestDuration(parsing: age) == nil { throw CairnError("\(path): receiver \(r.name) maxAge '\(age)' is not a duration") }
            if let file = r.secretFile, FileManager.default.contents(atPath: file) == nil {
                throw CairnError("\(path): receiver \(r.name)'s secretFile \(file) cannot be read")
            }
        }
        return receivers
    }

    func secret() -> [UInt8]? {
        guard let file = secretFile, let data = FileManager.default.contents(atPath: file) else { return nil }
        var text = String(decoding: data, as: UTF8.self)
        while text.hasSuffix("\n") || text.hasSuffix("\r") { text.removeLast() }
        return Array(text.utf8)
    }
}

/// Sends the outbox's events to the receivers: each receiver on its own thread, its deliveries
/// in event order (a failing one holds the later ones back until it is delivered or given up),
/// retried with exponential backoff (1 s, 2 s, 4 s … at most 5 min) until `maxAge`, each with an
/// idempotency key. Off the reconcile path: a slow receiver delays nothing but its own deliveries.
public struct NotificationService: Service {
    let store: RegistryDatabase
    let receivers: [NotificationReceiver]
    let wake: Wakeup
    let logger: Logger

    public init(store: RegistryDatabase, receivers: [NotificationReceiver], wake: Wakeup, logger: Logger) {
        self.store = store
        self.receivers = receivers
        self.wake = wake
        self.logger = logger
    }

    public func run() async throws {
        let (store, receivers, wake, logger) = (self.store, self.receivers, self.wake, self.logger)
        try await runUntilShutdown { stop in
            let wakes = receivers.map { _ in Wakeup() }
            for w in wakes {
                wake.forward(to: w)
                stop.wakes(w)
            }
            DispatchQueue.concurrentPerform(iterations: receivers.count) { i in
                Self.deliver(to: receivers[i], store: store, wake: wakes[i], stop: stop, logger: logger)
            }
        }
    }

    static func deliver(to receiver: NotificationReceiver, store: RegistryDatabase, wake: Wakeup, stop: StopFlag, logger: Logger) {
        let clock = SystemClock()
        let maxAge = Int64(receiver.maxAge.flatMap(ManifestDuration.init(parsing:))?.seconds ?? 86_400)
        let registry = (try? store.notificationPrefix()) ?? "cairn"
        while !stop.isSet {
            let now = clock.unixNow()
            do {
                try store.enqueueDeliveries(receiver: receiver.name, kinds: receiver.kinds, now: now, notBefore: now - maxAge)
                if let (event, attempts, due) = try store.nextDelivery(receiver: receiver.name) {
                    if due > now {
                        _ = clock.wait(on: wake, until: Double(due))
                        continue
                    }
                    switch send(event, to: receiver, key: "\(registry)-\(event.id)") {
                    case nil:
                        try store.markDelivered(event: event.id, receiver: receiver.name, at: clock.unixNow())
                    case let problem?:
                        let giveUp = clock.unixNow() - event.at >= maxAge
                        let retry = giveUp ? nil : clock.unixNow() + min(300, Int64(1) << min(attempts, 9))
                        try store.markAttemptFailed(event: event.id, receiver: receiver.name, error: problem, retryAt: retry)
                        if giveUp {
                            logger.warning("notification given up", metadata: ["receiver": "\(receiver.name)", "event": "\(event.id)", "error": "\(problem)"])
                        }
                    }
                    continue
                }
            } catch {
                logger.warning("notifications: \(error)", metadata: ["receiver": "\(receiver.name)"])
            }
            _ = clock.wait(on: wake, until: clock.now() + 2)
        }
    }

    /// Nil when the receiver took it (2xx); otherwise why not.
    static func send(_ event: NotificationEvent, to receiver: NotificationReceiver, key: String) -> String? {
        let body: JSONValue
        switch receiver.format ?? .json {
        case .json:
            body = .object(["formatVersion": .string("1"), "id": .string(key), "kind": .string(event.kind), "at": .int(Int(event.at)),
                            "address": .string(event.address), "version": event.version.map { .int($0) } ?? .null,
                            "revision": event.revision.map { .string($0) } ?? .null, "payload": event.payload])
        case .slack:
            var reason = ""
            if case let .object(fields) = event.payload, case let .string(text)? = fields["reason"] { reason = text }
            body = .object(["text": .string("Cairn \(event.kind): \(event.address)\(event.version.map { " v\($0)" } ?? "") — \(reason)")])
        }
        let bytes = Data(body.canonicalText.utf8)
        guard let url = URL(string: receiver.url) else { return "bad url" }
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.timeoutInterval = 10
        request.httpBody = bytes
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue(key, forHTTPHeaderField: "Idempotency-Key")
        request.setValue(event.kind, forHTTPHeaderField: "X-Cairn-Event")
        if let secret = receiver.secret() {
            let mac = HMAC<SHA256>.authenticationCode(for: bytes, using: SymmetricKey(data: secret))
            request.setValue("sha256=" + hexString(mac), forHTTPHeaderField: "X-Cairn-Signature")
        }
        let done = DispatchSemaphore(value: 0)
        let outcome = Locked<String?>("no answer")
        let session = URLSession(configuration: .ephemeral)
        session.dataTask(with: request) { _, response, error in
            if let http = response as? HTTPURLResponse {
                outcome.update { $0 = (200..<300).contains(http.statusCode) ? nil : "HTTP \(http.statusCode)" }
            } else {
                outcome.update { $0 = error.map { "\($0.localizedDescription)" } ?? "no answer" }
            }
            done.signal()
        }.resume()
        done.wait()
        session.finishTasksAndInvalidate()
        return outcome.value
    }
}
