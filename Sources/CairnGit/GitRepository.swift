import CLibGit2
import Foundation
import CairnCore



/// A git repository opened with libgit2. Revisions are read straight from the object
/// database; nothing is checked out.
///
/// One instance is used by one thread at a time (libgit2 repositories are not safe for
/// concurrent use); it is `Sendable` so it can move between tasks.
public final class GitRepository: @unchecked Sendable {
    let repo: OpaquePointer
    /// The path the repository was opened from, for messages.
    public let location: String

    public init(path: String) throws(CairnError) {
        _ = GitRepository.ensureInitialised
        var repo: OpaquePointer?
        let rc = git_repository_open_ext(&repo, path, 0, nil)
        guard rc == 0, let repo else {
            let shown = RemoteMirror.redacted(path)
            let message = redactingSecrets(lastGitError(rc), RemoteMirror.split(path))
            if rc == GIT_EOWNER.rawValue || message.contains("safe.directory") {
                // libgit2 reports a later config lookup instead of the cause.
                var info = stat()
                let owner = stat(path, &info) == 0 ? " (uid \(info.st_uid))" : ""
                throw CairnError("cannot open git repository at \(shown): it is owned by another user\(owner), and git reads such a repository only when it is listed as safe",
                                 hint: "as the user running cairn: git config --global --add safe.directory \(shown) (or run cairn as the repository's owner)")
            }
            if message.contains("extensions.objectformat") {
                throw CairnError("cannot open git repository at \(shown): it uses the SHA-256 object format, which the libgit2 Cairn is built with cannot read",
                                 hint: "use a SHA-1 repository (git init --object-format=sha1, the default), or a mirror of this one converted to SHA-1")
            }
            throw CairnError("cannot open git repository at \(shown): \(message)", hint: "pass --repo with the path of a git repository (bare or not)")
        }
        self.repo = repo
        self.location = RemoteMirror.redacted(path)
    }

    deinit { git_repository_free(repo) }

    /// The working directory, or nil for a bare repository.
    public var workdir: String? {
        git_repository_workdir(repo).map { String(cString: $0) }
    }

    /// Resolves any revision git understands (branch, tag, sha, `main~1`, `HEAD`) to its commit.
    public func commit(_ revision: String) throws(CairnError) -> CommitInfo {
        let commit = try lookupCommit(revision)
        defer { git_commit_free(commit) }
        return info(commit)
    }

    /// Every manifest file (`*.yaml`, `*.yml`) under `root` at `revision`, read from the tree.
    /// Folders whose name starts with `.` and folders named in `exclude` are skipped.
    /// `isCached(path, blobID)`: true for files whose decoded form the caller already has; their
    /// contents are not read (left empty), only their blob id is given.
    public func snapshot(revision: String, root: String = "", exclude: Set<String> = [],
                         isCached: ((String, String) -> Bool)? = nil) throws(CairnError) -> RevisionSnapshot {
        let commit = try lookupCommit(revision)
        defer { git_commit_free(commit) }
        var tree: OpaquePointer?
        let rc = git_commit_tree(&tree, commit)
        guard rc == 0, let tree else { throw unreadable("the tree of \(revision)", id: oidString(git_commit_tree_id(commit)), rc: rc) }
        return try snapshot(tree: tree, commit: info(commit), at: revision, root: root, exclude: exclude, isCached: isCached)
    }

