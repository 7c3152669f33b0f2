import ArgumentParser
import CairnCore
import CairnRender
import CairnStore
import Foundation

func printJSON<T: Encodable>(_ value: T) { print(prettyJSON(value)) }

/// A table: aligned columns, or with `markdown` a GitHub table (pipes in cells escaped).
func table(_ header: [String], _ rows: [[String]], markdown: Bool = false) -> String {
    if markdown {
        func line(_ cells: [String]) -> String {
            "| " + cells.map { $0.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }.joined(separator: " | ") + " |"
        }
        return ([line(header), "|" + String(repeating: "---|", count: header.count)] + rows.map(line)).joined(separator: "\n") + "\n"
    }
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count) }
            .joined(separator: "  ")
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the observed state: models, serving targets, training runs.")

    @Argument(help: "Limit to one object: Model/NAME or ServingTarget/NAME.")
    var object: String?

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    struct ModelRow: Codable {
        var name: String
        var lifecycle: String
        var stage: String
        var family: String?
        var phase: String
        var detail: String?
        var versions: Int
        var latestApproved: Int?
        var latestApprovedLabel: String?
        var liveOn: [String]
        var trainingSamples: Int?
        var feedbackSamples: Int?
        var lastTrainedAt: Int64?
        var lastLearnedAt: Int64?
        /// Every version's metrics (`status Model/NAME` only).
        var metricsHistory: [ModelRecord.MetricsPoint]?
        var tenant: String?
        /// Traits as declared in git, and as discovery measured them.
        var declaredTraits: [String]?
        var discoveredTraits: DiscoveredTraits?
        /// The newest version's tuning run, in one line.
        var tuning: String?
    }

    struct TargetRow: Codable {
        var name: String
        var tenant: String
        var surface: String
        var assigned: Bool
        var routes: [LiveRoute]
        var shadow: [LiveRoute]
        var drift: DriftRecord?
        /// Declared in git but never promoted: why the last applied plan could not (tenant and surface empty).
        var notYetLive: String?
    }

    struct Report: Codable {
        var formatVersion = "1"
        var lastAppliedRevision: String?
        var generation: Int
        var suspended: Bool
        var models: [ModelRow]
        var targets: [TargetRow]
        var runs: [RegistryDatabase.RunSummary]
        /// What the last applied plan left blocked.
        var blocked: [BlockedChange]
    }

    func run() throws {
        try reportingFailures(format: output.format) {
            guard let db = try database.openForReading() else {
                throw CairnError("no registry database at \(database.shown)", hint: "run `cairn reconcile` first, or pass --db")
            }
            let observed = try db.observedState()
            var runs = try db.recentRuns(limit: 20)
            // Indexed once: per model, its runs and the targets it is live on (a fleet of
            // 100,000 models took 27 s when each model searched all runs and targets).
            let runsByModel = Dictionary(grouping: observed.runs, by: \.model)
            var liveOn: [String: Set<String>] = [:]
            for target in observed.targets.values where target.assigned {
                for route in target.routes + target.shadow { liveOn[route.model, default: []].insert(target.name) }
            }
            var models = observed.models.values.sorted { $0.spec.metadata.name < $1.spec.metadata.name }.map { m -> ModelRow in
                let name = m.spec.metadata.name
                let (phase, detail) = ModelPhase.of(m, runs: runsByModel[name] ?? [])
                let live = (liveOn[name] ?? []).sorted()
                let record = ModelRecord.of(m)
                return ModelRow(name: name, lifecycle: m.spec.lifecycle.rawValue, stage: m.stage.rawValue, family: m.spec.family,
                                phase: phase.rawValue, detail: detail, versions: m.versions.count, latestApproved: m.latestApproved?.number,
                                latestApprovedLabel: m.latestApproved?.label, liveOn: live, trainingSamples: record.trainingSamples,
                                feedbackSamples: record.feedbackSamples, lastTrainedAt: record.lastTrainedAt, lastLearnedAt: record.lastLearnedAt,
                                metricsHistory: object == nil ? nil : record.metricsHistory, tenant: m.spec.tenant,
                                declaredTraits: m.spec.traits.isEmpty ? nil : m.spec.traits, discoveredTraits: m.discovered,
                                tuning: m.versions.max { $0.number < $1.number }.flatMap { v in v.tuning.map { "v\(v.number): \($0.summary)" } })
            }
            let blocked = try db.lastBlocked()
            var targets = observed.targets.values.map {
                TargetRow(name: $0.name, tenant: $0.tenant, surface: $0.surface, assigned: $0.assigned, routes: $0.routes, shadow: $0.shadow, drift: $0.drift)
            }
            // A target declared in git and blocked before its first promotion has no row yet: list it with why.
            var waiting: [String: String] = [:]
            for b in blocked where b.address.kind == .servingTarget && observed.targets[b.address.name] == nil {
                waiting[b.address.name] = waiting[b.address.name].map { "\($0); \(b.reason)" } ?? b.reason
            }
            targets += waiting.map { TargetRow(name: $0.key, tenant: "", surface: "", assigned: false, routes: [], shadow: [], drift: nil, notYetLive: $0.value) }
            targets.sort { $0.name < $1.name }
            if let object {
                guard let address = ManifestAddress(parsing: object), [.model, .servingTarget].contains(address.kind), !address.name.isEmpty else {
                    throw CairnError("'\(object)' is not Model/NAME or ServingTarget/NAME")
                }
                let name = address.name
                if address.kind == .model {
                    models = models.filter { $0.name == name }
                    targets = targets.filter { $0.routes.contains { $0.model == name } || $0.shadow.contains { $0.model == name } }
                    runs = runs.filter { $0.model == name }
                    if models.isEmpty { throw CairnError("\(address) has never been applied", hint: "`cairn status` lists models") }
                } else {
                    targets = targets.filter { $0.name == name }
                    let served = Set(targets.flatMap { ($0.routes + $0.shadow).map(\.model) })
                    models = models.filter { served.contains($0.name) }
                    runs = runs.filter { served.contains($0.model) }
                    if targets.isEmpty { throw CairnError("\(address) has never been applied", hint: "`cairn status` lists targets") }
                }
            }
            let report = Report(lastAppliedRevision: observed.lastAppliedRevision, generation: observed.generation, suspended: observed.suspended,
                                models: models, targets: targets, runs: runs, blocked: blocked)
            if output.format == .json {
                printJSON(report)
                return
            }
            let markdown = output.format == .markdown
            let style = markdown ? Style(enabled: false) : output.style
            func heading(_ text: String) -> String { markdown ? "### \(text)\n\n" : style.bold(text) + "\n" }
            var out = (markdown ? "## " : "") + style.bold("Cairn status · \(database.shown)")
                + " · applied \(observed.lastAppliedRevision.map { String($0.prefix(7)) } ?? "nothing yet")"
                + " · generation \(observed.generation)" + (observed.suspended ? " · " + style.yellow("SUSPENDED") : "") + "\n\n"
            out += heading("Models")
            out += table(["NAME", "LIFECYCLE", "STAGE", "PHASE", "VERSIONS", "LIVE ON"], models.map {
                [$0.name, $0.lifecycle, $0.stage + ($0.family.map { " (\($0))" } ?? ""), $0.phase + ($0.detail.map { ": \($0)" } ?? ""),
                 "\($0.versions)" + ($0.latestApproved.map { ", v\($0) approved" } ?? "") + ($0.latestApprovedLabel.map { " “\($0)”" } ?? ""),
                 $0.liveOn.joined(separator: ", ")]
            }, markdown: markdown)
            if object != nil, let m = models.first, let history = m.metricsHistory {
                out += "\n" + heading("Model/\(m.name): learning record")
                out += "trained on \(m.trainingSamples.map { "\($0) samples" } ?? "-")"
                    + (m.feedbackSamples.map { $0 > 0 ? " (\($0) from feedback)" : "" } ?? "")
                    + " · last trained \(m.lastTrainedAt.map(Describe.time) ?? "never") · last learned from feedback \(m.lastLearnedAt.map(Describe.time) ?? "never")\n"
                out += "traits: declared [\((m.declaredTraits ?? []).joined(separator: ", "))]"
                    + " · discovered " + (m.discoveredTraits.map { "(\($0.summary), at \($0.commit.prefix(7)))" } ?? "none") + "\n"
                if let tuning = m.tuning { out += "tuning: \(tuning)\n" }
                out += table(["VERSION", "TRAINED", "STATUS", "METRICS"], history.map { p in
                    ["v\(p.version)", Describe.time(p.at), p.status.rawValue,
                     p.metrics.keys.sorted().map { "\($0)=\(String(format: "%.4f", p.metrics[$0]!))" }.joined(separator: " ")]
                }, markdown: markdown)
            }
            out += "\n" + heading("Serving targets")
            out += table(["NAME", "TENANT/SURFACE", "ROUTES", "SHADOW"], targets.map {
                [$0.name + ($0.drift != nil ? " (drift)" : ""), $0.notYetLive == nil ? "\($0.tenant)/\($0.surface)" : "",
                 $0.notYetLive.map { "not live yet: \($0)" } ?? ($0.assigned ? Describe.routes($0.routes) : "unassigned"),
                 $0.shadow.isEmpty ? "" : Describe.routes($0.shadow, weights: false)]
            }, markdown: markdown)
            out += "\n" + heading("Training runs (newest first)")
            out += table(["RUN", "MODEL", "STATE", "CREATED", "DETAIL"], runs.map {
                ["\($0.id)", $0.model, $0.state, Describe.time($0.createdAt),
                 ($0.awaitingRecord ? "trained; waits for cairn serve to verify, sign and record it" : $0.version.map { "v\($0)" } ?? ($0.reason ?? ""))
                    + ($0.job.map { " [\($0)]" } ?? "")]
            }, markdown: markdown)
            print(out, terminator: "")
        }
    }
}

