import CLibGit2
import CairnCore
import Foundation

/// A bare cache of a remote repository (`file://`, `https://`, `ssh://`), fetched with libgit2.
///
/// Branches and tags are mirrored as they are on the remote (`+refs/heads/*:refs/heads/*`,
/// pruned), so `--revision main` names the remote's main. HTTPS uses the token in
/// `CAIRN_GIT_TOKEN` when set; SSH uses the ssh agent.
public enum RemoteMirror {
    /// True for `scheme://…` addresses.
    public static func isURL(_ s: String) -> Bool {
        guard let r = s.range(of: "://") else { return false }
        return s[..<r.lowerBound].allSatisfy { $0.isLetter || $0 == "+" }
    }

    /// The cache folder for `url` under `cacheRoot`.
    public static func cachePath(url: String, cacheRoot: String) -> String {
        cacheRoot + "/" + String(sha256Hex(url).prefix(16)) + ".git"
    }

    /// Fetches `url` into its cache (creating it), and points the cache's HEAD at `main` or
    /// `master`, whichever the remote has. Returns the cache path.
    @discardableResult
    public static func fetch(url: String, cacheRoot: String) throws(SourceError) -> String {
        _ = GitRepository.ensureInitialised
        let path = cachePath(url: url, cacheRoot: cacheRoot)
        try? FileManager.default.createDirectory(atPath: cacheRoot, withIntermediateDirectories: true)
        var repo: OpaquePointer?
        if git_repository_open_bare(&repo, path) != 0 {
            guard git_repository_init(&repo, path, 1) == 0 else {
                throw SourceError("cannot create the git cache at \(path): \(lastGitError(-1))")
            }
        }
        guard let repo else { throw SourceError("cannot open the git cache at \(path)") }
        defer { git_repository_free(repo) }
        var remote: OpaquePointer?
        if git_remote_lookup(&remote, repo, "origin") != 0 {
            guard git_remote_create_with_fetchspec(&remote, repo, "origin", url, "+refs/heads/*:refs/heads/*") == 0 else {
                throw SourceError("cannot configure the remote \(url): \(lastGitError(-1))")
            }
            git_remote_add_fetch(repo, "origin", "+refs/tags/*:refs/tags/*")
            git_remote_free(remote)
            remote = nil
            git_remote_lookup(&remote, repo, "origin")
        }
        guard let remote else { throw SourceError("cannot configure the remote \(url)") }
        defer { git_remote_free(remote) }
        var options = git_fetch_options()
        git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION))
        options.prune = GIT_FETCH_PRUNE
        options.callbacks.credentials = { out, _, usernameFromURL, allowed, _ in
            if allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0, let token = getenv("CAIRN_GIT_TOKEN") {
                return git_credential_userpass_plaintext_new(out, "x-access-token", token)
            }
            if allowed & GIT_CREDENTIAL_SSH_KEY.rawValue != 0 {
                if let usernameFromURL { return git_credential_ssh_key_from_agent(out, usernameFromURL) }
                return git_credential_ssh_key_from_agent(out, "git")
            }
            return GIT_PASSTHROUGH.rawValue
        }
        let rc = git_remote_fetch(remote, nil, &options, "cairn fetch")
        guard rc == 0 else {
            throw SourceError("cannot fetch \(url): \(lastGitError(rc))",
                              hint: "check the address and credentials (CAIRN_GIT_TOKEN for https, an ssh agent for ssh)")
        }
        for branch in ["refs/heads/main", "refs/heads/master"] {
            var ref: OpaquePointer?
            if git_reference_lookup(&ref, repo, branch) == 0 {
                git_reference_free(ref)
                git_repository_set_head(repo, branch)
                break
            }
        }
        return path
    }
}

extension GitRepository {
    /// Runs libgit2's global set-up once.
    static let ensureInitialised: Int32 = git_libgit2_init()
}
