import CairnCore
import CairnGit
import CairnManifests
import CairnReconcile
import Foundation

/// The manifest source of the binary: a revision of a local repository (bare or not) or of a
/// remote one fetched into a cache (`cairn serve`). (`cairn validate --worktree` and `--staged`
/// read with `RevisionReader` directly: they have no commit to reconcile.)
public struct GitManifestSource: ManifestSource {
    /// A path, or for a fetched source a `file://`, `https://` or `ssh://` URL.
    public let repository: String
    public let revisionName: String
    public let root: String
    public let exclude: Set<String>
    /// Where remote repositories are fetched to; nil reads `repository` as a path.
    public let gitCache: String?
    /// Decoded files by blob id, kept between reads by a long-running process.
    public let parseCache: ParseCache?
    /// The repository the last `read` used, for the identity checks that follow it (opening it
    /// again for each is wasted work); a `refresh` forgets it.
    private let lastRead = Locked<GitRepository?>(nil)
    /// Only revisions signed by trusted keys are applied (`--verify-signatures`); nil: no check.
    public var signatures: SignaturePolicy?

    public init(repository: String, revision: String, root: String, exclude: Set<String>, gitCache: String? = nil, parseCache: ParseCache? = nil) {
        self.repository = repository
        self.revisionName = revision
        self.root = root
        self.exclude = exclude
        self.gitCache = gitCache
        self.parseCache = parseCache
    }

    var isRemote: Bool { gitCache != nil && RemoteMirror.isURL(repository) }

    /// The folder git reads: the repository itself, or its fetched cache.
    public var path: String {
        guard isRemote, let gitCache else { return repository }
        return RemoteMirror.cachePath(url: repository, cacheRoot: gitCache)
    }

    public var location: String { RemoteMirror.redacted(repository) }

    public var needsRefresh: Bool { isRemote && !FileManager.default.fileExists(atPath: path) }

    public func refresh() throws {
        guard isRemote, let gitCache else { return }
        lastRead.update { $0 = nil }
        _ = try RemoteMirror.fetch(url: repository, cacheRoot: gitCache)
    }

    public func open() throws(CairnError) -> GitRepository { try GitRepository(path: path) }

    /// The same repository and folder at one commit, for a plan of a revision the daemon does
    /// not follow (a pull request's merge commit): fetched by id when the cache lacks it. No
    /// parse cache: the daemon's own stays as its revision left it.
    public func atCommit(_ sha: String) throws -> GitManifestSource {
        if isRemote, let gitCache, (try? open().commit(sha)) == nil {
            try RemoteMirror.fetch(url: repository, cacheRoot: gitCache, commit: sha)
        }
        var source = GitManifestSource(repository: repository, revision: sha, root: root, exclude: exclude, gitCache: gitCache)
        source.signatures = signatures
        do {
            _ = try source.open().commit(sha)
        } catch {
            throw CairnError("commit \(sha) is not in \(location)", hint: "push it, or wait until the remote has it")
        }
        return source
    }

    /// The commit a branch points at, as the repository (or, for a remote, its mirror as last
    /// fetched) has it. Only a plain branch name is taken, looked up as `refs/heads/NAME`: never
    /// an expression (`main~3`, `@{…}`) or any other ref a caller could aim elsewhere.
    public func branchCommit(_ name: String) throws -> String {
        let allowed = name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "._/-".unicodeScalars.contains($0) }
        guard !name.isEmpty, name.utf8.count <= 200, allowed, !name.hasPrefix("-"), !name.hasPrefix("/"), !name.hasSuffix("/"),
              !name.contains(".."), !name.contains("//"), !name.hasSuffix(".lock") else {
            throw CairnError("'\(name)' is not a branch name", hint: "give a branch (letters, digits, '.', '_', '-', '/') or a full commit id")
        }
        do {
            return try open().commit("refs/heads/" + name).sha
        } catch {
            throw CairnError("no branch \(name) in \(location)", hint: isRemote ? "push it; the daemon's mirror has the branches of its last fetch" : "create it, or give a full commit id")
        }
    }

    public func resolve() throws -> String { try open().commit(revisionName).sha }

    public func read() throws -> SourceRead {
        let loaded = try RevisionReader.read(repository: try open(), revision: revisionName, root: root, exclude: exclude, cache: parseCache)
        lastRead.update { $0 = loaded.repository }
        return loaded.summary
    }

    /// The repository last read, or a fresh handle when nothing was read since a refresh.
    func readRepository() throws(CairnError) -> GitRepository {
        if let repository = lastRead.value { return repository }
        return try open()
    }

    public func rootCommit(of commit: String) throws -> String { try readRepository().rootCommit(of: commit) }

    public func descends(_ commit: String, from root: String) -> Bool { (try? readRepository().descends(commit, from: root)) ?? false }

    public var isShallow: Bool { (try? readRepository().isShallow) ?? false }

    public func verifySignatures(of commit: String, since base: String?) throws -> String? {
        guard let policy = signatures else { return nil }
        try SignatureVerifier.checkTrustFiles(policy, repository: isRemote ? repository : path)
        let repository = try readRepository()
        var commits = policy.mode == .all ? try repository.commits(from: base, to: commit) : []
        if !commits.contains(commit) { commits.insert(commit, at: 0) }
        var signer: VerifiedSigner?
        // Oldest first: the error names the first commit that breaks the chain of trust.
        for c in commits.reversed() {
            let verified = try SignatureVerifier.verify(repository, commit: c, policy: policy)
            if c == commit { signer = verified }
        }
        return signer?.description
    }
}

extension LoadedRevision {
    /// What the reconcile core needs of it.
    public var summary: SourceRead {
        SourceRead(commit: snapshot.commit, manifestRoot: snapshot.manifestRoot, fileCount: loaded.fileCount,
                   documentCount: loaded.manifests.count, diagnostics: loaded.diagnostics, desired: desired)
    }
}