struct Versions: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every version of a model.")

    /// A description in a table cell: its first line, at most 60 characters (`--format json` has it whole).
    static func oneLine(_ text: String) -> String {
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        return line.count > 60 || line.count < text.trimmingCharacters(in: .whitespacesAndNewlines).count ? String(line.prefix(59)) + "…" : line
    }

    @Argument(help: "The model.")
    var model: String

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try reportingFailures(format: output.format) {
            guard let db = try database.openForReading(), let versions = try db.versions(of: model) else {
                throw CairnError("Model/\(model) has never been applied", hint: "`cairn status` lists models")
            }
            if output.format == .json {
                printJSON(versions)
                return
            }
            print(table(["N", "SYSTEM NAME", "STATUS", "METRICS", "SAMPLES", "TUNING", "FINGERPRINT", "COMMIT", "LABEL", "DESCRIPTION"], versions.map { v in
                [String(v.number), v.systemName, v.status.rawValue,
                 v.metrics.keys.sorted().map { "\($0)=\(String(format: "%.4f", v.metrics[$0]!))" }.joined(separator: " "),
                 v.learned.map { "\($0.samples)" + ($0.feedbackSamples > 0 ? " (\($0.feedbackSamples) feedback)" : "") } ?? "",
                 v.tuning.map(\.summary) ?? "",
                 String(v.fingerprint.prefix(12)), String(v.commit.prefix(7)), v.label ?? "",
                 v.description.map(Self.oneLine) ?? ""]
            }, markdown: output.format == .markdown), terminator: "")
        }
    }
}

