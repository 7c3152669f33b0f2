import CairnCore
import CairnGit
import CairnManifests
import Foundation
import Testing

@Suite struct GitSourceTests {
    /// Three commits: weights, then a template, then a model; tagged and branched.
    func history() throws -> (GitFixture, [String]) {
        let repo = try GitFixture()
        var shas: [String] = []
        shas.append(try repo.commit("weights", files: ["ml/weights.yaml": weightsDoc, "ml/data/i.csv": "user_id,item_id,event,timestamp\n",
                                                       "README.md": "not a manifest\n"]))
        try repo.git(["tag", "v1"])
        shas.append(try repo.commit("template", files: ["ml/templates/t.yaml": templateDoc("t"), "other/x.yaml": "a: 1\n"]))
        shas.append(try repo.commit("model", files: ["ml/models/m.yml": modelDoc("m"), "ml/.hidden/skip.yaml": "bad: [\n",
                                                     "ml/vendor/skip.yaml": "bad: [\n"]))
        try repo.git(["branch", "feature", shas[1]])
        return (repo, shas)
    }

    @Test func resolvesEveryKindOfRevision() throws {
        let (fixture, shas) = try history()
        let repo = try GitRepository(path: fixture.path)
        #expect(try repo.commit("HEAD").sha == shas[2])
        #expect(try repo.commit("main").sha == shas[2])
        #expect(try repo.commit("main~1").sha == shas[1])
        #expect(try repo.commit("HEAD^^").sha == shas[0])
        #expect(try repo.commit("v1").sha == shas[0])
        #expect(try repo.commit("feature").sha == shas[1])
        #expect(try repo.commit(String(shas[1].prefix(10))).sha == shas[1])
        let info = try repo.commit("HEAD")
        #expect(info.authorName == "Ada Operator")
        #expect(info.authorEmail == "ada@example.com")
        #expect(info.summary == "model")
        #expect(info.time > 1_700_000_000)
        #expect(info.sha.count == 40)
    }

    /// A first fetch that fails leaves no empty cache behind (later passes then said the revision
    /// was missing instead of the remote being unreachable).
    @Test func aFailedFirstFetchLeavesNoCache() throws {
        let root = TempDir("cairn-git-cache")
        let url = "file:///nonexistent/remote.git"
        #expect(throws: CairnError.self) { try RemoteMirror.fetch(url: url, cacheRoot: root.path) }
        #expect(!FileManager.default.fileExists(atPath: RemoteMirror.cachePath(url: url, cacheRoot: root.path)))
    }

