import Foundation
import Testing

@Suite struct ValidateCommandTests {
    @Test func validRepositoryExitsZero() throws {
        let repo = try GitFixture()
        try repo.commit("ok", files: ["w.yaml": weightsDoc, "t.yaml": templateDoc("t"), "data/i.csv": "user_id,item_id,event,timestamp\n"])
        let result = try cairn(["validate", "--repo", repo.path, "--no-color"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("✓ valid: 2 manifests in 2 files, 0 errors, 1 warning"))
        #expect(result.stdout.contains("t.yaml:5:11: warning: Template/t: events convert have no weight"))
    }

    @Test func invalidRevisionExitsOneWithEveryError() throws {
        let repo = try GitFixture()
        let good = try repo.commit("good", files: ["w.yaml": weightsDoc, "data/i.csv": "x\n"])
        try repo.commit("bad", files: ["t.yaml": templateDoc("t", weights: "nope", dataset: "../x.csv"), "m.yaml": modelDoc("m", template: "t2")])
        let bad = try cairn(["validate", "--repo", repo.path, "--no-color"])
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("m.yaml:5:13: error: Model/m: spec.template refers to Template/t2"))
        #expect(bad.stdout.contains("t.yaml:6:19: error: Template/t: spec.outcomeWeights refers to OutcomeWeights/nope"))
        #expect(bad.stdout.contains("t.yaml:7:19: error: Template/t: spec.dataset.path '../x.csv' leaves the repository"))
        #expect(bad.stdout.contains("✗ invalid: 3 errors"))
        // The previous commit is still valid.
        let older = try cairn(["validate", "--repo", repo.path, "--revision", "HEAD~1"])
        #expect(older.status == 0)
        let bySHA = try cairn(["validate", "--repo", repo.path, "--revision", good])
        #expect(bySHA.status == 0)
    }

    @Test func jsonOutputIsMachineReadable() throws {
        let repo = try GitFixture()
        let sha = try repo.commit("bad", files: ["m.yaml": "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: m}\nspec: {template: t, stage: x}\n"])
        let result = try cairn(["validate", "--repo", repo.path, "--format", "json"])
        #expect(result.status == 1)
        let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        #expect(json["formatVersion"] as? String == "1")
        #expect(json["valid"] as? Bool == false)
        #expect(json["revision"] as? String == sha)
        let diagnostics = json["diagnostics"] as! [[String: Any]]
        let first = diagnostics[0]
        #expect(first["file"] as? String == "m.yaml")
        #expect(first["line"] as? Int == 4)
        #expect(first["address"] as? String == "Model/m")
        #expect((first["hint"] as? String)?.contains("use one of") == true)
        #expect(result.stderr.isEmpty)
    }