    /// The manifest files staged for the next commit (the index), for a plain git pre-commit
    /// hook (`cairn validate --staged`). The index is written as tree objects into the object
    /// database, as `git write-tree` does (unreferenced; `git gc` removes them); nothing else changes.
    public func indexSnapshot(root: String = "", exclude: Set<String> = []) throws(CairnError) -> RevisionSnapshot {
        guard workdir != nil else {
            throw CairnError("\(location) is a bare repository and has no index", hint: "drop --staged to read a revision instead")
        }
        // Inside a git hook, `git commit -a` and `git commit FILE` stage into a temporary index
        // named by GIT_INDEX_FILE (relative to the working tree, where hooks run).
        var index: OpaquePointer?
        var rc: Int32
        if let file = ProcessInfo.processInfo.environment["GIT_INDEX_FILE"], !file.isEmpty {
            let path = file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file
            rc = git_index_open(&index, path)
        } else {
            rc = git_repository_index(&index, repo)
        }
        guard rc == 0, let index else { throw CairnError("cannot read the index of \(location): \(lastGitError(rc))") }
        defer { git_index_free(index) }
        if git_index_has_conflicts(index) == 1 {
            throw CairnError("the index of \(location) has unresolved merge conflicts", hint: "resolve them and `git add` the files, then validate again")
        }
        var oid = git_oid()
        rc = git_index_write_tree_to(&oid, index, repo)
        guard rc == 0 else { throw CairnError("cannot write the index of \(location) as a tree: \(lastGitError(rc))") }
        var tree: OpaquePointer?
        rc = git_tree_lookup(&tree, repo, &oid)
        guard rc == 0, let tree else { throw CairnError("cannot read the index's tree: \(lastGitError(rc))") }
        return try snapshot(tree: tree, commit: nil, at: "the index", root: root, exclude: exclude, isCached: nil)
    }

    /// The manifest files of `tree` (which the returned snapshot owns) under `root`.
    private func snapshot(tree: OpaquePointer, commit: CommitInfo?, at revision: String, root: String, exclude: Set<String>,
                          isCached: ((String, String) -> Bool)?) throws(CairnError) -> RevisionSnapshot {
        let revisionTree = GitTree(repository: self, tree: tree)
        let cleanRoot = RepoPathText.clean(root)
        var files: [ManifestFile] = []
        if cleanRoot.isEmpty {
            try collect(tree, prefix: "", exclude: exclude, isCached: isCached, into: &files)
        } else {
            let rootEntry: TreeEntry?
            do { rootEntry = try revisionTree.entry(at: cleanRoot) } catch { throw CairnError("cannot read \(cleanRoot): \(error)") }
            switch rootEntry {
            case .directory?:
                let sub = try revisionTree.subtree(cleanRoot)
                defer { git_tree_free(sub) }
                try collect(sub, prefix: cleanRoot + "/", exclude: exclude, isCached: isCached, into: &files)
            case nil:
                throw CairnError("the manifest folder '\(cleanRoot)' does not exist at \(revision)",
                                  hint: "check --path; it is relative to the repository root")
            default:
                throw CairnError("'\(cleanRoot)' is not a folder at \(revision)", hint: "--path names a folder of manifests")
            }
        }
        files.sort { $0.path < $1.path }
        return RevisionSnapshot(commit: commit, manifestRoot: cleanRoot, files: files, tree: revisionTree)
    }

    /// Paths that differ between two revisions (added, deleted, modified, renamed: both names).
    public func changedPaths(from old: String, to new: String) throws(CairnError) -> [String] {
        let a = try lookupCommit(old)
        defer { git_commit_free(a) }
        let b = try lookupCommit(new)
        defer { git_commit_free(b) }
        var treeA: OpaquePointer?, treeB: OpaquePointer?
        guard git_commit_tree(&treeA, a) == 0, git_commit_tree(&treeB, b) == 0 else {
            throw CairnError("cannot read trees to compare \(old) and \(new): \(lastGitError(-1))")
        }
        defer { git_tree_free(treeA); git_tree_free(treeB) }
        var diff: OpaquePointer?
        let rc = git_diff_tree_to_tree(&diff, repo, treeA, treeB, nil)
        guard rc == 0, let diff else { throw CairnError("cannot diff \(old) and \(new): \(lastGitError(rc))") }
        defer { git_diff_free(diff) }
        var paths: Set<String> = []
        for i in 0..<git_diff_num_deltas(diff) {
            guard let delta = git_diff_get_delta(diff, i) else { continue }
            if let p = delta.pointee.old_file.path { paths.insert(String(cString: p)) }
            if let p = delta.pointee.new_file.path { paths.insert(String(cString: p)) }
        }
        return paths.sorted()
    }

