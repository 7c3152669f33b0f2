import CLibGit2
import CairnCore
import Foundation

extension GitRepository {
    /// Where a repository keeps its registry by default: `.cairn/` in its working tree, or
    /// `cairn/` inside a bare repository. Found from any folder inside the repository, so a
    /// command run from a sub-folder opens the same registry. Nil when `path` is not inside a
    /// local repository (a URL, or no repository at all).
    public static func stateDirectory(discoveringFrom path: String) -> String? {
        guard !RemoteMirror.isURL(path), let repository = try? GitRepository(path: path) else { return nil }
        if let workdir = repository.workdir { return (workdir as NSString).appendingPathComponent(".cairn") }
        guard let gitdir = git_repository_path(repository.repo).map({ String(cString: $0) }) else { return nil }
        return (gitdir as NSString).appendingPathComponent("cairn")
    }

    /// True when the repository is a shallow clone (its oldest commits are not here).
    public var isShallow: Bool { git_repository_is_shallow(repo) == 1 }

    /// A commit with no parent that `revision` descends from: the first commit of its history,
    /// which names the repository across clones and moves.
    public func rootCommit(of revision: String) throws(CairnError) -> String {
        let start = try commit(revision).sha
        var walk: OpaquePointer?
        guard git_revwalk_new(&walk, repo) == 0, let walk else { throw CairnError("cannot walk the history of \(revision): \(lastGitError(-1))") }
        defer { git_revwalk_free(walk) }
        git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL.rawValue | GIT_SORT_REVERSE.rawValue)
        var oid = git_oid()
        guard git_oid_fromstr(&oid, start) == 0, git_revwalk_push(walk, &oid) == 0 else {
            throw CairnError("cannot walk the history of \(revision): \(lastGitError(-1))")
        }
        var root = git_oid()
        guard git_revwalk_next(&root, walk) == 0 else { throw CairnError("cannot walk the history of \(revision): \(lastGitError(-1))") }
        return withUnsafePointer(to: root) { oidString($0) }
    }

    /// True when `descendant` is `ancestor` or has it in its history.
    public func descends(_ descendant: String, from ancestor: String) -> Bool {
        if descendant == ancestor { return true }
        var a = git_oid(), d = git_oid()
        guard git_oid_fromstr(&a, ancestor) == 0, git_oid_fromstr(&d, descendant) == 0 else { return false }
        return git_graph_descendant_of(repo, &d, &a) == 1
    }
}
