import CairnCore
import Foundation

/// Building the dashboard's HTML: every value that comes from manifests, the registry or the
/// request goes through `h` (escaped for text and attribute values alike); markup is written
/// by this module only.
enum HTML {
    /// `s` escaped for HTML text and double-quoted attribute values.
    static func h(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters other than tab and newline have no place in a page.
                if c.value < 0x20, c != "\n", c != "\t" { out += "\u{FFFD}" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    /// A query string value, percent-encoded.
    static func q(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    /// A link to a dashboard page with a query, escaped.
    static func link(_ path: String, _ query: [(String, String?)] = []) -> String {
        let parts = query.compactMap { k, v in v.flatMap { $0.isEmpty ? nil : "\(q(k))=\(q($0))" } }
        return h(path + (parts.isEmpty ? "" : "?" + parts.joined(separator: "&")))
    }

    /// A table with a caption; `rows` are already HTML.
    static func table(_ caption: String, _ headers: [String], _ rows: [[String]], empty: String = "None.") -> String {
        guard !rows.isEmpty else { return "<p class=\"empty\">\(h(empty))</p>\n" }
        var out = "<table>\n<caption>\(h(caption))</caption>\n<thead><tr>"
        for header in headers { out += "<th scope=\"col\">\(h(header))</th>" }
        out += "</tr></thead>\n<tbody>\n"
        for row in rows { out += "<tr>" + row.map { "<td>\($0)</td>" }.joined() + "</tr>\n" }
        return out + "</tbody>\n</table>\n"
    }

    static func time(_ t: Int64?) -> String {
        guard let t else { return "—" }
        return "<time datetime=\"\(h(Describe.time(t)))\">\(h(Describe.time(t)))</time>"
    }

    static func duration(_ seconds: Int64?) -> String {
        guard let seconds, seconds >= 0 else { return "—" }
        if seconds < 120 { return "\(seconds) s" }
        if seconds < 7200 { return "\(seconds / 60) min \(seconds % 60) s" }
        return "\(seconds / 3600) h \(seconds % 3600 / 60) min"
    }

    static func metric(_ value: Double?) -> String {
        guard let value else { return "—" }
        return String(format: "%.4f", value)
    }

    /// A status word with its class (colour is never the only cue: the word is there).
    static func badge(_ word: String) -> String {
        let safe = word.lowercased().filter { $0.isLetter }
        return "<span class=\"badge badge-\(safe)\">\(h(word))</span>"
    }

    /// One metric across versions as an inline SVG line chart, with the model's gates on this
    /// metric drawn as dashed lines. Presentation attributes only (the page's CSP has no inline styles).
    static func chart(metric: String, versions: [ModelVersion], gates: [Model.Gate]) -> String {
        let points = versions.compactMap { v in v.metrics[metric].map { (v.number, $0, v.status) } }.sorted { $0.0 < $1.0 }
        guard !points.isEmpty else { return "" }
        let best = versions.filter { $0.status == .approved }.compactMap { $0.metrics[metric] }.max()
        var lines: [(String, Double)] = []
        for gate in gates where gate.metric == metric {
            if let m = gate.min { lines.append(("min \(Self.metric(m))", m)) }
            if let m = gate.max { lines.append(("max \(Self.metric(m))", m)) }
            if let r = gate.maxRegression, let best { lines.append(("best approved − \(Self.metric(r))", best - r)) }
        }
        let values = points.map(\.1) + lines.map(\.1)
        var low = values.min()!, high = values.max()!
        if high - low < 1e-9 { low -= 0.05; high += 0.05 }
        let pad = (high - low) * 0.1
        low -= pad
        high += pad
        let width = 560.0, height = 200.0, left = 56.0, right = 16.0, top = 12.0, bottom = 28.0
        let first = Double(points.first!.0), last = Double(points.last!.0)
        func x(_ n: Int) -> Double { last == first ? left + (width - left - right) / 2 : left + (Double(n) - first) / (last - first) * (width - left - right) }
        func y(_ v: Double) -> Double { top + (high - v) / (high - low) * (height - top - bottom) }
        func f(_ d: Double) -> String { String(format: "%.1f", d) }
        let id = "chart-" + metric.map { $0.isLetter || $0.isNumber ? String($0) : "-" }.joined()
        var svg = "<figure>\n<svg viewBox=\"0 0 \(Int(width)) \(Int(height))\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-labelledby=\"\(h(id))\">\n"
        svg += "<title id=\"\(h(id))\">\(h(metric)) by version: " + points.map { "v\($0.0) \(Self.metric($0.1))" }.joined(separator: ", ") + "</title>\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(height - bottom))\" x2=\"\(f(width - right))\" y2=\"\(f(height - bottom))\" stroke=\"#555\"/>\n"
        svg += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(height - bottom))\" stroke=\"#555\"/>\n"
        for value in [low + pad, high - pad] {
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y(value) + 4))\" text-anchor=\"end\" font-size=\"11\" fill=\"#222\">\(h(Self.metric(value)))</text>\n"
        }
        for (label, value) in lines {
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y(value)))\" x2=\"\(f(width - right))\" y2=\"\(f(y(value)))\" stroke=\"#a4262c\" stroke-dasharray=\"6 4\"/>\n"
            svg += "<text x=\"\(f(width - right))\" y=\"\(f(y(value) - 4))\" text-anchor=\"end\" font-size=\"11\" fill=\"#a4262c\">gate: \(h(label))</text>\n"
        }
        svg += "<polyline fill=\"none\" stroke=\"#0b5394\" stroke-width=\"2\" points=\""
            + points.map { "\(f(x($0.0))),\(f(y($0.1)))" }.joined(separator: " ") + "\"/>\n"
        for (n, value, status) in points {
            let colour = status == .approved ? "#1e6b30" : status == .rejected ? "#a4262c" : "#7a5b00"
            svg += "<circle cx=\"\(f(x(n)))\" cy=\"\(f(y(value)))\" r=\"4\" fill=\"\(colour)\"><title>v\(n) \(h(status.rawValue)): \(h(Self.metric(value)))</title></circle>\n"
            svg += "<text x=\"\(f(x(n)))\" y=\"\(f(height - 10))\" text-anchor=\"middle\" font-size=\"11\" fill=\"#222\">v\(n)</text>\n"
        }
        svg += "</svg>\n<figcaption>\(h(metric)) across versions (green approved, amber pending, red rejected; dashed: approval gates)</figcaption>\n</figure>\n"
        return svg
    }

    /// Route weights as a bar: one segment per route, its width its share.
    static func weightBar(_ routes: [LiveRoute]) -> String {
        let total = max(1, routes.reduce(0) { $0 + $1.weight })
        var x = 0.0
        let colours = ["#0b5394", "#1e6b30", "#7a5b00", "#6a3d9a", "#a4262c"]
        var svg = "<svg viewBox=\"0 0 300 18\" width=\"300\" height=\"18\" role=\"img\" aria-label=\""
            + h(routes.map { "\($0.model) v\($0.version) \($0.weight)%" }.joined(separator: ", ")) + "\">"
        for (i, route) in routes.enumerated() {
            let w = 300.0 * Double(route.weight) / Double(total)
            svg += "<rect x=\"\(String(format: "%.1f", x))\" y=\"0\" width=\"\(String(format: "%.1f", w))\" height=\"18\" fill=\"\(colours[i % colours.count])\">"
                + "<title>\(h("\(route.model) v\(route.version): \(route.weight)%"))</title></rect>"
            x += w
        }
        return svg + "</svg>"
    }
}