    /// True if `path` (repository-relative) is ignored by the repository's ignore rules.
    public func isIgnored(_ path: String) -> Bool {
        var ignored: Int32 = 0
        return git_ignore_path_is_ignored(&ignored, repo, path) == 0 && ignored == 1
    }

    /// A partial clone (`git clone --filter=…`): git fetches missing objects when it needs
    /// them; libgit2, and so Cairn, reads only the objects present.
    public var isPartialClone: Bool {
        var config: OpaquePointer?
        guard git_repository_config_snapshot(&config, repo) == 0, let config else { return false }
        defer { git_config_free(config) }
        var buffer = git_buf()
        defer { git_buf_dispose(&buffer) }
        if git_config_get_string_buf(&buffer, config, "extensions.partialclone") == 0 { return true }
        var promisor: Int32 = 0
        let rc = git_config_foreach_match(config, "^remote\\..*\\.promisor$", { entry, payload in
            guard let entry, let value = entry.pointee.value, let payload else { return 0 }
            var parsed: Int32 = 0
            if git_config_parse_bool(&parsed, value) == 0, parsed == 1 { payload.assumingMemoryBound(to: Int32.self).pointee = 1 }
            return 0
        }, &promisor)
        return rc == 0 && promisor == 1
    }

    /// The error for an object that cannot be read: in a partial clone, most likely one the
    /// clone's filter left out, which git fetches on demand and Cairn never does.
    func unreadable(_ what: String, id: String, rc: Int32) -> CairnError {
        let message = lastGitError(rc)
        if rc == GIT_ENOTFOUND.rawValue, isPartialClone {
            return CairnError("cannot read \(what): object \(id.prefix(12)) is not in \(location), a partial clone (made with --filter); "
                              + "Cairn reads only the objects a repository holds and never fetches missing ones",
                              hint: "check the revision out once (git checkout REV), which fetches its files, or use a full clone (git clone without --filter)")
        }
        return CairnError("cannot read \(what): \(message)")
    }

    // MARK: internals

    func lookupCommit(_ revision: String) throws(CairnError) -> OpaquePointer {
        var object: OpaquePointer?
        let rc = git_revparse_single(&object, repo, revision)
        guard rc == 0, let object else {
            throw CairnError("revision '\(revision)' not found in \(location): \(lastGitError(rc))",
                              hint: "give a branch, tag, commit id or an expression such as main~1; `git log --oneline` lists commits")
        }
        defer { git_object_free(object) }
        var peeled: OpaquePointer?
        let prc = git_object_peel(&peeled, object, GIT_OBJECT_COMMIT)
        guard prc == 0, let peeled else {
            throw CairnError("revision '\(revision)' does not name a commit: \(lastGitError(prc))",
                              hint: "give a branch, tag or commit id")
        }
        return peeled
    }

    private func info(_ commit: OpaquePointer) -> CommitInfo {
        let sha = oidString(git_commit_id(commit))
        let author = git_commit_author(commit)
        let name = author.flatMap { $0.pointee.name.map { String(cString: $0) } } ?? ""
        let email = author.flatMap { $0.pointee.email.map { String(cString: $0) } } ?? ""
        let time = author.map { Int64($0.pointee.when.time) } ?? 0
        let summary = git_commit_summary(commit).map { String(cString: $0) } ?? ""
        return CommitInfo(sha: sha, authorName: name, authorEmail: email, time: time, summary: summary)
    }

