import CairnCore
import CairnManifests
import CairnYAML
import Foundation
import Testing

/// The GitHub Actions example, linted here (actionlint is not obtainable offline): against
/// SchemaStore's workflow schema (vendored from check-jsonschema, `Tests/Fixtures/vendor/`),
/// read as YAML 1.2 by Cairn's own loader (so `on:` stays a key), and for the hardening a
/// reviewer expects: actions pinned by commit, no persisted credentials, a concurrency group,
/// no `${{ }}` expanded inside a shell script, never `pull_request_target`.
@Suite struct WorkflowLintTests {
    static let workflow = packageRoot.appendingPathComponent("examples/ci/github-actions-cairn-plan.yaml")

    /// Schema errors of a workflow, one line each (empty: valid).
    func schemaErrors(_ yaml: String) throws -> [String] {
        let json = try YAMLLoader.load(yaml)[0].root.jsonValue.canonicalText
        let dir = TempDir("cairn-workflow")
        let file = dir.url.appendingPathComponent("workflow.json")
        try Data(json.utf8).write(to: file)
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1])); doc = json.load(open(sys.argv[2]))
            for e in sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str):
                print("/".join(map(str, e.absolute_path)) + ": " + e.message[:200])
            """
        let result = try runProcess("/usr/bin/env", ["python3", "-c", script,
                                                     packageRoot.appendingPathComponent("Tests/Fixtures/vendor/github-workflows.schema.json").path, file.path])
        try #require(result.status == 0, "the schema check did not run (is python3-jsonschema installed?): \(result.stderr)")
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// What a hardened pull-request workflow must not do.
    func hardeningProblems(_ yaml: String) throws -> [String] {
        guard case let .object(doc) = try YAMLLoader.load(yaml)[0].root.jsonValue else { return ["not a mapping"] }
        var problems: [String] = []
        if case let .object(on)? = doc["on"], on["pull_request_target"] != nil {
            problems.append("pull_request_target runs with write access on untrusted code")
        }
        if case let .object(group)? = doc["concurrency"], group["group"] != nil {} else { problems.append("no concurrency group") }
        guard case let .object(jobs)? = doc["jobs"] else { return problems + ["no jobs"] }
        for (name, job) in jobs {
            guard case let .object(job) = job, case let .array(steps)? = job["steps"] else { continue }
            for case let .object(step) in steps {
                if case let .string(uses)? = step["uses"] {
                    let ref = uses.split(separator: "@", maxSplits: 1).last.map(String.init) ?? ""
                    if ref.count != 40 || !ref.allSatisfy(\.isHexDigit) { problems.append("\(name): \(uses) is not pinned by commit") }
                    if uses.hasPrefix("actions/checkout@") {
                        if case let .object(with)? = step["with"], with["persist-credentials"] == .bool(false) {} else {
                            problems.append("\(name): \(uses) leaves its token in .git/config (persist-credentials)")
                        }
                    }
                }
                if case let .string(run)? = step["run"], run.contains("${{") {
                    problems.append("\(name): an expression inside a run script (pass it through env:)")
                }
            }
        }
        return problems.sorted()
    }

    @Test func theExampleWorkflowPassesTheSchemaAndTheHardeningChecks() throws {
        let yaml = try String(contentsOf: Self.workflow, encoding: .utf8)
        #expect(try schemaErrors(yaml) == [])
        #expect(try hardeningProblems(yaml) == [])
        // It plans the merge commit through the daemon, and fails rather than plan against nothing.
        #expect(yaml.contains("cairn plan --server \"$CAIRN_SERVER\" --revision \"$MERGE_SHA\" --format markdown --detailed-exitcode"))
        #expect(yaml.contains("MERGE_SHA: ${{ github.sha }}"))
    }

    /// The checks are not vacuous: the workflow the example used to be fails them.
    @Test func theChecksCatchWhatTheyAreFor() throws {
        let old = """
            name: cairn plan
            on:
              pull_request:
                paths: ["fleet/**"]
            jobs:
              plan:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/checkout@v4
                    with: {fetch-depth: 0}
                  - run: gh pr comment "${{ github.event.pull_request.number }}" --body-file plan.md

            """
        #expect(try schemaErrors(old) == [])
        #expect(try hardeningProblems(old) == [
            "no concurrency group",
            "plan: actions/checkout@v4 is not pinned by commit",
            "plan: actions/checkout@v4 leaves its token in .git/config (persist-credentials)",
            "plan: an expression inside a run script (pass it through env:)",
        ])
        let misspelt = old.replacingOccurrences(of: "runs-on:", with: "run-on:")
        let errors = try schemaErrors(misspelt)
        #expect(errors.contains { $0.hasPrefix("jobs/plan: ") }, "\(errors)")
    }
}

/// The alerting rules the daemon guide documents are valid Prometheus rules and fire when they
/// should: `promtool test rules` replays series through them (a stale spell of 10 minutes does
/// not alert, one of 15 does).
@Suite struct AlertRuleTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool"),
                   "needs promtool (Debian's prometheus package; scripts/test.sh installs it)"))
    func theExampleAlertsPassPromtool() throws {
        let dir = packageRoot.appendingPathComponent("examples/prometheus").path
        let check = try runProcess("/usr/bin/promtool", ["check", "rules", "cairn-alerts.yaml"], cwd: dir)
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.contains("SUCCESS: 4 rules found"))
        let test = try runProcess("/usr/bin/promtool", ["test", "rules", "cairn-alerts.test.yaml"], cwd: dir)
        #expect(test.status == 0, "\(test.stdout)\(test.stderr)")
    }
}