    @Test func sourceErrorsExitOne() throws {
        let repo = try GitFixture()
        try repo.commit("x", files: ["w.yaml": weightsDoc])
        let missing = try cairn(["validate", "--repo", repo.path, "--revision", "nope"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("revision 'nope' not found"))
        let notRepo = try cairn(["validate", "--repo", TempDir().path])
        #expect(notRepo.status == 1)
        #expect(notRepo.stderr.contains("cannot open git repository"))
        let badPath = try cairn(["validate", "--repo", repo.path, "--path", "nowhere", "--format", "json"])
        #expect(badPath.status == 1)
        #expect(badPath.stdout.contains("\"error\" : \"the manifest folder 'nowhere' does not exist"))
    }

    @Test func worktreeFlagValidatesUncommittedChanges() throws {
        let repo = try GitFixture()
        try repo.commit("x", files: ["w.yaml": weightsDoc])
        repo.write("w.yaml", "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: -1}}\n")
        #expect(try cairn(["validate", "--repo", repo.path]).status == 0)
        let result = try cairn(["validate", "--repo", repo.path, "--worktree", "--no-color"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("Cairn validate · working tree"))
        #expect(result.stdout.contains("has no positive weight"))
    }

    @Test func stagedFlagValidatesWhatIsStaged() throws {
        let repo = try GitFixture()
        try repo.commit("x", files: ["w.yaml": weightsDoc])
        let bad = "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: -1}}\n"
        // Staged: the next commit would be invalid, whatever the working tree holds.
        repo.write("w.yaml", bad)
        _ = try repo.git(["add", "w.yaml"])
        repo.write("w.yaml", weightsDoc)
        let staged = try cairn(["validate", "--repo", repo.path, "--staged", "--no-color"])
        #expect(staged.status == 1)
        #expect(staged.stdout.contains("Cairn validate · staged files"))
        #expect(staged.stdout.contains("has no positive weight"))
        #expect(try cairn(["validate", "--repo", repo.path, "--worktree"]).status == 0)
        // Staged good, working tree bad: the index is what is committed.
        _ = try repo.git(["add", "w.yaml"])
        repo.write("w.yaml", bad)
        #expect(try cairn(["validate", "--repo", repo.path, "--staged"]).status == 0)
        let both = try cairn(["validate", "--repo", repo.path, "--staged", "--worktree"])
        #expect(both.status != 0)
        #expect(both.stderr.contains("--worktree and --staged do not go together"))
    }

    /// The diagnostic the README shows is what the binary prints for that mistake in the example fleet.
    @Test func theReadmesDiagnosticExampleIsWhatCairnPrints() throws {
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let intro = try #require(readme.range(of: "Every diagnostic has the form\n\n```\n"))
        let example = String(readme[intro.upperBound...].prefix { $0 != "`" })
        let repo = try GitFixture()
        try repo.copyExamples()
        let models = repo.dir.url.appendingPathComponent("models/homepage.yaml")
        let text = try String(contentsOf: models, encoding: .utf8)
        try text.replacingOccurrences(of: "  template: engagement-booster\n  lifecycle: active\n  family: homepage\n  stage: champion\n",
                                      with: "  template: engagment\n  lifecycle: active\n  family: homepage\n  stage: champion\n")
            .write(to: models, atomically: true, encoding: .utf8)
        try repo.commit("a typo")
        let result = try cairn(["validate", "--repo", repo.path, "--no-color"])
        #expect(result.status == 1)
        #expect(!example.isEmpty && result.stdout.contains(example), "README:\n\(example)\ncairn:\n\(result.stdout)")
    }

    @Test func verboseListsSkippedDocuments() throws {
        let repo = try GitFixture()
        try repo.commit("x", files: ["w.yaml": weightsDoc, "ci.yaml": "name: CI\non: push\n", "k.yaml": "apiVersion: v1\nkind: ConfigMap\n"])
        let result = try cairn(["validate", "--repo", repo.path, "--verbose", "--no-color"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("ci.yaml:1 apiVersion (none), kind (none)"))
        #expect(result.stdout.contains("k.yaml:1 apiVersion v1, kind ConfigMap"))
    }

    @Test func yamlSyntaxErrorsArePositioned() throws {
        let repo = try GitFixture()
        try repo.commit("x", files: ["w.yaml": "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata:\n\tname: w\n"])
        let result = try cairn(["validate", "--repo", repo.path, "--no-color"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("w.yaml:4:1: error:"))
        #expect(result.stdout.contains("hint: YAML does not allow tab characters"))
    }
}

@Suite struct PreCommitHookTests {
    @Test func hookRefusesAnInvalidCommit() throws {
        let repo = try GitFixture()
        try repo.commit("ok", files: ["w.yaml": weightsDoc])
        let hook = repo.dir.url.appendingPathComponent(".git/hooks/pre-commit").path
        try FileManager.default.copyItem(atPath: packageRoot.appendingPathComponent("examples/ci/pre-commit").path, toPath: hook)
        let binDir = (cairnBinary as NSString).deletingLastPathComponent
        let path = "\(binDir):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")"
        func commit(_ message: String) throws -> ProcessResult {
            try runProcess("/usr/bin/git", ["-C", repo.path, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-am", message],
                           env: ["PATH": path])
        }
        repo.write("w.yaml", "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: -1}}\n")
        let refused = try commit("negative weights")
        #expect(refused.status != 0)
        // git passes a hook's output on through stderr.
        #expect(refused.stderr.contains("w.yaml:4:17: error: OutcomeWeights/w: spec.weights has no positive weight"))
        repo.write("w.yaml", "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: 2}}\n")
        #expect(try commit("better weights").status == 0)
        // What is staged is what is checked: a bad staged file with a good one on disk is refused.
        repo.write("w.yaml", "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: -2}}\n")
        _ = try repo.git(["add", "w.yaml"])
        repo.write("w.yaml", "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: 3}}\n")
        let staged = try runProcess("/usr/bin/git", ["-C", repo.path, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "staged"],
                                    env: ["PATH": path])
        #expect(staged.status != 0)
        #expect(staged.stderr.contains("has no positive weight"))
    }

    @Test func ciExamplesAreYAMLThatCairnSkips() throws {
        let repo = try GitFixture()
        let ci = packageRoot.appendingPathComponent("examples/ci")
        for name in ["github-actions-cairn-plan.yaml", "pre-commit-config.yaml"] {
            repo.write(name, try String(contentsOf: ci.appendingPathComponent(name), encoding: .utf8))
        }
        try repo.commit("ci")
        let result = try cairn(["validate", "--repo", repo.path, "--verbose", "--no-color"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("github-actions-cairn-plan.yaml:11 apiVersion (none)"))
        #expect(result.stdout.contains("✓ valid: 0 manifests in 2 files"))
    }
}

/// `pre-commit` on PATH (`scripts/setup.sh` installs it with pip), or nil.
let preCommitTool: String? = {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let candidate = "\(dir)/pre-commit"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}()

@Suite struct HookModeTests {
    static let brokenDoc = "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: -1}}\n"

    @Test(.enabled(if: preCommitTool != nil, "needs the pre-commit tool; scripts/setup.sh installs it (pip, or Debian's pre-commit)"))
    func thePreCommitFrameworkExampleRefusesADeletionThatBreaksAReference() throws {
        let repo = try GitFixture()
        let config = try String(contentsOf: packageRoot.appendingPathComponent("examples/ci/pre-commit-config.yaml"), encoding: .utf8)
        try repo.commit("fleet", files: [".pre-commit-config.yaml": config, "fleet/w.yaml": weightsDoc, "fleet/t.yaml": templateDoc("t"),
                                         "fleet/data/i.csv": "user_id,item_id,event,timestamp\n"])
        let binDir = (cairnBinary as NSString).deletingLastPathComponent
        let env = ["PATH": "\(binDir):\(ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")", "PRE_COMMIT_HOME": repo.path + "/.pc-cache"]
        let install = try runProcess(preCommitTool!, ["install"], cwd: repo.path, env: env)
        #expect(install.status == 0, "\(install.stdout)\(install.stderr)")
        func commit(_ message: String) throws -> ProcessResult {
            try runProcess("/usr/bin/git", ["-C", repo.path, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", message], env: env)
        }
        // Deleting the weights the template uses changes no file the template's checks would look at.
        _ = try repo.git(["rm", "-q", "fleet/w.yaml"])
        let deletion = try commit("drop the weights")
        #expect(deletion.status != 0, "a deletion that breaks a reference is refused")
        #expect((deletion.stdout + deletion.stderr).contains("Template/t: spec.outcomeWeights refers to OutcomeWeights/w, which does not exist"))
        // What is staged is checked, not the working tree.
        _ = try repo.git(["reset", "-q", "--hard"])
        repo.write("fleet/w.yaml", Self.brokenDoc)
        _ = try repo.git(["add", "fleet/w.yaml"])
        repo.write("fleet/w.yaml", weightsDoc)
        #expect(try commit("broken weights staged").status != 0)
        repo.write("fleet/w.yaml", weightsDoc.replacingOccurrences(of: "click: 1", with: "click: 2"))
        _ = try repo.git(["add", "fleet/w.yaml"])
        let good = try commit("heavier clicks")
        #expect(good.status == 0, "\(good.stdout)\(good.stderr)")
    }

    @Test func worktreeAndStagedModesSkipSubmodulesAsRevisionsDo() throws {
        let inner = try GitFixture()
        try inner.commit("not ours", files: ["w.yaml": Self.brokenDoc])
        let repo = try GitFixture()
        try repo.commit("fleet", files: ["w.yaml": weightsDoc])
        _ = try repo.git(["-c", "protocol.file.allow=always", "submodule", "add", "-q", inner.path, "vendor/inner"])
        try repo.commit("a submodule")
        for mode in [[], ["--worktree"], ["--staged"]] {
            let result = try cairn(["validate", "--repo", repo.path] + mode)
            #expect(result.status == 0, "validate \(mode): \(result.stdout)\(result.stderr)")
        }
    }
}