    private func collect(_ tree: OpaquePointer, prefix: String, exclude: Set<String>, isCached: ((String, String) -> Bool)?,
                         into files: inout [ManifestFile]) throws(CairnError) {
        for i in 0..<git_tree_entrycount(tree) {
            guard let entry = git_tree_entry_byindex(tree, i) else { continue }
            let name = String(cString: git_tree_entry_name(entry))
            let path = prefix + name
            switch git_tree_entry_filemode(entry) {
            case GIT_FILEMODE_TREE:
                if name.hasPrefix(".") || exclude.contains(name) || exclude.contains(path) { continue }
                var sub: OpaquePointer?
                let rc = git_tree_lookup(&sub, repo, git_tree_entry_id(entry))
                guard rc == 0, let sub else { throw unreadable("folder " + path, id: oidString(git_tree_entry_id(entry)), rc: rc) }
                defer { git_tree_free(sub) }
                try collect(sub, prefix: path + "/", exclude: exclude, isCached: isCached, into: &files)
            case GIT_FILEMODE_BLOB, GIT_FILEMODE_BLOB_EXECUTABLE:
                guard name.hasSuffix(".yaml") || name.hasSuffix(".yml") else { continue }
                let id = git_tree_entry_id(entry)!
                let blob = oidString(id)
                let contents = isCached?(path, blob) == true ? [] : try readBlob(id, path: path)
                files.append(ManifestFile(path: path, contents: contents, blobID: blob))
            default:
                // Symlinks and submodules are not read as manifests: their content is not this tree's.
                continue
            }
        }
    }

    func readBlob(_ id: UnsafePointer<git_oid>, path: String) throws(CairnError) -> [UInt8] {
        var blob: OpaquePointer?
        let rc = git_blob_lookup(&blob, repo, id)
        guard rc == 0, let blob else { throw unreadable(path, id: oidString(id), rc: rc) }
        defer { git_blob_free(blob) }
        let size = Int(git_blob_rawsize(blob))
        guard size > 0, let raw = git_blob_rawcontent(blob) else { return [] }
        return Array(UnsafeRawBufferPointer(start: raw, count: size))
    }
}

/// One revision's tree, for path lookups and file reads after the snapshot was taken.
final class GitTree: RevisionTree, @unchecked Sendable {
    let repository: GitRepository
    let tree: OpaquePointer

    init(repository: GitRepository, tree: OpaquePointer) {
        self.repository = repository
        self.tree = tree
    }

    deinit { git_tree_free(tree) }

    func entry(at path: String) throws -> TreeEntry? {
        let clean = RepoPathText.clean(path)
        if clean.isEmpty { return .directory }
        var entry: OpaquePointer?
        // libgit2 does not follow symlinks here: a link in the middle of the path is "not found",
        // which is right, because RepoPath resolves links one component at a time.
        guard git_tree_entry_bypath(&entry, tree, clean) == 0, let entry else { return nil }
        defer { git_tree_entry_free(entry) }
        switch git_tree_entry_filemode(entry) {
        case GIT_FILEMODE_TREE: return .directory
        case GIT_FILEMODE_LINK:
            let target = try repository.readBlob(git_tree_entry_id(entry), path: clean)
            return .symlink(target: String(decoding: target, as: UTF8.self))
        case GIT_FILEMODE_COMMIT: return .submodule
        default: return .file
        }
    }

    func readFile(at path: String) throws -> [UInt8] {
        let clean = RepoPathText.clean(path)
        var entry: OpaquePointer?
        guard git_tree_entry_bypath(&entry, tree, clean) == 0, let entry else {
            throw CairnError("\(clean) does not exist at this revision")
        }
        defer { git_tree_entry_free(entry) }
        return try repository.readBlob(git_tree_entry_id(entry), path: clean)
    }

    func subtree(_ path: String) throws(CairnError) -> OpaquePointer {
        var entry: OpaquePointer?
        guard git_tree_entry_bypath(&entry, tree, path) == 0, let entry else { throw CairnError("\(path) does not exist") }
        defer { git_tree_entry_free(entry) }
        var sub: OpaquePointer?
        let rc = git_tree_lookup(&sub, repository.repo, git_tree_entry_id(entry))
        guard rc == 0, let sub else { throw repository.unreadable("folder " + path, id: oidString(git_tree_entry_id(entry)), rc: rc) }
        return sub
    }
}