struct History: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the audit history, newest first.")

    @Option(help: "Only rows about this model (including promotions that route it).")
    var model: String?

    @Option(help: "Only rows about this serving target.")
    var target: String?

    @Option(help: "Only rows since this time: 2026-11-20, 2026-11-20T08:00:00Z, unix seconds, or an age such as 24h.")
    var since: String?

    @Option(help: "At most this many rows.")
    var limit: Int = 100

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try reportingFailures(format: output.format) {
            guard let db = try database.openForReading() else {
                throw CairnError("no registry database at \(database.shown)", hint: "run `cairn reconcile` first, or pass --db")
            }
            var sinceTime: Int64?
            if let since {
                guard let t = parseTime(since, now: unixNow()) else {
                    throw CairnError("--since '\(since)' is not a time", hint: "use 2026-11-20, 2026-11-20T08:00:00Z, unix seconds or an age such as 24h")
                }
                sinceTime = t
            }
            let rows = try db.history(RegistryDatabase.HistoryFilter(model: model, target: target, since: sinceTime, limit: limit))
            if output.format == .json {
                printJSON(rows)
                return
            }
            print(table(["ID", "TIME", "ACTION", "ADDRESS", "REASON", "ACTOR", "REVISION"], rows.map { row -> [String] in
                let address = row.address.description + (row.version.map { " v\($0)" } ?? "")
                return [String(row.id), Describe.time(row.at), row.action.rawValue, address, row.reason, row.actor,
                        row.revision.map { String($0.prefix(7)) } ?? "-"]
            }, markdown: output.format == .markdown), terminator: "")
        }
    }
}

/// 2026-11-20, 2026-11-20T08:00:00Z, unix seconds, or an age (24h, 7d) before `now`.
func parseTime(_ text: String, now: Int64) -> Int64? {
    if let seconds = Int64(text) { return seconds }
    if let age = ManifestDuration(parsing: text) { return now - Int64(age.seconds) }
    let formatter = ISO8601DateFormatter()
    if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970) }
    formatter.formatOptions = [.withFullDate]
    if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970) }
    return nil
}

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check the audit history.", subcommands: [Verify.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Recompute the audit hash chain, and check the registry's state against it.",
            discussion: "Exit status 0 when intact and matching, 1 when the chain is broken (the first bad row is printed) or a row differs from what the history implies (every such row is named)."
        )

        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingFailures {
                guard let db = try database.openForReading() else {
                    guard !database.isPostgres, FileManager.default.fileExists(atPath: RegistryDatabase.sqlitePath(database.db)) else {
                        throw CairnError("no registry database at \(database.shown)", hint: "pass --db")
                    }
                    // Created but never written (its creation was interrupted): an empty history is intact.
                    print("audit chain intact: 0 rows verified (the registry holds nothing yet)")
                    return
                }
                if let broken = try db.verifyAudit() {
                    print("audit chain BROKEN at row \(broken.id): \(broken.problem) (\(broken.count) rows before it verified)")
                    throw ExitCode(1)
                }
                print("audit chain intact: \(try db.auditCount()) rows verified")
                let mismatches = try db.verifyState()
                if !mismatches.isEmpty {
                    print("registry state DIFFERS from its audit history in \(mismatches.count) row\(mismatches.count == 1 ? "" : "s"):")
                    for m in mismatches.prefix(100) { print("  \(m)") }
                    if mismatches.count > 100 { print("  … and \(mismatches.count - 100) more") }
                    throw ExitCode(1)
                }
                print("registry state matches its audit history: definitions, stages, version decisions, routes and run outcomes")
            }
        }
    }
}