    /// A repository owned by another user: the error names the cause and the `safe.directory`
    /// fix (libgit2 reported "config value 'safe.directory' was not found").
    @Test(.enabled(if: getuid() == 0, "needs root to give the repository to another user; run the suite as root (CI does)"))
    func aRepositoryOwnedByAnotherUserSaysSafeDirectory() throws {
        let repo = try GitFixture()
        try repo.commit("w", files: ["w.yaml": weightsDoc])
        #expect(chown(repo.path, 65534, 65534) == 0)
        let result = try cairn(["validate", "--repo", repo.path], env: ["HOME": TempDir("cairn-home").path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("is owned by another user (uid 65534)"), "\(result.stderr)")
        #expect(result.stderr.contains("git config --global --add safe.directory \(repo.path)"))
        _ = chown(repo.path, 0, 0)
    }

    /// SHA-256 repositories are not readable by the libgit2 here: said as such.
    @Test func aSHA256RepositoryIsRefusedWithTheReason() throws {
        let dir = TempDir("cairn-sha256")
        let made = try runProcess("/usr/bin/git", ["init", "-q", "--object-format=sha256", dir.path])
        try #require(made.status == 0, "\(made.stderr)")
        let result = try cairn(["validate", "--repo", dir.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("uses the SHA-256 object format"), "\(result.stderr)")
    }

    /// A partial clone (`--filter=blob:none`) lacks the files of revisions it never checked
    /// out: the error says so and how to get them (it said "object not found - no match for id").
    @Test func aPartialCloneMissingOldObjectsSaysSo() throws {
        let (fixture, _) = try history()
        try fixture.git(["config", "uploadpack.allowFilter", "true"])
        let clone = TempDir("cairn-partial")
        let made = try runProcess("/usr/bin/git", ["clone", "-q", "--filter=blob:none", "--no-checkout", "file://\(fixture.path)", clone.path])
        try #require(made.status == 0, "\(made.stderr)")
        #expect(try GitRepository(path: clone.path).isPartialClone)
        #expect(try !GitRepository(path: fixture.path).isPartialClone)
        let result = try cairn(["validate", "--repo", clone.path, "--revision", "main~1", "--path", "ml"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("is not in \(clone.path), a partial clone (made with --filter)"), "\(result.stderr)")
        #expect(result.stderr.contains("hint: check the revision out once (git checkout REV)"))
        // As the hint says: a checkout fetches the files, and the revision reads.
        let checkout = try runProcess("/usr/bin/git", ["-C", clone.path, "checkout", "-q", "main~1"])
        try #require(checkout.status == 0, "\(checkout.stderr)")
        let again = try cairn(["validate", "--repo", clone.path, "--revision", "main~1", "--path", "ml"])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
    }

    @Test func missingRevisionIsAClearError() throws {
        let (fixture, _) = try history()
        let repo = try GitRepository(path: fixture.path)
        #expect {
            _ = try repo.snapshot(revision: "no-such-branch")
        } throws: { error in
            (error as? CairnError)?.message.contains("revision 'no-such-branch' not found") == true
        }
    }

    @Test func readsManifestsUnderThePathFromTheTree() throws {
        let (fixture, shas) = try history()
        let repo = try GitRepository(path: fixture.path)
        let snapshot = try repo.snapshot(revision: "HEAD", root: "ml", exclude: ["vendor"])
        #expect(snapshot.files.map(\.path) == ["ml/models/m.yml", "ml/templates/t.yaml", "ml/weights.yaml"])
        #expect(snapshot.files.allSatisfy { $0.blobID?.count == 40 })
        #expect(snapshot.commit?.sha == shas[2])
        let loaded = ManifestLoader.load(snapshot)
        #expect(loaded.isValid, "\(loaded.diagnostics.map(\.oneLine))")
        #expect(loaded.datasetFiles["t"] == "ml/data/i.csv")

        let old = try repo.snapshot(revision: "main~2", root: "./ml/")
        #expect(old.files.map(\.path) == ["ml/weights.yaml"])
        #expect(try old.tree.readFile(at: "ml/data/i.csv") == Array("user_id,item_id,event,timestamp\n".utf8))
    }

    @Test func nothingIsCheckedOut() throws {
        let (fixture, _) = try history()
        // Change the working tree: the revision read must not see it.
        fixture.write("ml/weights.yaml", "garbage: [\n")
        let repo = try GitRepository(path: fixture.path)
        let loaded = ManifestLoader.load(try repo.snapshot(revision: "HEAD", root: "ml", exclude: ["vendor"]))
        #expect(loaded.isValid)
    }

    @Test func worktreeReadsUncommittedFilesAndSkipsIgnoredOnes() throws {
        let (fixture, _) = try history()
        fixture.write("ml/models/new.yaml", modelDoc("fresh"))
        fixture.write("ml/scratch/tmp.yaml", "broken: [\n")
        fixture.write(".gitignore", "scratch/\n")
        let repo = try GitRepository(path: fixture.path)
        let snapshot = try WorktreeSource.snapshot(repository: repo, root: "ml", exclude: ["vendor"])
        #expect(snapshot.commit == nil)
        #expect(snapshot.files.map(\.path) == ["ml/models/m.yml", "ml/models/new.yaml", "ml/templates/t.yaml", "ml/weights.yaml"])
        #expect(ManifestLoader.load(snapshot).manifests.models.map(\.metadata.name) == ["fresh", "m"])
    }

    @Test func bareRepositoriesWork() throws {
        let (fixture, shas) = try history()
        let bare = TempDir("cairn-bare")
        try runProcess("/usr/bin/git", ["clone", "-q", "--bare", fixture.path, bare.path])
        let repo = try GitRepository(path: bare.path)
        #expect(repo.workdir == nil)
        #expect(try repo.snapshot(revision: "main", root: "ml", exclude: ["vendor"]).commit?.sha == shas[2])
        #expect {
            _ = try WorktreeSource.snapshot(repository: repo)
        } throws: { error in
            (error as? CairnError)?.message.contains("bare repository") == true
        }
    }

    @Test func parseCacheReadsOnlyChangedBlobsAndAgreesWithAFullRead() throws {
        let repo = try GitFixture()
        try repo.copyExamples()
        try repo.commit("fleet")
        try ReliabilityFleet.edit(repo, "weights/clicks-only.yaml", "no_action: 0.0", "no_action: 0.05")
        repo.write("models/broken.yaml", "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: broken}\nspec: {template: nope}\n")
        try repo.commit("one weight changed, one model added")
        let git = try GitRepository(path: repo.path)
        let cache = ParseCache()
        _ = ManifestLoader.load(try git.snapshot(revision: "main~1", isCached: { cache.contains(path: $0, blob: $1) }), cache: cache)
        #expect(cache.count == 11, "one entry per manifest file")

        var read: [String] = []
        let snapshot = try git.snapshot(revision: "main", isCached: { path, blob in
            if cache.contains(path: path, blob: blob) { return true }
            read.append(path)
            return false
        })
        #expect(read == ["models/broken.yaml", "weights/clicks-only.yaml"])
        let cached = ManifestLoader.load(snapshot, cache: cache)
        let full = ManifestLoader.load(try git.snapshot(revision: "main"))
        #expect(cached.diagnostics == full.diagnostics)
        #expect(cached.diagnostics.errors.map(\.oneLine) == [
            "models/broken.yaml:4:18: error: Model/broken: spec.template refers to Template/nope, which does not exist at this revision (add Template/nope, or fix the name)",
        ])
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(try encoder.encode(cached.manifests.models) == encoder.encode(full.manifests.models))
        #expect(cached.manifests.models.map(\.metadata.name) == full.manifests.models.map(\.metadata.name))
        #expect(cached.manifests.outcomeWeights.first { $0.metadata.name == "clicks-only" }?.weights["no_action"] == 0.05)
        #expect(cache.count == 12, "entries of the old clicks-only blob are dropped")
    }

    @Test func treeDiffListsChangedPaths() throws {
        let (fixture, _) = try history()
        let repo = try GitRepository(path: fixture.path)
        #expect(try repo.changedPaths(from: "main~1", to: "main") == ["ml/.hidden/skip.yaml", "ml/models/m.yml", "ml/vendor/skip.yaml"])
        #expect(try repo.changedPaths(from: "v1", to: "feature") == ["ml/templates/t.yaml", "other/x.yaml"])
        #expect(try repo.changedPaths(from: "main", to: "main").isEmpty)
    }

    @Test func symlinksInTheTreeAreResolvedAndChecked() throws {
        let repo = try GitFixture()
        repo.write("data/real.csv", "user_id,item_id,event,timestamp\n")
        let d = repo.dir.url
        try FileManager.default.createSymbolicLink(atPath: d.appendingPathComponent("data/alias.csv").path, withDestinationPath: "real.csv")
        try FileManager.default.createSymbolicLink(atPath: d.appendingPathComponent("data/out.csv").path, withDestinationPath: "/etc/passwd")
        try FileManager.default.createSymbolicLink(atPath: d.appendingPathComponent("up").path, withDestinationPath: "..")
        try repo.commit("data", files: [
            "w.yaml": weightsDoc,
            "t.yaml": templateDoc("ok", dataset: "data/alias.csv") + "---\n" + templateDoc("out", dataset: "data/out.csv")
                + "---\n" + templateDoc("up", dataset: "up/x.csv"),
        ])
        let git = try GitRepository(path: repo.path)
        for snapshot in [try git.snapshot(revision: "HEAD"), try WorktreeSource.snapshot(repository: git)] {
            let loaded = ManifestLoader.load(snapshot)
            #expect(loaded.datasetFiles["ok"] == "data/real.csv")
            let errors = loaded.diagnostics.errors.map(\.oneLine)
            #expect(errors.contains { $0.contains("Template/out") && $0.contains("data/out.csv → /etc/passwd, which points outside the repository") })
            #expect(errors.contains { $0.contains("Template/up") && $0.contains("symlink up → .., which points outside the repository") })
            #expect(errors.count == 2)
        }
    }
}
