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
        _ = try RemoteMirror.fetch(url: repository, cacheRoot: gitCache)
    }

    public func open() throws(CairnError) -> GitRepository { try GitRepository(path: path) }

    public func resolve() throws -> String { try open().commit(revisionName).sha }

    public func read() throws -> SourceRead {
        let loaded = try RevisionReader.read(repository: try open(), revision: revisionName, root: root, exclude: exclude, cache: parseCache)
        return loaded.summary
    }

    public func rootCommit(of commit: String) throws -> String { try open().rootCommit(of: commit) }

    public func descends(_ commit: String, from root: String) -> Bool { (try? open().descends(commit, from: root)) ?? false }

    public var isShallow: Bool { (try? open().isShallow) ?? false }
}

extension LoadedRevision {
    /// What the reconcile core needs of it.
    public var summary: SourceRead {
        SourceRead(commit: snapshot.commit, manifestRoot: snapshot.manifestRoot, fileCount: loaded.fileCount,
                   documentCount: loaded.manifests.count, diagnostics: loaded.diagnostics, desired: desired)
    }
}
