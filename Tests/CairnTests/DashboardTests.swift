import CairnCore
import CairnReconcile
import CairnStore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// An HTTP exchange that does not follow redirects: status, headers (names lower-cased), body.
func rawHTTP(port: Int, _ method: String, _ path: String, body: String? = nil, cookie: String? = nil) throws -> (Int, [String: String], String) {
    final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
            completionHandler(nil)
        }
    }
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.httpMethod = method
    request.timeoutInterval = 20
    if let body {
        request.httpBody = Data(body.utf8)
        request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
    }
    if let cookie { request.setValue(cookie, forHTTPHeaderField: "Cookie") }
    let session = URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)
    defer { session.finishTasksAndInvalidate() }
    let done = DispatchSemaphore(value: 0)
    let box = Locked<(Int, [String: String], String)?>(nil)
    session.dataTask(with: request) { data, response, _ in
        if let http = response as? HTTPURLResponse {
            var headers: [String: String] = [:]
            for (k, v) in http.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
            box.update { $0 = (http.statusCode, headers, String(decoding: data ?? Data(), as: UTF8.self)) }
        }
        done.signal()
    }.resume()
    done.wait()
    guard let value = box.value else { throw FixtureError("\(method) \(path): no response") }
    return value
}

/// The dashboard of `cairn serve` over real HTTP on 127.0.0.1, and in a real browser.
@Suite(.serialized) struct DashboardTests {
    /// The example fleet served and trained, with a read token for the dashboard.
    final class Served: @unchecked Sendable {
        let setup: ServeEndToEndTests.Setup
        let readToken: String

        init(files: [String: String]? = nil, extra: [String] = []) throws {
            let setup = try ServeEndToEndTests.Setup(files: files)
            try setup.start(extra: extra)
            try setup.waitFor("the fleet to be trained and live", timeout: 120) {
                let db = try RegistryDatabase(path: setup.dbPath)
                return try db.observedState().targets["acme-homepage"]?.assigned == true && db.activeRunCounts() == (0, 0)
            }
            self.setup = setup
            readToken = try cairn(["token", "create", "dashboard-viewer", "--scope", "read", "--db", setup.dbPath])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func get(_ path: String, cookie: String?) throws -> (Int, [String: String], String) {
            try rawHTTP(port: setup.port, "GET", path, cookie: cookie)
        }

        /// Signs in; returns the cookie to send.
        func signIn(_ token: String) throws -> String {
            let (status, headers, _) = try rawHTTP(port: setup.port, "POST", "/ui/sign-in",
                                                   body: "token=" + (token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""))
            guard status == 303, let cookie = headers["set-cookie"]?.split(separator: ";").first else {
                throw FixtureError("sign-in answered \(status): \(headers)")
            }
            return String(cookie)
        }
    }

    static let pages = ["/ui/", "/ui/models", "/ui/models/homepage-recs", "/ui/targets", "/ui/runs", "/ui/history", "/ui/plan"]

    @Test func pagesNeedASessionOpenedWithAValidToken() throws {
        let served = try Served()
        for page in Self.pages {
            let (status, headers, _) = try served.get(page, cookie: nil)
            #expect(status == 303 && headers["location"] == "/ui/sign-in", "\(page): \(status) \(headers)")
            // A forged or stale session id is no session.
            let (forged, _, _) = try served.get(page, cookie: "cairn_session=" + String(repeating: "ab", count: 32))
            #expect(forged == 303, "\(page): a made-up session was accepted")
        }
        // A bearer token in a header does not open the dashboard: only a session does.
        let (bearer, _, _) = try rawHTTP(port: served.setup.port, "GET", "/ui/models", cookie: nil)
        #expect(bearer == 303)
        let (refused, _, refusedBody) = try rawHTTP(port: served.setup.port, "POST", "/ui/sign-in", body: "token=cairn_not-a-token")
        #expect(refused == 401 && refusedBody.contains("Unknown or revoked token"))
        let (status, headers, _) = try rawHTTP(port: served.setup.port, "POST", "/ui/sign-in",
                                               body: "token=" + served.readToken)
        #expect(status == 303 && headers["location"] == "/ui/")
        let setCookie = try #require(headers["set-cookie"])
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
            #expect(setCookie.contains(attribute), "the session cookie lacks \(attribute): \(setCookie)")
        }
        #expect(!setCookie.contains(served.readToken), "the token itself went into the cookie")
        let cookie = String(setCookie.split(separator: ";")[0])
        for page in Self.pages {
            let (status, headers, body) = try served.get(page, cookie: cookie)
            #expect(status == 200, "\(page): \(status)")
            #expect(headers["content-security-policy"] == "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                    "\(page): \(headers)")
            #expect(headers["x-content-type-options"] == "nosniff" && headers["cache-control"] == "no-store")
            #expect(!body.contains("<script") && !body.contains("style=\""), "\(page) carries a script or an inline style")
            #expect(!body.contains(served.readToken))
        }
        // Revoking the token ends its sessions.
        // The history page says when the chain is broken (an audit row edited beside Cairn).
        try runSQL(served.setup.dbPath, "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET reason = 'nothing to see' WHERE id = 2;")
        let (_, _, tampered) = try served.get("/ui/history?since=1h&verify=1", cookie: cookie)
        #expect(tampered.contains("The audit chain is broken at row 2"), "\(tampered.prefix(2000))")
        #expect(try cairn(["token", "revoke", "dashboard-viewer", "--db", served.setup.dbPath]).status == 0)
        let (after, afterHeaders, _) = try served.get("/ui/models", cookie: cookie)
        #expect(after == 303 && afterHeaders["location"] == "/ui/sign-in?expired=1")
        // Signing out ends a session too.
        let admin = try served.signIn(try #require(served.setup.token))
        _ = try rawHTTP(port: served.setup.port, "POST", "/ui/sign-out", cookie: admin)
        #expect(try served.get("/ui/", cookie: admin).0 == 303)
    }

