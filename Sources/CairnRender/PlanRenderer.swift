import CairnCore
import Foundation

/// Prints plans. One renderer per format, chosen once; all read the same `Plan` data.
public enum PlanRenderer {
    /// Deterministic JSON: sorted keys, so the same plan gives the same bytes.
    public static func json(_ plan: Plan) -> String {
        prettyJSON(plan) + "\n"
    }

    /// `Plan: 1 create, 2 train, 1 blocked.` (or `No changes.`).
    public static func summaryLine(_ plan: Plan) -> String {
        let s = plan.summary
        var parts = Action.allCases.compactMap { a in s[a.rawValue].flatMap { $0 > 0 ? "\($0) \(a.rawValue)" : nil } }
        if plan.blocked.count > 0 { parts.append("\(plan.blocked.count) blocked") }
        if plan.drift.count > 0 { parts.append("\(plan.drift.count) drift") }
        if plan.changes.isEmpty {
            return parts.isEmpty ? "No changes." : "No changes; " + parts.joined(separator: ", ") + "."
        }
        return "Plan: " + parts.joined(separator: ", ") + "."
    }

    /// What a change does, in the words of the text and markdown plans.
    public static func describe(_ change: Change) -> String {
        switch change.action {
        case .create, .update, .archive: return "\(change.action.rawValue) (\(change.reason))"
        case .train: return "train v\(change.version ?? 0) (\(change.reason))"
        case .approve, .reject: return "\(change.action.rawValue) v\(change.version ?? 0) (\(change.reason))"
        case .promote, .stage: return change.reason
        case .demote: return change.reason + (change.appliedWith.map { " (with \($0))" } ?? "")
        case .discover: return "discover (\(change.reason))"
        case .delete: return "delete\(change.version.map { " v\($0)" } ?? "") (\(change.reason))"
        }
    }

    public static func describe(_ blocked: BlockedChange) -> String {
        "\(blocked.action.rawValue)\(blocked.version.map { " v\($0)" } ?? ""): \(blocked.reason)"
    }

    /// The first line of a plan made with no registry to compare with.
    public static func missingRegistry(_ observed: String) -> String {
        "no registry database at \(observed): this plan is against an empty registry, as if nothing had ever been applied"
    }

    public static func text(_ plan: Plan, style: Style, observed: String) -> String {
        var out = plan.registryMissing ? style.yellow("warning: " + missingRegistry(observed)) + "\n" : ""
        out += style.bold("Cairn plan · desired \(plan.revisionName)@\(plan.revision.prefix(7)) (\(plan.manifestCount) manifests)"
                             + " · observed \(observed)" + (plan.lastAppliedRevision.map { " (applied \($0.prefix(7)))" } ?? " (nothing applied yet)"))
        out += "\n\n"
        let width = (plan.changes.map(\.address.description.count) + plan.blocked.map(\.address.description.count)).max() ?? 0
        func pad(_ s: String) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
        for change in plan.changes {
            let symbol = color(change.action, style)
            out += "  \(symbol) \(pad(change.address.description))  \(describe(change))\n"
        }
        for b in plan.blocked {
            out += "  \(style.red("!")) \(pad(b.address.description))  \(describe(b))\n"
        }
        if !plan.changes.isEmpty || !plan.blocked.isEmpty { out += "\n" }
        if !plan.drift.isEmpty {
            out += style.yellow("Drift (changed outside git; the plan puts the declared state back):") + "\n"
            for d in plan.drift {
                out += "  \(d.address)  live \(d.live), declared \(d.declared) — by \(d.actor) at \(Describe.time(d.at)) via \(d.how)\n"
            }
            out += "\n"
        }
        if let untrusted = plan.untrusted {
            out += style.yellow("Not signed by a trusted key: this commit itself would not be applied (\(untrusted)).") + "\n\n"
        }
        for readout in plan.readouts {
            out += "A/B readout of ServingTarget/\(readout.target) so far (since \(Describe.time(readout.since)), Welch's t-test):\n"
            for line in readout.lines { out += "  \(line)\n" }
            out += "\n"
        }
        let regressions = plan.candidates.filter { !($0.regressions ?? []).isEmpty }
        if !regressions.isEmpty {
            out += style.yellow("Below what is live (metrics are higher-is-better):") + "\n"
            for c in regressions {
                let metrics = (c.regressions ?? []).map { m in
                    "\(m) \(MarkdownPlan.format(c.metrics[m] ?? 0)) vs \(MarkdownPlan.format(c.liveMetrics?[m] ?? 0))"
                }
                out += "  \(c.target.map { "ServingTarget/\($0)" } ?? "Model/\(c.model)")  \(c.model) v\(c.version)\(c.shadow == true ? " (shadow)" : "")"
                    + " vs live \(c.liveModel ?? "") v\(c.liveVersion ?? 0): \(metrics.joined(separator: ", "))\n"
            }
            out += "\n"
        }
        if !plan.skipped.isEmpty {
            out += "Skipped (nothing to do, and why):\n"
            for k in plan.skipped { out += "  \(k.address)  \(k.action.rawValue): \(k.reason)\n" }
            out += "\n"
        }
        out += style.bold(summaryLine(plan)) + "\n"
        return out
    }

    static func color(_ action: Action, _ style: Style) -> String {
        switch action {
        case .create, .approve: style.green(action.symbol)
        case .update, .stage, .demote: style.yellow(action.symbol)
        case .archive, .reject, .delete: style.red(action.symbol)
        case .discover: style.cyan(action.symbol)
        case .train, .promote: style.cyan(action.symbol)
        }
    }
}
