import CairnCore
import CairnReconcile
import CairnRender
import CairnSource
import CairnStore
import CairnTraining
import Crypto
import Foundation
import Hummingbird
import Logging

/// The daemon's HTTP endpoints (the README's table under "Running continuously").
public struct HTTPAPI: Sendable {
    let configuration: ServeConfiguration
    let db: RegistryDatabase
    let loop: ReconcileLoop
    let serving: ServingCache
    let metrics: CairnMetrics
    let traces: TraceRecorder

    public init(configuration: ServeConfiguration, db: RegistryDatabase, loop: ReconcileLoop, serving: ServingCache, metrics: CairnMetrics,
                traces: TraceRecorder) {
        self.configuration = configuration
        self.db = db
        self.loop = loop
        self.serving = serving
        self.metrics = metrics
        self.traces = traces
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        let text = prettyJSON(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text.isEmpty ? "{}" : text)))
    }

    static func text(_ text: String, status: HTTPResponse.Status = .ok, type: String = "text/plain; charset=utf-8") -> Response {
        Response(status: status, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// GitHub's largest webhook payload.
    static let webhookBodyLimit = 25 << 20

    struct Problem: Encodable {
        var error: String
    }

    struct PlanProblem: Error {
        var status: HTTPResponse.Status
        var body: PlanFailure
    }

    struct PlanFailure: Encodable {
        var error: String
        var hint: String?
        var diagnostics: [String]?
    }

    /// On-demand plans run one at a time: each reads a whole revision.
    static let planning = NSLock()

    /// The plan of `revision` (fetched from the remote when the cache lacks it) against the live
    /// registry, writing nothing: what merging a pull request would do.
    func planOf(revision: String) async throws -> Result<Plan, PlanProblem> {
        let base = configuration.source()
        let options = configuration.planner
        let clock = loop.clock
        return try await blocking { [db] in
            Self.planning.lock()
            defer { Self.planning.unlock() }
            let source: GitManifestSource
            do {
                source = try base.atCommit(revision)
            } catch {
                let e = error as? CairnError ?? CairnError("\(error)")
                return .failure(PlanProblem(status: .notFound, body: PlanFailure(error: e.message, hint: e.hint)))
            }
            do {
                let desired = try ReconcilePass.read(source, clock: clock)
                // A preview is shown whoever signed it (a pull request's merge commit is made by
                // the forge, unsigned); the plan says when this commit would not be applied.
                var unverified = source
                unverified.signatures = nil
                var plan = try ReconcilePass.plan(desired, source: unverified, store: db, options: options, clock: clock)
                do {
                    _ = try source.verifySignatures(of: desired.commit.sha, since: nil)
                } catch let e as CairnError where e.reason == .untrustedRevision {
                    plan.untrusted = e.message
                }
                return .success(plan)
            } catch let invalid as ReconcilePass.InvalidRevision {
                let errors = invalid.read.diagnostics.errors
                return .failure(PlanProblem(status: .unprocessableContent, body: PlanFailure(
                    error: "\(revision.prefix(7)) is invalid: \(errors.count) error\(errors.count == 1 ? "" : "s")",
                    hint: "`cairn validate --revision \(revision.prefix(12))` shows them with their positions",
                    diagnostics: errors.map(\.oneLine))))
            } catch let e as CairnError {
                return .failure(PlanProblem(status: .unprocessableContent, body: PlanFailure(error: e.message, hint: e.hint)))
            }
        }
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.get("healthz") { _, _ in Self.text("ok\n") }

        /// What `/readyz` and `cairn_ready` report: the database answers, a pass ran and did not stall, the key verifies what is live.
        @Sendable func readiness() async -> (ready: Bool, reachable: Bool) {
            let reachable = (try? await blocking { [db] in try db.generation() }) != nil
            return (reachable && !loop.status.isStalled && loop.status.lastPassAt != nil && loop.status.keyProblem == nil, reachable)
        }

        router.get("readyz") { _, _ -> Response in
            let (ready, reachable) = await readiness()
            if ready { return Self.text("ready\n") }
            let stalled = loop.status.isStalled
            let keyProblem = loop.status.keyProblem
            let stalledMessage = loop.status.conditions["Stalled"]?.message ?? ""
            let why = !reachable ? "database unreachable" : keyProblem.map { "signing key: \($0)" } ?? (stalled ? "last pass stalled: \(stalledMessage)" : "no pass yet")
            return Self.text("not ready: \(why)\n", status: .serviceUnavailable)
        }

        router.get("metrics") { request, _ -> Response in
            if !configuration.publicMetrics, let denied = await authorize(request, .read) { return denied }
            let ready = await readiness().ready
            metrics.recordTraceCounts(traces.counters)
            return Self.text(metrics.render(db: db, ready: ready), type: "text/plain; version=0.0.4; charset=utf-8")
        }

        router.post("v1/reconcile") { request, _ -> Response in
            if let denied = await authorize(request, .admin) { return denied }
            loop.trigger()
            return Self.json(["accepted": true], status: .accepted)
        }

        router.post("hooks/git") { request, _ -> Response in
            let signature = request.headers.first { $0.name.canonicalName == "x-hub-signature-256" }?.value
            guard let secret = configuration.webhookSecret, !secret.isEmpty else {
                return Self.json(Problem(error: "webhooks are disabled: CAIRN_WEBHOOK_SECRET is not set"), status: .unauthorized)
            }
            // An unsigned request is refused before its body is read; a signed one may be as
            // large as GitHub sends (25 MB), and is checked whole.
            guard let signature else { return Self.json(Problem(error: "missing or bad X-Hub-Signature-256"), status: .unauthorized) }
            let body = try await request.body.collect(upTo: Self.webhookBodyLimit)
            guard Self.verify(signature: signature, body: Array(buffer: body), secret: secret) else {
                return Self.json(Problem(error: "missing or bad X-Hub-Signature-256"), status: .unauthorized)
            }
            loop.trigger()
            return Self.json(["accepted": true], status: .accepted)
        }

        router.get("v1/status") { request, _ -> Response in
            if let denied = await authorize(request, .read) { return denied }
            struct Status: Encodable {
                var formatVersion = "1"
                var conditions: [Condition]
                var lastAppliedRevision: String?
                var lastAttemptedRevision: String?
                var suspended: Bool
                var observedGeneration: Int?
            }
            let suspended = (try? await blocking { [db] in try db.suspension() != nil }) ?? false
            let conditions = loop.status.conditions.values.sorted { $0.type < $1.type }
            return Self.json(Status(conditions: conditions, lastAppliedRevision: loop.status.lastAppliedRevision,
                                    lastAttemptedRevision: loop.status.lastAttemptedRevision, suspended: suspended,
                                    observedGeneration: try? await blocking { [db] in try db.generation() }))
        }

        router.get("v1/plan") { request, _ -> Response in
            if let denied = await authorize(request, .read) { return denied }
            let query = request.uri.queryParameters
            let format = query.get("format") ?? "json"
            guard ["json", "markdown", "text"].contains(format) else {
                return Self.json(Problem(error: "format must be json, markdown or text"), status: .badRequest)
            }
            let options = configuration.planner
            let now = loop.clock.unixNow()
            let plan: Plan
            if let revision = query.get("revision") {
                // A revision the daemon does not follow (a pull request's merge commit): only a
                // full commit id, never an expression or a ref name the client could aim elsewhere.
                guard CommitInfo.isFullID(revision) else {
                    return Self.json(Problem(error: "revision must be a full commit id (40 hexadecimal digits)"), status: .badRequest)
                }
                switch try await planOf(revision: revision.lowercased()) {
                case let .success(p): plan = p
                case let .failure(problem): return Self.json(problem.body, status: problem.status)
                }
            } else {
                guard let desired = loop.status.desired else {
                    return Self.json(Problem(error: "no valid revision has been read yet"), status: .serviceUnavailable)
                }
                plan = try await blocking { [db] in
                    try db.plan(desired, now: now, options: options)
                }
            }
            switch format {
            case "markdown": return Self.text(MarkdownPlan.render(plan), type: "text/markdown; charset=utf-8")
            case "text": return Self.text(PlanRenderer.text(plan, style: Style(enabled: false), observed: "the live registry"))
            default: return Self.json(plan)
            }
        }

        router.get("v1/targets/:name") { request, context -> Response in
            if let denied = await authorize(request, .read) { return denied }
            let name = try context.parameters.require("name")
            struct Route: Encodable {
                var model: String
                var version: Int
                var weight: Int
                var label: String?
                var description: String?
                var artifactHash: String?
                var artifactSignature: String?
            }
            struct Target: Encodable {
                var name: String
                var tenant: String
                var surface: String
                var routes: [Route]
                var shadow: [Route]
                var drift: DriftRecord?
            }
            let found: Target? = try await blocking { [db] in
                guard let t = try db.observedState().targets[name], t.assigned else { return nil }
                func describe(_ r: LiveRoute) throws -> Route {
                    let v = try db.versions(of: r.model)?.first { $0.number == r.version }
                    return Route(model: r.model, version: r.version, weight: r.weight, label: v?.label, description: v?.description,
                                 artifactHash: v?.artifactHash, artifactSignature: v?.artifactSignature)
                }
                return Target(name: name, tenant: t.tenant, surface: t.surface, routes: try t.routes.map(describe), shadow: try t.shadow.map(describe),
                              drift: t.drift)
            }
            guard let found else { return Self.json(Problem(error: "ServingTarget/\(name) serves nothing"), status: .notFound) }
            return Self.json(found)
        }

        registerLearning(router)
        registerRegistry(router)
        Dashboard(api: self).register(router)
        return router
    }

    /// Nil when the request carries a bearer token of a scope that allows `needed`; otherwise the
    /// answer to send: 401 without a known token, 403 with a token of too narrow a scope.
    func authorize(_ request: Request, _ needed: RegistryDatabase.TokenScope) async -> Response? {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer "), header.count > 7 else {
            return Self.unauthorized("this endpoint needs `Authorization: Bearer TOKEN` (`cairn token create NAME --scope \(needed.rawValue)`)")
        }
        let token = String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        let found = try? await blocking { [db] in try db.scope(ofToken: token) }
        guard let scope = found ?? nil else { return Self.unauthorized("unknown or revoked token") }
        guard scope.allows(needed) else {
            return Self.json(Problem(error: "this token's scope is \(scope.rawValue); \(request.method.rawValue) \(request.uri.path) needs \(needed.rawValue)"),
                             status: .forbidden)
        }
        return nil
    }

    static func unauthorized(_ message: String) -> Response {
        var response = json(Problem(error: message), status: .unauthorized)
        response.headers[.wwwAuthenticate] = "Bearer realm=\"cairn\""
        return response
    }

    /// GitHub-style `sha256=<hex HMAC-SHA256 of the body>`, compared in constant time.
    static func verify(signature: String, body: [UInt8], secret: String) -> Bool {
        guard signature.hasPrefix("sha256="), let given = decodeHex(String(signature.dropFirst(7))), given.count == 32 else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: body, using: SymmetricKey(data: Array(secret.utf8)))
    }
}
