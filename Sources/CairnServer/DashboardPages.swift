import CairnCore
import CairnReconcile
import CairnRender
import CairnStore
import Foundation

/// The dashboard's pages, as HTML text. Every value from the registry, the manifests or the
/// request is escaped with `HTML.h`.
enum DashboardPages {
    typealias H = HTML

    static let nav: [(path: String, title: String)] = [
        ("/ui/", "Overview"), ("/ui/models", "Models"), ("/ui/targets", "Serving targets"), ("/ui/runs", "Training runs"),
        ("/ui/history", "History"), ("/ui/plan", "Plan"),
    ]

    /// The page around `body`: a skip link, the navigation (the current page marked), one `h1`.
    static func layout(_ title: String, current: String?, body: String, refresh: Int? = nil, signedIn: Bool = true) -> String {
        var out = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(H.h(title)) · Cairn</title>
        <link rel="stylesheet" href="/ui/style.css">

        """
        if let refresh { out += "<meta http-equiv=\"refresh\" content=\"\(refresh)\">\n" }
        out += "</head>\n<body>\n<a class=\"skip\" href=\"#main\">Skip to the content</a>\n<header>\n<p class=\"brand\">Cairn</p>\n"
        if signedIn {
            out += "<nav aria-label=\"Dashboard\"><ul>\n"
            for item in nav {
                out += "<li><a href=\"\(item.path)\"" + (item.path == current ? " aria-current=\"page\"" : "") + ">\(H.h(item.title))</a></li>\n"
            }
            out += "</ul></nav>\n<form method=\"post\" action=\"/ui/sign-out\" class=\"sign-out\"><button type=\"submit\">Sign out</button></form>\n"
        }
        out += "</header>\n<main id=\"main\">\n<h1>\(H.h(title))</h1>\n" + body + "</main>\n"
        out += "<footer><p>Read-only. Every change goes through a reviewed commit: where a decision is due, the page shows the YAML to commit.</p></footer>\n</body>\n</html>\n"
        return out
    }

    static func notFound(_ message: String) -> String {
        layout("Not found", current: nil, body: "<p>\(H.h(message))</p>\n<p><a href=\"/ui/models\">All models</a></p>\n")
    }

    static func signIn(message: String?) -> String {
        var body = ""
        if let message { body += "<p class=\"error\" role=\"alert\">\(H.h(message))</p>\n" }
        body += """
        <p>Sign in with an API token of read scope (<code>cairn token create NAME --scope read</code>).</p>
        <form method="post" action="/ui/sign-in">
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required>
        <button type="submit">Sign in</button>
        </form>

        """
        return layout("Sign in", current: nil, body: body, signedIn: false)
    }

    // MARK: Overview

    static func overview(_ observed: ObservedState, conditions: [Condition], lastApplied: (sha: String, commit: CommitInfo?)?,
                         lastAttempted: (sha: String, commit: CommitInfo?)?, suspended: String?, blocked: [BlockedChange]?) -> String {
        func revision(_ r: (sha: String, commit: CommitInfo?)?) -> String {
            guard let r else { return "none" }
            return "<code>\(H.h(String(r.sha.prefix(12))))</code>"
                + (r.commit.map { " \(H.h($0.summary)) — \(H.h($0.authorName)), \(H.time($0.time))" } ?? "")
        }
        var body = "<section aria-labelledby=\"conditions\">\n<h2 id=\"conditions\">Conditions</h2>\n"
        body += H.table("Reconciler conditions", ["Condition", "Status", "Reason", "Message", "Since"], conditions.map {
            [H.h($0.type), H.badge($0.status == "True" ? $0.type : "not " + $0.type.lowercased()), H.h($0.reason), H.h($0.message), H.h($0.lastTransitionTime)]
        }, empty: "No pass has run yet.")
        body += "</section>\n<section aria-labelledby=\"revision\">\n<h2 id=\"revision\">Revision</h2>\n<dl>\n"
        body += "<dt>Last applied</dt><dd>\(revision(lastApplied))</dd>\n"
        body += "<dt>Last attempted</dt><dd>\(revision(lastAttempted))</dd>\n"
        body += "<dt>Applying</dt><dd>" + (suspended.map { H.badge("suspended") + " " + H.h($0) + " (<code>cairn resume</code>)" } ?? "active") + "</dd>\n</dl>\n</section>\n"
        let drifted = observed.targets.values.filter { $0.drift != nil }.sorted { $0.name < $1.name }
        body += "<section aria-labelledby=\"drift\">\n<h2 id=\"drift\">Drift</h2>\n"
        body += H.table("Serving targets changed outside git", ["Target", "How", "By", "When"], drifted.prefix(50).map {
            ["<a href=\"\(H.link("/ui/targets"))#target-\(H.h($0.name))\">\(H.h($0.name))</a>", H.h($0.drift!.how), H.h($0.drift!.actor), H.time($0.drift!.at)]
        }, empty: "No drift: every live target is as the last applied revision says.")
        if drifted.count > 50 { body += "<p>The first 50 of \(drifted.count) drifted targets: <a href=\"/ui/targets\">the serving targets</a> show each.</p>\n" }
        let active = observed.runs.filter { $0.state.isActive }
        body += "</section>\n<section aria-labelledby=\"inflight\">\n<h2 id=\"inflight\">Runs in flight</h2>\n"
        body += H.table("Queued and running training runs", ["Run", "Model", "State", "Queued"], active.prefix(50).map {
            ["\($0.id)", modelLink($0.model), H.badge($0.state.rawValue), H.time($0.createdAt)]
        }, empty: "No run is queued or running.")
        if active.count > 50 { body += "<p>The first 50 of \(active.count) runs in flight: <a href=\"/ui/runs\">the training runs</a> show more.</p>\n" }
        body += "</section>\n<section aria-labelledby=\"blocked\">\n<h2 id=\"blocked\">Blocked</h2>\n"
        if let blocked {
            body += H.table("What the next pass cannot do, and why", ["Object", "Action", "Why"], blocked.prefix(50).map {
                [H.h("\($0.address)"), H.h($0.action.rawValue + ($0.version.map { " v\($0)" } ?? "")), H.h($0.reason)]
            }, empty: "Nothing is blocked.")
            if blocked.count > 50 { body += "<p>The first 50 of \(blocked.count) blocked changes: <a href=\"/ui/plan\">the plan</a> lists them.</p>\n" }
        } else {
            body += "<p class=\"empty\">No valid revision has been read yet.</p>\n"
        }
        body += "</section>\n"
        body += "<section aria-labelledby=\"counts\">\n<h2 id=\"counts\">Registry</h2>\n<p>\(observed.models.count) models, \(observed.targets.values.filter(\.assigned).count) live serving targets, generation \(observed.generation). "
            + "<a href=\"/ui/plan\">What the next pass would do</a>.</p>\n</section>\n"
        return layout("Overview", current: "/ui/", body: body)
    }

    static func modelLink(_ name: String) -> String { "<a href=\"/ui/models/\(H.h(H.q(name)))\">\(H.h(name))</a>" }

    // MARK: Models

    struct ModelFilter {
        var family: String?
        var stage: String?
        var phase: String?
        var tab: String
        var page: Int
        static let pageSize = 50

        func query(page: Int? = nil, tab: String? = nil) -> [(String, String?)] {
            [("tab", tab ?? self.tab), ("family", family), ("stage", stage), ("phase", phase), ("page", (page ?? self.page) == 1 ? nil : String(page ?? self.page))]
        }
    }

    static func models(_ observed: ObservedState, filter: ModelFilter) -> String {
        let runsByModel = Dictionary(grouping: observed.runs, by: \.model)
        var live: [String: [String]] = [:]
        for target in observed.targets.values where target.assigned {
            for route in target.routes { live[route.model, default: []].append("\(target.name) v\(route.version) \(route.weight)%") }
            for route in target.shadow { live[route.model, default: []].append("\(target.name) v\(route.version) shadow") }
        }
        let all = observed.models.values.sorted { $0.spec.metadata.name < $1.spec.metadata.name }
        let rows = all.compactMap { m -> (ObservedModel, ModelPhase, String?)? in
            switch filter.tab {
            case "archived": if !m.archived { return nil }
            case "all": break
            default: if m.archived { return nil }
            }
            if let f = filter.family, !f.isEmpty, m.spec.family != f { return nil }
            if let s = filter.stage, !s.isEmpty, m.stage.rawValue != s { return nil }
            let (phase, detail) = ModelPhase.of(m, runs: runsByModel[m.spec.metadata.name] ?? [])
            if let p = filter.phase, !p.isEmpty, phase.rawValue != p { return nil }
            return (m, phase, detail)
        }
        let pages = max(1, (rows.count + ModelFilter.pageSize - 1) / ModelFilter.pageSize)
        let page = min(filter.page, pages)
        let shown = rows.dropFirst((page - 1) * ModelFilter.pageSize).prefix(ModelFilter.pageSize)

        var body = "<nav aria-label=\"Model lists\" class=\"tabs\"><ul>\n"
        for (tab, title) in [("active", "Active"), ("archived", "Archived"), ("all", "All")] {
            body += "<li><a href=\"\(H.link("/ui/models", filter.query(page: 1, tab: tab)))\"" + (tab == filter.tab ? " aria-current=\"page\"" : "") + ">\(title)</a></li>\n"
        }
        body += "</ul></nav>\n"
        let families = Set(all.compactMap(\.spec.family)).sorted()
        body += "<form method=\"get\" action=\"/ui/models\" class=\"filters\">\n<input type=\"hidden\" name=\"tab\" value=\"\(H.h(filter.tab))\">\n"
        body += select("family", "Family", ["" : "any"], options: families, selected: filter.family)
        body += select("stage", "Stage", ["": "any"], options: Model.Stage.allCases.map(\.rawValue), selected: filter.stage)
        body += select("phase", "Phase", ["": "any"], options: ["draft", "busy", "ready", "pending", "rejected", "failed", "archived"], selected: filter.phase)
        body += "<button type=\"submit\">Filter</button>\n</form>\n"
        body += "<p>\(rows.count) model\(rows.count == 1 ? "" : "s")" + (pages > 1 ? ", page \(page) of \(pages)" : "") + ".</p>\n"
        body += H.table("Models", ["Model", "Lifecycle", "Family", "Stage", "Phase", "Latest version", "Key metric", "Live on"], shown.map { m, phase, detail in
            let latest = m.versions.max { $0.number < $1.number }
            let key = m.spec.approval.gates.first?.metric ?? latest?.metrics.keys.sorted().first
            return [modelLink(m.spec.metadata.name), H.h(m.spec.lifecycle.rawValue), H.h(m.spec.family ?? "—"), H.h(m.stage.rawValue),
                    H.badge(phase.rawValue) + (detail.map { " <span class=\"detail\">\(H.h($0))</span>" } ?? ""),
                    latest.map { "v\($0.number) " + H.badge($0.status.rawValue) } ?? "—",
                    key.map { k in "\(H.h(k)) \(H.metric(latest?.metrics[k]))" } ?? "—",
                    H.h((live[m.spec.metadata.name] ?? []).sorted().joined(separator: ", "))]
        }, empty: "No model matches.")
        if pages > 1 {
            body += "<nav aria-label=\"Pages\" class=\"pages\"><ul>\n"
            if page > 1 { body += "<li><a href=\"\(H.link("/ui/models", filter.query(page: page - 1)))\" rel=\"prev\">Previous page</a></li>\n" }
            if page < pages { body += "<li><a href=\"\(H.link("/ui/models", filter.query(page: page + 1)))\" rel=\"next\">Next page</a></li>\n" }
            body += "</ul></nav>\n"
        }
        return layout("Models", current: "/ui/models", body: body)
    }

    static func select(_ name: String, _ label: String, _ first: [String: String], options: [String], selected: String?) -> String {
        var out = "<label for=\"f-\(name)\">\(H.h(label))</label>\n<select id=\"f-\(name)\" name=\"\(name)\">\n"
        for (value, title) in first { out += "<option value=\"\(H.h(value))\">\(H.h(title))</option>\n" }
        for option in options {
            out += "<option value=\"\(H.h(option))\"" + (option == selected ? " selected" : "") + ">\(H.h(option))</option>\n"
        }
        return out + "</select>\n"
    }

    // MARK: Model detail

    static func model(_ m: ObservedModel, observed: ObservedState, history: [AuditEntry], runs: [Int: RegistryDatabase.RunSummary], request: String?,
                      file: String?) -> String {
        let name = m.spec.metadata.name
        let versions = m.versions.sorted { $0.number > $1.number }
        // Who committed what queued each run: the train change's audit row.
        var authors: [Int: String] = [:]
        for row in history where row.action == .train {
            if case let .object(after)? = row.after, case let .int(run)? = after["run"] { authors[run] = row.author }
        }
        var body = "<dl class=\"facts\">\n<dt>Template</dt><dd>\(H.h(m.spec.template))</dd>\n<dt>Lifecycle</dt><dd>\(H.h(m.spec.lifecycle.rawValue))</dd>\n"
        body += "<dt>Family and stage</dt><dd>\(H.h(m.spec.family ?? "no family")) · \(H.h(m.stage.rawValue))</dd>\n"
        body += "<dt>Approval</dt><dd>\(H.h(describe(m.spec.approval)))</dd>\n"
        if let label = m.spec.label { body += "<dt>Label</dt><dd>\(H.h(label))</dd>\n" }
        let record = ModelRecord.of(m)
        body += "<dt>Trained on</dt><dd>" + (record.trainingSamples.map { "\($0) samples" + ((record.feedbackSamples ?? 0) > 0 ? " (\(record.feedbackSamples!) from feedback)" : "") } ?? "—")
            + "</dd>\n<dt>Last trained</dt><dd>\(H.time(record.lastTrainedAt))</dd>\n<dt>Last learned from feedback</dt><dd>"
            + (record.lastLearnedAt.map { H.time($0) } ?? "never") + "</dd>\n"
        body += "<dt>Declared traits</dt><dd>\(H.h(m.spec.traits.isEmpty ? "none" : m.spec.traits.joined(separator: ", ")))</dd>\n"
        body += "<dt>Discovered traits</dt><dd>\(H.h(m.discovered?.summary ?? "not discovered"))</dd>\n"
        if let newest = m.versions.max(by: { $0.number < $1.number }), let tuning = newest.tuning {
            body += "<dt>Tuning (v\(newest.number))</dt><dd>\(H.h(tuning.summary))<table><thead><tr><th>Trial</th><th>Parameters</th><th>\(H.h(tuning.metric))</th><th>Seconds</th></tr></thead><tbody>"
            for t in tuning.trials {
                let params = t.params.keys.sorted().map { "\($0)=\(t.params[$0]!.canonicalText)" }.joined(separator: " ")
                body += "<tr><td>\(t.trial)\(t.trial == tuning.chosen ? " (chosen)" : "")</td><td>\(H.h(params))</td><td>"
                    + "\(t.metrics[tuning.metric].map { String(format: "%.4f", $0) } ?? "—")</td><td>\(String(format: "%.2f", t.seconds))</td></tr>"
            }
            body += "</tbody></table></dd>\n"
        }
        body += "</dl>\n"

        var where_: [String] = []
        for target in observed.targets.values.sorted(by: { $0.name < $1.name }) where target.assigned {
            for r in target.routes where r.model == name { where_.append("\(target.name): v\(r.version) at \(r.weight)%") }
            for r in target.shadow where r.model == name { where_.append("\(target.name): v\(r.version) as shadow") }
        }
        body += "<section aria-labelledby=\"live\">\n<h2 id=\"live\">Live</h2>\n"
            + (where_.isEmpty ? "<p class=\"empty\">Not live on any serving target.</p>\n" : "<ul>\n" + where_.map { "<li>\(H.h($0))</li>\n" }.joined() + "</ul>\n")
            + "</section>\n"

        body += "<section aria-labelledby=\"versions\">\n<h2 id=\"versions\">Versions</h2>\n"
        body += H.table("Versions of \(name), newest first", ["Version", "System name", "Label", "Status", "Metrics", "Samples", "Dataset", "Fingerprint", "Commit",
                                                                "Author", "Trained at", "Duration"], versions.map { v in
            let run = runs[v.runID]
            let duration = run.flatMap { r in r.startedAt.flatMap { s in r.finishedAt.map { $0 - s } } }
            return ["v\(v.number)", H.h(v.systemName), H.h([v.label, v.description].compactMap { $0 }.joined(separator: ": ")),
                    H.badge(v.status.rawValue) + (v.statusReason.map { " <span class=\"detail\">\(H.h($0))</span>" } ?? ""),
                    v.metrics.keys.sorted().map { "\(H.h($0)) \(H.metric(v.metrics[$0]))" }.joined(separator: "<br>"),
                    v.learned.map { "\($0.samples)" + ($0.feedbackSamples > 0 ? "<br><span class=\"detail\">\($0.feedbackSamples) from feedback</span>" : "") } ?? "—",
                    "<code>\(H.h(String(v.datasetHash.prefix(12))))</code>", "<code>\(H.h(String(v.fingerprint.prefix(12))))</code>",
                    "<code>\(H.h(String(v.commit.prefix(12))))</code>", H.h(authors[v.runID] ?? "—"), H.time(v.createdAt), H.duration(duration)]
        }, empty: "No version yet: the model has not been trained.")
        body += "</section>\n"

        let metrics = Set(m.versions.flatMap(\.metrics.keys)).sorted()
        if !metrics.isEmpty {
            body += "<section aria-labelledby=\"charts\">\n<h2 id=\"charts\">Metrics across versions</h2>\n"
            for metric in metrics { body += H.chart(metric: metric, versions: m.versions, gates: m.spec.approval.gates) }
            body += "</section>\n"
        }

        body += "<section aria-labelledby=\"decide\">\n<h2 id=\"decide\">Decisions: what to commit</h2>\n"
        let where_file = file.map { "in <code>\(H.h($0))</code>, " } ?? ""
        let pending = versions.filter { $0.status == .pending }
        if pending.isEmpty {
            body += "<p class=\"empty\">No version awaits a decision.</p>\n"
        }
        for v in pending {
            let approve = m.spec.decisions.approve + [v.number]
            body += "<h3>Approve or reject v\(v.number)</h3>\n<p>To approve, \(where_file)under <code>Model/\(H.h(name))</code>:</p>\n"
            body += "<pre><code>spec:\n  decisions:\n    approve: [\(approve.sorted().map(String.init).joined(separator: ", "))]</code></pre>\n"
            body += "<p>To reject instead:</p>\n<pre><code>spec:\n  decisions:\n    reject: [\((m.spec.decisions.reject + [v.number]).sorted().map(String.init).joined(separator: ", "))]</code></pre>\n"
        }
        let approved = versions.filter { $0.status == .approved }
        if let newest = approved.first {
            body += "<h3>Promote</h3>\n<p>In the <code>ServingTarget</code> that should serve it, name the version in its route "
                + "(<code>latest-approved</code> follows new approvals instead):</p>\n"
            body += "<pre><code>spec:\n  routes:\n    - {model: \(H.h(name)), version: \(newest.number), weight: 100}</code></pre>\n"
        }
        // Rolling back: each target serving a version with an older approved one before it.
        for target in observed.targets.values.sorted(by: { $0.name < $1.name }) where target.assigned {
            for route in target.routes where route.model == name {
                guard let previous = approved.first(where: { $0.number < route.version }) else { continue }
                body += "<h3>Roll back \(H.h(target.name)) to v\(previous.number)</h3>\n<p>In <code>ServingTarget/\(H.h(target.name))</code>, "
                    + "replace this model's route (it serves v\(route.version) at \(route.weight)%):</p>\n"
                body += "<pre><code>    - {model: \(H.h(name)), version: \(previous.number), weight: \(route.weight)}</code></pre>\n"
            }
        }
        body += "</section>\n"

        body += "<section aria-labelledby=\"lineage\">\n<h2 id=\"lineage\">Lineage and run configuration</h2>\n"
        if let template = observed.templates[m.spec.template]?.spec {
            body += "<dl class=\"facts\">\n<dt>Trainer</dt><dd>\(H.h(Describe.template(template)))</dd>\n<dt>Dataset</dt><dd>"
            switch template.dataset {
            case let .path(p): body += "<code>\(H.h(p))</code> (in git)"
            case let .uri(u): body += "<code>\(H.h(u))</code>"
            }
            body += "</dd>\n<dt>Events</dt><dd>\(H.h(template.events.joined(separator: ", ")))</dd>\n</dl>\n"
        }
        if let request {
            body += "<details>\n<summary>The resolved run configuration of the newest version's run</summary>\n<pre><code>"
                + H.h(prettyJSON(JSONValue.parse(request) ?? .string(request))) + "</code></pre>\n</details>\n"
        }
        body += "<p><a href=\"\(H.link("/ui/history", [("model", name)]))\">History of \(H.h(name))</a></p>\n</section>\n"
        return layout("Model \(name)", current: "/ui/models", body: body)
    }

    static func describe(_ a: Model.Approval) -> String {
        let gates = a.gates.map { g in
            [g.min.map { "\(g.metric) ≥ \($0)" }, g.max.map { "\(g.metric) ≤ \($0)" }, g.maxRegression.map { "\(g.metric) within \($0) of the best approved" }]
                .compactMap { $0 }.joined(separator: ", ")
        }
        return a.mode.rawValue + (gates.isEmpty ? "" : ": " + gates.joined(separator: "; "))
    }

    // MARK: Serving targets

    static func targets(_ observed: ObservedState, promotions: [AuditEntry]) -> String {
        var last: [String: AuditEntry] = [:]
        for row in promotions {
            if case let .manifest(address) = row.address, address.kind == .servingTarget, last[address.name] == nil || last[address.name]!.id < row.id {
                last[address.name] = row
            }
        }
        var body = ""
        let targets = observed.targets.values.sorted { $0.name < $1.name }
        if targets.isEmpty { body += "<p class=\"empty\">No serving target yet.</p>\n" }
        for t in targets {
            body += "<section aria-labelledby=\"target-\(H.h(t.name))\">\n<h2 id=\"target-\(H.h(t.name))\">\(H.h(t.name))</h2>\n"
            body += "<p>Tenant <strong>\(H.h(t.tenant))</strong>, surface <strong>\(H.h(t.surface))</strong>. "
            if let row = last[t.name] {
                body += "Last promoted \(H.time(row.at)) by commit <code>\(H.h(String((row.revision ?? "?").prefix(12))))</code>"
                    + (row.author.map { " (\(H.h($0)))" } ?? "") + "."
            }
            body += "</p>\n"
            if !t.assigned {
                body += "<p class=\"empty\">Serves nothing.</p>\n"
            } else {
                body += H.weightBar(t.routes) + "\n"
                body += H.table("Routes of \(t.name)", ["Model", "Version", "Weight"], t.routes.map { [modelLink($0.model), "v\($0.version)", "\($0.weight)%"] })
                body += H.table("Shadows of \(t.name) (scored, never served)", ["Model", "Version"], t.shadow.map { [modelLink($0.model), "v\($0.version)"] },
                                empty: "No shadow.")
            }
            if let drift = t.drift {
                body += "<p class=\"error\">Drift: \(H.h(drift.how)) by \(H.h(drift.actor)) at \(H.time(drift.at)); "
                    + (drift.guarded != nil ? "it stays until a commit changes its routes.</p>\n" : "the next pass returns it to git's version.</p>\n")
            }
            body += "</section>\n"
        }
        return layout("Serving targets", current: "/ui/targets", body: body)
    }

    // MARK: Training runs

    static func runs(_ runs: [(RegistryDatabase.RunSummary, String)], now: Int64) -> String {
        let active = runs.contains { $0.0.state == "queued" || $0.0.state == "running" }
        var body = active ? "<p>Runs are active: this page refreshes every 5 seconds.</p>\n" : ""
        body += H.table("Training runs, newest first", ["Run", "Model", "State", "Attempt", "Queued", "Started", "Finished", "Duration", "Reason", "Log tail"],
                        runs.map { run, log in
            let end = run.finishedAt ?? (run.state == "running" ? now : nil)
            let tail = log.split(separator: "\n", omittingEmptySubsequences: false).suffix(6).joined(separator: "\n")
            return ["\(run.id)", modelLink(run.model), H.badge(run.state) + (run.job.map { " <span class=\"detail\">\(H.h($0))</span>" } ?? ""),
                    "\(run.attempts)", H.time(run.createdAt), H.time(run.startedAt), H.time(run.finishedAt),
                    H.duration(run.startedAt.flatMap { s in end.map { $0 - s } }),
                    H.h(run.version.map { "v\($0)" } ?? run.reason ?? ""), tail.isEmpty ? "" : "<pre class=\"tail\">\(H.h(tail))</pre>"]
        }, empty: "No training run yet.")
        return layout("Training runs", current: "/ui/runs", body: body, refresh: active ? 5 : nil)
    }

    // MARK: History

    static func history(_ rows: [AuditEntry], filter: RegistryDatabase.HistoryFilter, action: String?, since: String?, broken: String?,
                        verifiedAt: Int64) -> String {
        var body = broken.map { "<p class=\"error\" role=\"alert\">The audit chain is broken at \(H.h($0)) (checked \(H.time(verifiedAt))).</p>\n" }
            ?? "<p>\(H.badge("verified")) The audit chain verifies: every row's hash matches its content and the row before it (checked \(H.time(verifiedAt)), "
            + "again when the history grows or a minute has passed; <a href=\"\(H.link("/ui/history", [("model", filter.model), ("target", filter.target), ("action", action), ("since", since), ("verify", "1")]))\">verify now</a>).</p>\n"
        body += "<form method=\"get\" action=\"/ui/history\" class=\"filters\">\n"
        body += "<label for=\"f-model\">Model</label>\n<input id=\"f-model\" name=\"model\" value=\"\(H.h(filter.model ?? ""))\">\n"
        body += "<label for=\"f-target\">Serving target</label>\n<input id=\"f-target\" name=\"target\" value=\"\(H.h(filter.target ?? ""))\">\n"
        body += select("action", "Action", ["": "any"], options: AuditAction.allCases.map(\.rawValue), selected: action)
        body += "<label for=\"f-since\">Within the last</label>\n<input id=\"f-since\" name=\"since\" placeholder=\"24h\" value=\"\(H.h(since ?? ""))\">\n"
        body += "<button type=\"submit\">Filter</button>\n</form>\n"
        body += H.table("Audit history, newest first", ["Row", "When", "Action", "Object", "Version", "Reason", "Commit", "Author", "Actor"], rows.map {
            ["\($0.id)", H.time($0.at), H.h($0.action.rawValue), H.h("\($0.address)"), $0.version.map { "v\($0)" } ?? "", H.h($0.reason),
             "<code>\(H.h(String(($0.revision ?? "").prefix(12))))</code>", H.h($0.author ?? ""), H.h($0.actor)]
        }, empty: "No row matches.")
        return layout("History", current: "/ui/history", body: body)
    }

    // MARK: Plan

    static func plan(_ plan: Plan?, revision: String?, problem: String?) -> String {
        var body = "<form method=\"get\" action=\"/ui/plan\" class=\"filters\">\n<label for=\"f-revision\">Plan of a branch or commit (what merging it would do)</label>\n"
            + "<input id=\"f-revision\" name=\"revision\" size=\"42\" placeholder=\"a branch or a full commit id\" value=\"\(H.h(revision ?? ""))\">\n"
            + "<button type=\"submit\">Plan</button>\n</form>\n"
        if let problem { body += "<p class=\"error\" role=\"alert\">\(H.h(problem))</p>\n" }
        if let plan {
            let what = revision.map { CommitInfo.isFullID($0) ? "Commit" : "Branch <code>\(H.h($0))</code> at commit" }
            body += "<p>\(what.map { "\($0) <code>\(H.h(String(plan.revision.prefix(12))))</code>" } ?? "The followed revision") against the live registry: "
                + "\(plan.changes.count) change\(plan.changes.count == 1 ? "" : "s"), \(plan.blocked.count) blocked. The same text as the pull-request comment:</p>\n"
            body += "<pre class=\"plan\">\(H.h(MarkdownPlan.render(plan)))</pre>\n"
        }
        return layout("Plan", current: "/ui/plan", body: body)
    }

    // MARK: Style

    static let css = """
    :root { color-scheme: light; }
    body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1a1a1a; background: #fff; }
    header { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem; padding: .5rem 1rem; background: #10253f; color: #fff; }
    header a { color: #fff; }
    .brand { font-weight: 700; margin: 0; }
    nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: .75rem; margin: 0; padding: 0; }
    nav a[aria-current="page"] { font-weight: 700; text-decoration-thickness: 3px; }
    .tabs a { color: #0b3d91; }
    .sign-out { margin-left: auto; }
    main { padding: 1rem; max-width: 110rem; }
    a { color: #0b3d91; }
    a:focus, button:focus, input:focus, select:focus, summary:focus { outline: 3px solid #e8a200; outline-offset: 2px; }
    .skip { position: absolute; left: -999px; }
    .skip:focus { left: 1rem; top: .5rem; background: #fff; color: #000; padding: .25rem .5rem; z-index: 2; }
    table { border-collapse: collapse; margin: .5rem 0 1.25rem; }
    caption { text-align: left; font-weight: 600; padding: .25rem 0; }
    th, td { border: 1px solid #b0b7c3; padding: .25rem .5rem; text-align: left; vertical-align: top; }
    th { background: #eef1f5; }
    .badge { display: inline-block; padding: 0 .4rem; border-radius: .25rem; border: 1px solid #555; background: #f3f3f3; color: #1a1a1a; font-size: .85em; }
    .badge-approved, .badge-succeeded, .badge-ready, .badge-verified, .badge-ready { background: #dff0e1; border-color: #1e6b30; color: #14461f; }
    .badge-rejected, .badge-failed, .badge-stalled, .badge-cancelled { background: #fbe4e4; border-color: #a4262c; color: #6e1a1d; }
    .badge-pending, .badge-running, .badge-queued, .badge-busy, .badge-reconciling, .badge-suspended { background: #fff4d6; border-color: #7a5b00; color: #4d3900; }
    .detail { color: #444; font-size: .9em; }
    .empty { color: #444; font-style: italic; }
    .error { color: #8a1c21; font-weight: 600; }
    .filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .5rem 0; }
    pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: .5rem; overflow-x: auto; }
    pre.tail { max-width: 36rem; max-height: 8rem; margin: 0; font-size: .85em; }
    dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
    dl.facts dt { font-weight: 600; }
    figure { margin: .5rem 0 1rem; }
    figcaption { font-size: .9em; color: #333; }
    footer { padding: 1rem; color: #444; font-size: .9em; border-top: 1px solid #ddd; }
    button { font: inherit; padding: .2rem .6rem; }

    """
}
