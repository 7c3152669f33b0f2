/// A commit as Cairn records it: full id, author and time.
public struct CommitInfo: Sendable, Hashable, Codable {
    /// True for a full SHA-1 commit id (40 hexadecimal digits, ASCII only): what the plan API and
    /// `cairn plan --server` accept, never a ref name or an expression.
    public static func isFullID(_ text: String) -> Bool {
        text.utf8.count == 40 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }
    }

    /// Full 40-hex commit id.
    public var sha: String
    public var authorName: String
    public var authorEmail: String
    /// Author time, seconds since 1970.
    public var time: Int64
    /// First line of the message.
    public var summary: String

    public init(sha: String, authorName: String, authorEmail: String, time: Int64, summary: String) {
        self.sha = sha
        self.authorName = authorName
        self.authorEmail = authorEmail
        self.time = time
        self.summary = summary
    }

    public var shortSHA: String { String(sha.prefix(7)) }
}

/// What a path names in a revision's tree.
public enum TreeEntry: Sendable, Hashable {
    case file
    case directory
    /// A symbolic link; its target as stored.
    case symlink(target: String)
    /// A git submodule: content that is not in this repository.
    case submodule
}

/// A read-only view of one revision's files (a git tree, or a working directory).
/// Paths are repository-relative, `/`-separated, with no leading `/`.
public protocol RevisionTree: Sendable {
    /// What `path` names, without following a symlink at its last component; nil if nothing.
    /// A symlink in an earlier component is reported as that component's entry, never followed.
    func entry(at path: String) throws -> TreeEntry?
    func readFile(at path: String) throws -> [UInt8]
}

/// One manifest file found under the manifest root.
public struct ManifestFile: Sendable, Hashable {
    /// Repository-relative path.
    public var path: String
    public var contents: [UInt8]
    /// The git blob id when read from git, for caching; nil for working-tree files.
    public var blobID: String?

    public init(path: String, contents: [UInt8], blobID: String? = nil) {
        self.path = path
        self.contents = contents
        self.blobID = blobID
    }
}

/// The files of one revision that Cairn reads.
public struct RevisionSnapshot: Sendable {
    /// The commit, or nil for a working directory read with `--worktree`.
    public var commit: CommitInfo?
    /// The manifest root, repository-relative ("" for the repository root).
    public var manifestRoot: String
    public var files: [ManifestFile]
    public var tree: any RevisionTree

    public init(commit: CommitInfo?, manifestRoot: String, files: [ManifestFile], tree: any RevisionTree) {
        self.commit = commit
        self.manifestRoot = manifestRoot
        self.files = files
        self.tree = tree
    }
}