enum RepoPathText {
    /// Strips `./`, duplicate and trailing slashes: "./examples//retail/" → "examples/retail".
    static func clean(_ path: String) -> String {
        path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }
}

func oidString(_ oid: UnsafePointer<git_oid>?) -> String {
    guard let oid else { return "" }
    // git_oid_tostr_s writes into a thread-local buffer; copy it out at once.
    return git_oid_tostr_s(oid).map { String(cString: $0) } ?? ""
}

func lastGitError(_ code: Int32) -> String {
    if let e = git_error_last(), let m = e.pointee.message { return String(cString: m) }
    return "libgit2 error \(code)"
}

extension GitRepository {
    /// Writes every file of `revision`'s tree under `folder` (created), read-only: the
    /// repository snapshot an exec trainer runs in. Symlinks are recreated as links.
    public func materialize(revision: String, into folder: String) throws(CairnError) {
        let commit = try lookupCommit(revision)
        defer { git_commit_free(commit) }
        var tree: OpaquePointer?
        guard git_commit_tree(&tree, commit) == 0, let tree else { throw CairnError("cannot read the tree of \(revision): \(lastGitError(-1))") }
        defer { git_tree_free(tree) }
        try write(tree, to: folder)
    }

    private func write(_ tree: OpaquePointer, to folder: String) throws(CairnError) {
        guard mkdir(folder, 0o755) == 0 || errno == EEXIST else {
            throw CairnError("cannot create \(folder): \(String(cString: strerror(errno)))")
        }
        for i in 0..<git_tree_entrycount(tree) {
            guard let entry = git_tree_entry_byindex(tree, i) else { continue }
            let name = String(cString: git_tree_entry_name(entry))
            let path = folder + "/" + name
            switch git_tree_entry_filemode(entry) {
            case GIT_FILEMODE_TREE:
                var sub: OpaquePointer?
                guard git_tree_lookup(&sub, repo, git_tree_entry_id(entry)) == 0, let sub else { throw CairnError("cannot read \(path)") }
                defer { git_tree_free(sub) }
                try write(sub, to: path)
                chmod(path, 0o555)
            case GIT_FILEMODE_BLOB, GIT_FILEMODE_BLOB_EXECUTABLE:
                let bytes = try readBlob(git_tree_entry_id(entry), path: path)
                let executable = git_tree_entry_filemode(entry) == GIT_FILEMODE_BLOB_EXECUTABLE
                let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, executable ? 0o555 : 0o444)
                guard fd >= 0 else { throw CairnError("cannot write \(path): \(String(cString: strerror(errno)))") }
                let written = bytes.withUnsafeBufferPointer { Foundation.write(fd, $0.baseAddress, $0.count) }
                close(fd)
                guard written == bytes.count else { throw CairnError("cannot write \(path)") }
            case GIT_FILEMODE_LINK:
                let target = String(decoding: try readBlob(git_tree_entry_id(entry), path: path), as: UTF8.self)
                symlink(target, path)
            default:
                continue
            }
        }
        chmod(folder, 0o555)
    }

    /// The bytes of the file at `path` in `revision`.
    public func readFile(revision: String, path: String) throws(CairnError) -> [UInt8] {
        let snapshotTree: GitTree
        let commit = try lookupCommit(revision)
        defer { git_commit_free(commit) }
        var tree: OpaquePointer?
        guard git_commit_tree(&tree, commit) == 0, let tree else { throw CairnError("cannot read the tree of \(revision)") }
        snapshotTree = GitTree(repository: self, tree: tree)
        do {
            return try snapshotTree.readFile(at: path)
        } catch {
            throw CairnError("\(path) does not exist at \(revision)")
        }
    }
}
