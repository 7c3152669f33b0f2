import CairnCore
import CairnGit
import CairnManifests

/// A revision read and validated, ready to plan against.
public struct LoadedRevision: Sendable {
    public var snapshot: RevisionSnapshot
    public var loaded: LoadedManifests
    /// Nil when the revision is invalid (or read from a working tree).
    public var desired: DesiredState?
    /// The repository it was read from (checked against the registry's binding).
    public var repository: GitRepository
}

/// Reads the manifests of one revision and hashes their datasets: everything the planner
/// needs from git. Shared by the command line and `cairn serve`.
public enum RevisionReader {
    /// Which files of the repository are read.
    public enum Files: Sendable {
        /// The tree of a commit (`--revision`).
        case revision
        /// The working directory, uncommitted files included (`validate --worktree`).
        case worktree
        /// The files staged for the next commit, the index (`validate --staged`).
        case staged
    }

    /// `cache`: decoded files by blob id, kept between calls by a long-running process; only
    /// files it does not hold are read from git and decoded.
    public static func read(repository: GitRepository, revision: String, root: String, exclude: Set<String>,
                            files: Files = .revision, cache: ParseCache? = nil) throws(CairnError) -> LoadedRevision {
        let snapshot: RevisionSnapshot
        switch files {
        case .revision:
            snapshot = try repository.snapshot(revision: revision, root: root, exclude: exclude, isCached: cache.map { c in { c.contains(path: $0, blob: $1) } })
        case .worktree:
            snapshot = try WorktreeSource.snapshot(repository: repository, root: root, exclude: exclude)
        case .staged:
            snapshot = try repository.indexSnapshot(root: root, exclude: exclude)
        }
        let loaded = ManifestLoader.load(snapshot, cache: files == .revision ? cache : nil)
        guard loaded.isValid, let commit = snapshot.commit else {
            return LoadedRevision(snapshot: snapshot, loaded: loaded, desired: nil, repository: repository)
        }
        let desired = try loaded.desiredState(tree: snapshot.tree, commit: commit, revisionName: revision, manifestRoot: snapshot.manifestRoot)
        return LoadedRevision(snapshot: snapshot, loaded: loaded, desired: desired, repository: repository)
    }
}
