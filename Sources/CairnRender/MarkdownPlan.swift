import CairnCore

/// The plan as a pull-request comment: summary first, a table per action group, candidate
/// metrics beside the live version, and never more than `limit` characters.
public enum MarkdownPlan {
    public static let defaultLimit = 60_000

    static let groups: [(String, [Action])] = [
        ("Definitions", [.create, .update, .stage]),
        ("Training", [.train]),
        ("Approvals", [.approve, .reject]),
        ("Serving", [.promote, .demote]),
        ("Archive", [.archive]),
    ]

    public static func render(_ plan: Plan, limit: Int = defaultLimit) -> String {
        var doc = Budget(limit: limit)
        if plan.registryMissing {
            doc.add("> **Warning:** no registry database: this plan is against an empty registry, as if nothing had ever been applied.\n\n")
        }
        doc.add("### Cairn plan for `\(plan.revisionName)` @ `\(plan.revision.prefix(7))`\n\n")
        doc.add("**\(PlanRenderer.summaryLine(plan))** \(plan.manifestCount) manifests")
        doc.add(plan.lastAppliedRevision.map { "; last applied `\($0.prefix(7))`" } ?? "; nothing applied yet")
        doc.add(", observed generation \(plan.observedGeneration).\n")
        for (title, actions) in groups {
            let rows = plan.changes.filter { actions.contains($0.action) }
            guard !rows.isEmpty else { continue }
            doc.add("\n#### \(title) (\(rows.count))\n\n| | address | change |\n|---|---|---|\n")
            for change in rows {
                doc.row("| \(change.action.symbol) | `\(change.address)` | \(cell(PlanRenderer.describe(change))) |\n")
            }
        }
        if !plan.blocked.isEmpty {
            doc.add("\n#### Blocked (\(plan.blocked.count))\n\n| address | would | reason |\n|---|---|---|\n")
            for b in plan.blocked {
                doc.row("| `\(b.address)` | \(b.action.rawValue)\(b.version.map { " v\($0)" } ?? "") | \(cell(b.reason)) |\n")
            }
        }
        if !plan.drift.isEmpty {
            doc.add("\n#### Drift (changed outside git)\n\n| address | live | declared | by |\n|---|---|---|---|\n")
            for d in plan.drift {
                doc.row("| `\(d.address)` | \(cell(d.live)) | \(cell(d.declared)) | \(cell(d.actor)), \(Describe.time(d.at)), \(cell(d.how)) |\n")
            }
        }
        if let untrusted = plan.untrusted {
            doc.add("\n> **Not signed by a trusted key**: this commit itself would not be applied (\(cell(untrusted))). The commit that lands must be.\n")
        }
        for readout in plan.readouts {
            doc.add("\n#### A/B readout of `ServingTarget/\(readout.target)` so far\n\nSince \(Describe.time(readout.since)); Welch's t-test against the control, α = \(readout.alpha).\n\n")
            for line in readout.lines { doc.row("- \(cell(line))\n") }
        }
        if !plan.skipped.isEmpty {
            doc.add("\n#### Skipped (nothing to do)\n\n| address | would | why not |\n|---|---|---|\n")
            for k in plan.skipped {
                doc.row("| `\(k.address)` | \(k.action.rawValue) | \(cell(k.reason)) |\n")
            }
        }
        if !plan.candidates.isEmpty {
            let regressions = plan.candidates.filter { !($0.regressions ?? []).isEmpty }.count
            doc.add("\n#### Candidate metrics\n\n")
            if regressions > 0 {
                doc.add("> **\(regressions) candidate\(regressions == 1 ? "" : "s") below what is live** on at least one metric (marked ⚠️ below).\n\n")
            }
            doc.add("| where | candidate | metric | candidate value | live | live value | Δ |\n|---|---|---|---|---|---|---|\n")
            for c in plan.candidates {
                let where_ = c.target.map { "`\($0)`" } ?? "approval"
                let candidate = "\(c.model) v\(c.version)" + (c.label.map { " “\(cell($0))”" } ?? "") + (c.shadow == true ? " (shadow)" : "")
                let live = c.liveModel.map { "\($0) v\(c.liveVersion ?? 0)" } ?? "—"
                let metrics = Set(c.metrics.keys).union(c.liveMetrics?.keys ?? [:].keys).sorted()
                if metrics.isEmpty {
                    doc.row("| \(where_) | \(candidate) | — | — | \(live) | — | — |\n")
                }
                for m in metrics {
                    doc.row("| \(where_) | \(candidate) | \(m) | \(c.metrics[m].map(format) ?? "—") | \(live) | \(c.liveMetrics?[m].map(format) ?? "—") "
                            + "| \(delta(c, m)) |\n")
                }
            }
        }
        return doc.finish()
    }

    static func format(_ d: Double) -> String { String(format: "%.4f", d) }

    /// `+0.0120`, or `⚠️ **−0.0640**` for a regression; `—` with nothing to compare.
    static func delta(_ c: Candidate, _ metric: String) -> String {
        guard let d = c.deltas?[metric] else { return "—" }
        if c.regressions?.contains(metric) ?? false { return "⚠️ **−\(format(-d))**" }
        return (d > 0 ? "+" : "±") + format(abs(d))
    }

    /// Table cells cannot hold `|` or new lines.
    static func cell(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    /// Appends text until the limit, keeping room for the note that says what was cut.
    struct Budget {
        let limit: Int
        var text = ""
        /// Characters in `text`, kept here because `String.count` walks the whole string.
        var length = 0
        var cutRows = 0

        static let noteRoom = 200

        mutating func add(_ s: String) {
            guard cutRows == 0 else { return }
            if length + s.count > limit - Self.noteRoom {
                cutRows += 1
                return
            }
            text += s
            length += s.count
        }

        mutating func row(_ s: String) {
            if cutRows > 0 || length + s.count > limit - Self.noteRoom {
                cutRows += 1
                return
            }
            text += s
            length += s.count
        }

        func finish() -> String {
            guard cutRows > 0 else { return text }
            return text + "\n> The plan is longer than a comment can hold: \(cutRows) more rows are not shown. "
                + "Run `cairn plan --format json` for the whole plan.\n"
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
