import CairnCore
import CairnGit
import CairnReconcile
import CairnRender
import CairnSource
import CairnStore
import Foundation
import HTTPTypes
import Hummingbird

/// Signed-in dashboard sessions, in memory: a random id in an HttpOnly, SameSite=Strict
/// cookie names the API token it was opened with; the token is checked again (not revoked) on
/// every page, so revoking it ends its sessions. Sessions end after 12 hours or at sign-out,
/// and when `cairn serve` restarts.
final class DashboardSessions: @unchecked Sendable {
    struct Session {
        var token: String
        var expires: Double
    }

    static let lifetime = 12.0 * 3600
    private let lock = NSLock()
    private var sessions: [String: Session] = [:]

    func open(token: String, now: Double) -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &generator) }
        let id = hexString(bytes)
        lock.withLock {
            sessions = sessions.filter { $0.value.expires > now }
            sessions[id] = Session(token: token, expires: now + Self.lifetime)
        }
        return id
    }

    func token(of id: String, now: Double) -> String? {
        lock.withLock {
            guard let s = sessions[id], s.expires > now else { return nil }
            return s.token
        }
    }

    func close(_ id: String) { lock.withLock { _ = sessions.removeValue(forKey: id) } }
}

/// The read-only web dashboard of `cairn serve` under `/ui/`: server-rendered HTML, no
/// JavaScript, charts as inline SVG, a strict Content-Security-Policy. Every change still goes
/// through git: where a decision is to be made, the page shows the YAML to commit.
struct Dashboard: Sendable {
    let api: HTTPAPI
    let sessions = DashboardSessions()
    /// The last verification of the whole audit chain: reused while the chain's head stands and
    /// for at most a minute (a whole verification reads every row; the history page is read often).
    let verified = Locked<(head: String?, broken: String?, at: Double)?>(nil)
    static let verificationAge = 60.0
    /// What is blocked, as last planned for the overview: reused while the revision and the
    /// registry's generation stand, for at most a minute (a plan of a large fleet takes a while).
    let blockedKept = Locked<(key: String, blocked: [BlockedChange], at: Double)?>(nil)
    /// The overview's applied and attempted commits, found or not (a commit the repository lacks
    /// costs libgit2 a rescan of its packs on every lookup).
    let commitsKept = Locked<[String: CommitInfo?]>([:])

