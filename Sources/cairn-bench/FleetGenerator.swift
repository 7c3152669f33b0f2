import Foundation

/// Writes a realistic fleet repository: N models across families, shared templates and
/// weights, serving targets with splits and shadows, a small dataset, several commits.
struct FleetGenerator {
    let models: Int
    let root: URL

    var families: Int { max(1, models / 10) }
    var templates: Int { max(2, min(50, models / 50)) }
    var weightSets: Int { max(1, templates / 5) }

    func write(_ relative: String, _ text: String) throws {
        let url = root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    func git(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        p.arguments = ["-C", root.path, "-c", "user.name=Bench", "-c", "user.email=bench@example.com", "-c", "commit.gpgsign=false"] + args
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 { throw BenchError("git \(args.joined(separator: " ")) failed") }
    }

    /// Creates the repository with two commits; returns the path of the manifest changed by the second.
    func generate() throws -> String {
        try? FileManager.default.removeItem(at: root)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try git(["init", "-q", "-b", "main"])
        var csv = "user_id,item_id,event,timestamp\n"
        for i in 0..<2000 { csv += "u\(i % 300),i\((i * 7) % 120),\(["click", "convert", "renewed"][i % 3]),\(1_793_491_200 + i)\n" }
        try write("data/interactions.csv", csv)
        for w in 0..<weightSets {
            try write("weights/w\(w).yaml", """
                apiVersion: cairn/v1
                kind: OutcomeWeights
                metadata: {name: weights-\(w)}
                spec: {weights: {click: 0.\(w % 9 + 1), convert: 1.0, renewed: 1.2, complaint: -2.0}}

                """)
        }
        for t in 0..<templates {
            let knn = t % 2 == 0
            try write("templates/t\(t).yaml", """
                apiVersion: cairn/v1
                kind: Template
                metadata: {name: template-\(t)}
                spec:
                  displayName: Template \(t)
                  events: [click, convert, renewed]
                  outcomeWeights: weights-\(t % weightSets)
                  dataset: {path: data/interactions.csv}
                  trainer: {kind: builtin, algorithm: \(knn ? "item-knn" : "popularity")\(knn ? ", params: {neighbors: \(10 + t)}" : "")}
                  evaluation: {holdout: 0.2, metrics: [ndcg@10, recall@20], seed: \(t)}

                """)
        }
        // Models: one file per family; the first model of a family is its champion.
        var perFamily: [Int: [Int]] = [:]
        for m in 0..<models { perFamily[m % families, default: []].append(m) }
        for (f, members) in perFamily.sorted(by: { $0.key < $1.key }) {
            var docs: [String] = []
            for (n, m) in members.enumerated() {
                let stage = n == 0 ? "champion" : (n == 1 ? "challenger" : "none")
                docs.append("""
                    apiVersion: cairn/v1
                    kind: Model
                    metadata: {name: model-\(m), labels: {team: team-\(f % 17)}}
                    spec:
                      template: template-\(m % templates)
                      lifecycle: active
                      family: family-\(f)
                      stage: \(stage)
                      label: Model \(m)
                      traits: [t\(m % 5)]
                      approval:
                        mode: gated
                        gates: [{metric: ndcg@10, min: 0.01}]

                    """)
            }
            try write("models/family-\(f).yaml", docs.joined(separator: "---\n"))
        }
        // Targets: one per two models, alternating a split and a family champion with a shadow.
        for t in 0..<(models / 2) {
            let a = (t * 2) % models, b = (t * 2 + 1) % models
            let body = t % 2 == 0
                ? "  routes:\n    - {model: model-\(a), version: latest-approved, weight: 90}\n    - {model: model-\(b), version: latest-approved, weight: 10}\n"
                : "  routes: [{family: family-\(t % families), version: champion}]\n  shadow: [{model: model-\(b), version: latest-approved}]\n"
            try write("targets/target-\(t / 500)/t\(t).yaml", """
                apiVersion: cairn/v1
                kind: ServingTarget
                metadata: {name: target-\(t)}
                spec:
                  tenant: tenant-\(t % 97)
                  surface: surface-\(t % 3)

                """ + body)
        }
        try git(["add", "-A"])
        try git(["commit", "-q", "-m", "fleet of \(models) models"])
        // A second commit changing one manifest: the incremental case.
        let changed = "models/family-0.yaml"
        let url = root.appendingPathComponent(changed)
        let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "label: Model 0\n", with: "label: Model 0 (renamed)\n")
        try Data(text.utf8).write(to: url)
        return changed
    }

    func commitChange() throws {
        try git(["commit", "-q", "-am", "relabel model-0"])
    }

    /// Relabels model `m` (one file changed) and commits it.
    func commitRelabel(model m: Int, as label: String) throws {
        let url = root.appendingPathComponent("models/family-\(m % families).yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        guard let line = text.range(of: "metadata: {name: model-\(m), ").flatMap({ text[$0.upperBound...].range(of: "  label: ") }),
              let end = text[line.upperBound...].firstIndex(of: "\n") else { throw BenchError("no label for model-\(m)") }
        try Data((text[..<line.upperBound] + label + text[end...]).utf8).write(to: url)
        try git(["commit", "-q", "-am", "relabel model-\(m)"])
    }

    /// Packs every object (as `git gc` leaves a repository; real repositories are packed).
    func pack() throws {
        try git(["repack", "-a", "-d", "-q"])
        try git(["prune-packed", "-q"])
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