    /// Each page shows what the registry holds.
    @Test func pagesShowWhatTheRegistryHolds() throws {
        let served = try Served()
        let cookie = try served.signIn(served.readToken)
        let db = try RegistryDatabase(path: served.setup.dbPath)
        let observed = try db.observedState()
        let overview = try served.get("/ui/", cookie: cookie).2
        #expect(overview.contains("<h2 id=\"blocked\">Blocked</h2>") && overview.contains("Conditions") && overview.contains("Runs in flight"))
        // The applied revision with its commit's message and author.
        let applied = try served.setup.work.git(["rev-parse", "HEAD"])
        #expect(overview.contains("<dt>Last applied</dt><dd><code>\(applied.prefix(12))</code> first — "), "\(overview.prefix(3000))")
        let models = try served.get("/ui/models?tab=all", cookie: cookie).2
        for name in observed.models.keys { #expect(models.contains(">\(name)</a>"), "\(name) is not listed") }
        let drafts = try served.get("/ui/models?phase=draft&tab=all", cookie: cookie).2
        #expect(drafts.contains("search-experimental") && !drafts.contains(">homepage-recs</a>"), "the phase filter")
        let detail = try served.get("/ui/models/homepage-recs", cookie: cookie).2
        for version in observed.models["homepage-recs"]!.versions {
            #expect(detail.contains("<td>v\(version.number)</td>"))
            for (metric, value) in version.metrics { #expect(detail.contains("\(metric) \(String(format: "%.4f", value))"), "\(metric)") }
            #expect(detail.contains(String(version.fingerprint.prefix(12))) && detail.contains(String(version.commit.prefix(12))))
        }
        #expect(detail.contains("<svg") && detail.contains("gate: min 0.0500"), "the ndcg@10 chart draws the gate")
        #expect(detail.contains("acme-homepage: v1 at 90%"))
        #expect(detail.contains("The resolved run configuration"))
        // The learning record: samples trained on, last trained, last learned from feedback (none yet).
        #expect(detail.contains("<dt>Trained on</dt><dd>24000 samples</dd>") && detail.contains("<dt>Last learned from feedback</dt><dd>never</dd>"), "\(detail.prefix(3000))")
        let targets = try served.get("/ui/targets", cookie: cookie).2
        for (name, target) in observed.targets where target.assigned {
            #expect(targets.contains("id=\"target-\(name)\""))
            for route in target.routes { #expect(targets.contains("\(route.weight)%")) }
        }
        let runs = try served.get("/ui/runs", cookie: cookie).2
        for run in observed.runs { #expect(runs.contains("<td>\(run.id)</td>")) }
        let history = try served.get("/ui/history?model=homepage-recs&action=promote", cookie: cookie).2
        #expect(history.contains("The audit chain verifies"))
        #expect(history.contains("<td>promote</td>") && !history.contains("<td>train</td>"), "the action filter")
        let plan = try served.get("/ui/plan", cookie: cookie).2
        #expect(plan.contains("<pre class=\"plan\">"))
        // A branch or a full commit id; never an expression or another kind of ref.
        let branch = try served.get("/ui/plan?revision=main", cookie: cookie)
        #expect(branch.0 == 200 && branch.2.contains("Branch <code>main</code> at commit"), "\(branch.2.suffix(1500))")
        let head = try served.setup.work.git(["rev-parse", "HEAD"])
        #expect(try served.get("/ui/plan?revision=\(head)", cookie: cookie).2.contains("Commit <code>\(head.prefix(12))</code>"))
        for refused in ["main~1", "main%5E", "HEAD", "-main", "refs%2Fheads%2F..%2Fmain", "no-such-branch"] {
            #expect(try served.get("/ui/plan?revision=\(refused)", cookie: cookie).0 == 400, "\(refused) was planned")
        }
        #expect(try served.get("/ui/models/no-such-model", cookie: cookie).0 == 404)
    }

    /// Attack: a one-line manifest change puts markup in a model's label and a version label;
    /// a reviewer reading the dashboard must see it as text, never run it.
    @Test func manifestValuesAreShownAsTextNeverAsMarkup() throws {
        let served = try Served()
        let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)> & \\\"quoted\\\""
        let file = served.setup.work.dir.url.appendingPathComponent("models/homepage.yaml")
        let text = try String(contentsOf: file, encoding: .utf8)
        try text.replacingOccurrences(of: "  label: Homepage recommender\n", with: "  label: \"\(hostile)\"\n")
            .write(to: file, atomically: true, encoding: .utf8)
        try served.setup.push("a label with markup")
        try served.setup.waitFor("the label to be applied") {
            try RegistryDatabase(path: served.setup.dbPath).observedState().models["homepage-recs"]?.spec.label?.contains("<script>") == true
        }
        let cookie = try served.signIn(served.readToken)
        for page in ["/ui/models/homepage-recs", "/ui/history?model=homepage-recs", "/ui/models"] {
            let body = try served.get(page, cookie: cookie).2
            #expect(!body.contains("<script>") && !body.contains("<img src=x"), "\(page) carries the markup")
        }
        let detail = try served.get("/ui/models/homepage-recs", cookie: cookie).2
        #expect(detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; &amp; &quot;quoted&quot;"), "\(detail.prefix(3000))")
    }

    static let browserReady: Bool = {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") && FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver")
            && (try? runProcess("/usr/bin/env", ["python3", "-c", "import selenium"]).status) == 0
    }()

    /// The test command installs Chromium and Selenium: a run that asked for them
    /// (CAIRN_REQUIRE_BROWSER=1) and lacks them fails here instead of skipping quietly.
    @Test func theBrowserIsThereWhenRequired() {
        if ProcessInfo.processInfo.environment["CAIRN_REQUIRE_BROWSER"] == "1" {
            #expect(Self.browserReady, "CAIRN_REQUIRE_BROWSER=1 but /usr/bin/chromium, /usr/bin/chromedriver or Python's selenium is missing")
        }
    }

    /// Every page in headless Chromium (Tests/Browser/dashboard.py): signed out and in, the
    /// registry's facts in the DOM, no console error, labels, headings, focus, contrast.
    /// Screenshots of every page go to .build/dashboard-screenshots.
    @Test(.enabled(if: browserReady, "no browser: install chromium, chromium-driver and Python's selenium (scripts/test.sh does)"))
    func everyPageWorksInARealBrowser() throws {
        let served = try Served()
        // A second version of the champion (a new retrainToken), so its charts draw a line.
        let file = served.setup.work.dir.url.appendingPathComponent("models/homepage.yaml")
        try String(contentsOf: file, encoding: .utf8).replacingOccurrences(of: "  label: Homepage recommender\n", with: "  label: Homepage recommender\n  retrainToken: \"2\"\n")
            .write(to: file, atomically: true, encoding: .utf8)
        try served.setup.push("retrain the champion")
        // Trained, approved, and promoted by the pass after (the target follows latest-approved).
        try served.setup.waitFor("v2 of homepage-recs live on acme-homepage", timeout: 120) {
            let observed = try RegistryDatabase(path: served.setup.dbPath).observedState()
            return observed.models["homepage-recs"]?.versions.count == 2
                && observed.targets["acme-homepage"]?.routes.contains { $0.model == "homepage-recs" && $0.version == 2 } == true
        }
        // With v2 live and v1 approved before it, the page shows how to roll each target back.
        let detail = try served.get("/ui/models/homepage-recs", cookie: try served.signIn(served.readToken)).2
        #expect(detail.contains("Roll back acme-homepage to v1") && detail.contains("{model: homepage-recs, version: 1, weight: 90}"), "\(detail.suffix(3000))")
        let db = try RegistryDatabase(path: served.setup.dbPath)
        let observed = try db.observedState()
        let versions = observed.models["homepage-recs"]!.versions
        let expect: [String: Any] = [
            "model": "homepage-recs",
            "models": observed.models.values.filter { !$0.archived }.map(\.spec.metadata.name).sorted(),
            "versions": versions.map { ["number": $0.number, "status": $0.status.rawValue, "metrics": $0.metrics] },
            "metricNames": Set(versions.flatMap(\.metrics.keys)).sorted(),
            "targets": observed.targets.values.filter(\.assigned).map(\.name).sorted(),
            "runs": observed.runs.map(\.id),
        ]
        let expectFile = served.setup.dir.url.appendingPathComponent("expect.json")
        try JSONSerialization.data(withJSONObject: expect).write(to: expectFile)
        let shots = packageRoot.appendingPathComponent(".build/dashboard-screenshots").path
        let result = try runProcess("/usr/bin/env", ["python3", packageRoot.appendingPathComponent("Tests/Browser/dashboard.py").path,
                                                     "--base", "http://127.0.0.1:\(served.setup.port)", "--token", served.readToken,
                                                     "--expect", expectFile.path, "--screenshots", shots])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr.suffix(3000))")
        #expect(result.stdout.contains("7 pages checked, 0 failures"), "\(result.stdout)")
        for page in ["sign-in", "overview", "models", "model", "targets", "runs", "history", "plan"] {
            #expect(FileManager.default.fileExists(atPath: "\(shots)/\(page).png"), "no screenshot of \(page)")
        }
    }
}