    static let cookieName = "cairn_session"
    static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
        ("X-Frame-Options", "DENY"),
    ]

    static func respond(_ body: String, status: HTTPResponse.Status = .ok, type: String = "text/html; charset=utf-8",
                        extra: [(String, String)] = []) -> Response {
        var fields = HTTPFields()
        fields[.contentType] = type
        for (name, value) in securityHeaders + extra { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func redirect(_ location: String, extra: [(String, String)] = []) -> Response {
        respond("", status: .seeOther, extra: [("Location", location)] + extra)
    }

    /// The session id in the request's cookie, if any.
    static func sessionID(_ request: Request) -> String? {
        for field in request.headers where field.name.canonicalName == "cookie" {
            for part in field.value.split(separator: ";") {
                let pair = part.trimmingCharacters(in: .whitespaces)
                if pair.hasPrefix(cookieName + "=") { return String(pair.dropFirst(cookieName.count + 1)) }
            }
        }
        return nil
    }

    /// The signed-in token's scope, or the redirect to sign in.
    func signedIn(_ request: Request) async -> Response? {
        let now = Date().timeIntervalSince1970
        guard let id = Self.sessionID(request), let token = sessions.token(of: id, now: now) else {
            return Self.redirect("/ui/sign-in")
        }
        let scope: RegistryDatabase.TokenScope?
        do {
            scope = try await blocking { [db = api.db] in try db.scope(ofToken: token) }
        } catch {
            // The registry did not answer: the session stands, the page cannot be shown now.
            return Self.respond(DashboardPages.layout("Unavailable", current: nil, body: "<p class=\"error\">The registry does not answer; try again shortly.</p>\n"),
                                status: .serviceUnavailable)
        }
        guard scope != nil else {
            sessions.close(id)
            return Self.redirect("/ui/sign-in?expired=1")
        }
        return nil
    }

    /// `key=value&…` of a form body.
    static func formValue(_ body: String, _ key: String) -> String? {
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0] == key else { continue }
            return parts[1].replacingOccurrences(of: "+", with: " ").removingPercentEncoding
        }
        return nil
    }

    func register(_ router: Router<BasicRequestContext>) {
        router.get("ui/style.css") { _, _ in Self.respond(DashboardPages.css, type: "text/css; charset=utf-8") }
        router.get("ui/sign-in") { request, _ in
            let expired = request.uri.queryParameters.get("expired") != nil
            return Self.respond(DashboardPages.signIn(message: expired ? "Your session ended (its token was revoked or it expired): sign in again." : nil))
        }
        router.post("ui/sign-in") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 4096))
            let token = (Self.formValue(body, "token") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let scope = token.isEmpty ? nil : (try? await blocking { [db = api.db] in try db.scope(ofToken: token) }) ?? nil
            guard scope != nil else {
                return Self.respond(DashboardPages.signIn(message: "Unknown or revoked token. Create one with `cairn token create NAME --scope read`."),
                                    status: .unauthorized)
            }
            let id = sessions.open(token: token, now: Date().timeIntervalSince1970)
            return Self.redirect("/ui/", extra: [("Set-Cookie", "\(Self.cookieName)=\(id); Path=/ui; HttpOnly; SameSite=Strict; Max-Age=\(Int(DashboardSessions.lifetime))")])
        }
        router.post("ui/sign-out") { request, _ -> Response in
            if let id = Self.sessionID(request) { sessions.close(id) }
            return Self.redirect("/ui/sign-in", extra: [("Set-Cookie", "\(Self.cookieName)=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0")])
        }
        // `/ui` and `/ui/` (the router treats them as one path).
        router.get("ui") { request, _ -> Response in
            if let denied = await signedIn(request) { return denied }
            return Self.respond(try await overview())
        }
        router.get("ui/models") { request, _ -> Response in
            if let denied = await signedIn(request) { return denied }
            let q = request.uri.queryParameters
            let filter = DashboardPages.ModelFilter(family: q.get("family"), stage: q.get("stage"), phase: q.get("phase"),
                                                    tab: q.get("tab") ?? "active", page: max(1, q.get("page").flatMap(Int.init) ?? 1))
            let observed = try await blocking { [db = api.db] in try db.observedState() }
            return Self.respond(DashboardPages.models(observed, filter: filter))
        }
        router.get("ui/models/:name") { request, context -> Response in
            if let denied = await signedIn(request) { return denied }
            let name = try context.parameters.require("name")
            let file = api.loop.status.desired?.manifests.models.first { $0.metadata.name == name }?.metadata.source.file
            let page = try await blocking { [db = api.db] () -> String? in
                let observed = try db.observedState()
                guard let model = observed.models[name] else { return nil }
                let history = try db.history(RegistryDatabase.HistoryFilter(model: name, limit: 1000))
                let runs = try db.runSummaries(ids: model.versions.map(\.runID))
                let latest = model.versions.max { $0.number < $1.number }
                let request = try latest.flatMap { try db.runRequest($0.runID) }
                return DashboardPages.model(model, observed: observed, history: history, runs: runs, request: request, file: file)
            }
            guard let page else { return Self.respond(DashboardPages.notFound("No model named \(name) in the registry."), status: .notFound) }
            return Self.respond(page)
        }
        router.get("ui/targets") { request, _ -> Response in
            if let denied = await signedIn(request) { return denied }
            let (observed, history) = try await blocking { [db = api.db] in
                (try db.observedState(), try db.history(RegistryDatabase.HistoryFilter(limit: 2000)).filter { $0.action == .promote })
            }
            return Self.respond(DashboardPages.targets(observed, promotions: history))
        }
        router.get("ui/runs") { request, _ -> Response in
            if let denied = await signedIn(request) { return denied }
            let runs = try await blocking { [db = api.db] () -> [(RegistryDatabase.RunSummary, String)] in
                let runs = try db.recentRuns(limit: 100)
                // The tails of running and failed runs' logs only (a log is up to 1 MiB).
                let tails = try db.logTails(ids: runs.filter { $0.state == "running" || $0.state == "failed" }.map(\.id), characters: 8192)
                return runs.map { ($0, tails[$0.id] ?? "") }
            }
            return Self.respond(DashboardPages.runs(runs, now: api.loop.clock.unixNow()))
        }
        router.get("ui/history") { request, _ -> Response in
            if let denied = await signedIn(request) { return denied }
            let q = request.uri.queryParameters
            let since = q.get("since").flatMap { ManifestDuration(parsing: $0) }.map { api.loop.clock.unixNow() - Int64($0.seconds) }
            let filter = RegistryDatabase.HistoryFilter(model: q.get("model").flatMap { $0.isEmpty ? nil : $0 },
                                                        target: q.get("target").flatMap { $0.isEmpty ? nil : $0 }, since: since, limit: 500)
            let action = q.get("action").flatMap { $0.isEmpty ? nil : $0 }
            let verified = self.verified
            let now = Date().timeIntervalSince1970
            let fresh = q.get("verify") != nil
            let (rows, broken, at) = try await blocking { [db = api.db] () -> ([AuditEntry], String?, Double) in
                let head = try db.auditHead()
                if !fresh, let kept = verified.value, kept.head == head, now - kept.at < Self.verificationAge {
                    return (try db.history(filter), kept.broken, kept.at)
                }
                let broken = try db.verifyAudit().map { "row \($0.id): \($0.problem)" }
                verified.update { $0 = (head, broken, now) }
                return (try db.history(filter), broken, now)
            }
            return Self.respond(DashboardPages.history(rows.filter { action == nil || $0.action.rawValue == action }, filter: filter, action: action,
                                                       since: q.get("since"), broken: broken, verifiedAt: Int64(at)))
        }
        router.get("ui/plan") { request, _ -> Response in
            if let denied = await signedIn(request) { return denied }
            let revision = request.uri.queryParameters.get("revision").flatMap { $0.isEmpty ? nil : $0 }
            if let given = revision {
                // A full commit id, or a branch name resolved to one (never an expression).
                var revision = given.lowercased()
                if !CommitInfo.isFullID(given) {
                    let source = api.configuration.source()
                    do {
                        revision = try await blocking { try source.branchCommit(given) }
                    } catch {
                        let e = error as? CairnError ?? CairnError("\(error)")
                        return Self.respond(DashboardPages.plan(nil, revision: given, problem: e.message + (e.hint.map { " (\($0))" } ?? "")),
                                            status: .badRequest)
                    }
                }
                switch try await api.planOf(revision: revision) {
                case let .success(plan): return Self.respond(DashboardPages.plan(plan, revision: given, problem: nil))
                case let .failure(problem):
                    let text = ([problem.body.error] + (problem.body.hint.map { [$0] } ?? []) + (problem.body.diagnostics ?? [])).joined(separator: "\n")
                    return Self.respond(DashboardPages.plan(nil, revision: given, problem: text), status: problem.status)
                }
            }
            guard let desired = api.loop.status.desired else {
                return Self.respond(DashboardPages.plan(nil, revision: nil, problem: "No valid revision has been read yet."), status: .serviceUnavailable)
            }
            let options = api.configuration.planner
            let now = api.loop.clock.unixNow()
            let plan = try await blocking { [db = api.db] in try db.plan(desired, now: now, options: options) }
            return Self.respond(DashboardPages.plan(plan, revision: nil, problem: nil))
        }
    }

    func overview() async throws -> String {
        let status = api.loop.status
        let desired = status.desired
        let options = api.configuration.planner
        let now = api.loop.clock.unixNow()
        let kept = blockedKept
        let (observed, suspension, blocked) = try await blocking { [db = api.db] () -> (ObservedState, RegistryDatabase.Suspension?, [BlockedChange]?) in
            let observed = try db.observedState()
            var blocked: [BlockedChange]?
            if let desired {
                let key = "\(desired.commit.sha) \(observed.generation)"
                if let last = kept.value, last.key == key, Double(now) - last.at < 60 {
                    blocked = last.blocked
                } else {
                    let evidence = try db.evidence(Planner.evidenceNeeded(desired: desired, observed: observed))
                    let fresh = Planner.plan(desired: desired, observed: observed, evidence: evidence, now: now, options: options).blocked
                    kept.update { $0 = (key, fresh, Double(now)) }
                    blocked = fresh
                }
            }
            return (observed, try db.suspension(), blocked)
        }
        // The applied and attempted revisions' commits, from the repository (or its mirror).
        let source = api.configuration.source()
        let applied = status.lastAppliedRevision ?? observed.lastAppliedRevision, attempted = status.lastAttemptedRevision
        let keptCommits = commitsKept
        let commits = try await blocking { () -> [String: CommitInfo] in
            // Only the revisions shown now are kept: the cache never grows past two.
            let kept = keptCommits.value
            var now: [String: CommitInfo?] = [:]
            var repository: GitRepository?
            for sha in [applied, attempted].compactMap({ $0 }) where CommitInfo.isFullID(sha) {
                if let known = kept[sha] {
                    now[sha] = known
                    continue
                }
                if repository == nil { repository = try? source.open() }
                now[sha] = .some(try? repository?.commit(sha))
            }
            keptCommits.update { $0 = now }
            return now.compactMapValues { $0 }
        }
        return DashboardPages.overview(observed, conditions: status.conditions.values.sorted { $0.type < $1.type },
                                       lastApplied: applied.map { (sha: $0, commit: commits[$0]) }, lastAttempted: attempted.map { (sha: $0, commit: commits[$0]) },
                                       suspended: suspension.map { "by \($0.by) at \(Describe.time($0.at))" }, blocked: blocked)
    }
}
