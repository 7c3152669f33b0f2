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

    /// The cache folder for `url` under `cacheRoot` (named by the address without credentials).
    public static func cachePath(url: String, cacheRoot: String) -> String {
        cacheRoot + "/" + String(sha256Hex(split(url).address).prefix(16)) + ".git"
    }

    /// An address split from the credentials written into it (`https://user:token@host/…`).
    struct Parts {
        /// The address to configure and show: no password, and for http(s) no user either (a
        /// token is often given as the user name).
        var address: String
        /// The address as logs, status and errors show it: credentials replaced by `***`.
        var shown: String
        var user: String?
        var password: String?
    }

    static func split(_ url: String) -> Parts {
        guard let schemeEnd = url.range(of: "://") else { return Parts(address: url, shown: url) }
        let rest = url[schemeEnd.upperBound...]
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return Parts(address: url, shown: url) }
        let userinfo = rest[..<at]
        let user = userinfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
        let password = userinfo.contains(":") ? String(userinfo[userinfo.index(after: userinfo.firstIndex(of: ":")!)...]) : nil
        let scheme = url[..<schemeEnd.upperBound]
        let host = rest[rest.index(after: at)...]
        if scheme.lowercased().hasPrefix("http") {
            return Parts(address: "\(scheme)\(host)", shown: "\(scheme)***@\(host)", user: user, password: password)
        }
        // ssh://git@host: the user name is not a secret; a password is dropped.
        let named = "\(scheme)\(user.map { $0 + "@" } ?? "")\(host)"
        return Parts(address: named, shown: password == nil ? named : "\(scheme)\(user ?? ""):***@\(host)", user: user, password: password)
    }

    /// `url` as it may be shown in logs, status and errors: credentials replaced by `***`.
    public static func redacted(_ url: String) -> String { split(url).shown }

    /// Fetches `url` into its cache (creating it), and points the cache's HEAD at `main` or
    /// `master`, whichever the remote has. Returns the cache path.
    @discardableResult
    public static func fetch(url: String, cacheRoot: String) throws(CairnError) -> String {
        try fetch(url: url, cacheRoot: cacheRoot, commit: nil)
    }

    /// Fetches one commit by its id into the cache (after a full fetch when there is no cache
    /// yet), for plans of revisions no branch names: a pull request's merge commit. The remote
    /// must allow fetching a commit by id (GitHub, GitLab and git with
    /// `uploadpack.allowReachableSHA1InWant` do). No ref is made: the daemon's revision never
    /// resolves to it.
    public static func fetch(url: String, cacheRoot: String, commit: String) throws(CairnError) {
        _ = try fetch(url: url, cacheRoot: cacheRoot, commit: Optional(commit))
    }

    /// One fetch at a time into a process's caches: the loop's and the plan endpoint's would
    /// otherwise race for the same ref locks.
    private static let fetching = NSLock()

    private static func fetch(url: String, cacheRoot: String, commit: String?) throws(CairnError) -> String {
        fetching.lock()
        defer { fetching.unlock() }
        let path = cachePath(url: url, cacheRoot: cacheRoot)
        let existed = FileManager.default.fileExists(atPath: path)
        do {
            if commit != nil, !existed { _ = try fetchIntoCache(url: url, cacheRoot: cacheRoot, commit: nil) }
            return try fetchIntoCache(url: url, cacheRoot: cacheRoot, commit: commit)
        } catch {
            // A first fetch that failed leaves no cache behind: an empty one would make later
            // passes report a missing revision instead of the unreachable remote.
            if !existed { try? FileManager.default.removeItem(atPath: path) }
            throw error
        }
    }

    private static func fetchIntoCache(url: String, cacheRoot: String, commit: String?) throws(CairnError) -> String {
        _ = GitRepository.ensureInitialised
        // Credentials written into the address are handed to libgit2 through the credential
        // callback only: never into the cache's config, never into a message.
        let parts = split(url)
        let shown = parts.shown
        let path = cachePath(url: url, cacheRoot: cacheRoot)
        try? FileManager.default.createDirectory(atPath: cacheRoot, withIntermediateDirectories: true)
        var repo: OpaquePointer?
        if git_repository_open_bare(&repo, path) != 0 {
            guard git_repository_init(&repo, path, 1) == 0 else {
                throw CairnError("cannot create the git cache at \(path): \(lastGitError(-1))")
            }
        }
        guard let repo else { throw CairnError("cannot open the git cache at \(path)") }
        defer { git_repository_free(repo) }
        var remote: OpaquePointer?
        if git_remote_lookup(&remote, repo, "origin") != 0 {
            guard git_remote_create_with_fetchspec(&remote, repo, "origin", parts.address, "+refs/heads/*:refs/heads/*") == 0 else {
                throw CairnError("cannot configure the remote \(shown): \(lastGitError(-1))")
            }
            git_remote_add_fetch(repo, "origin", "+refs/tags/*:refs/tags/*")
            git_remote_free(remote)
            remote = nil
            git_remote_lookup(&remote, repo, "origin")
        }
        guard var remote else { throw CairnError("cannot configure the remote \(shown)") }
        if let configured = git_remote_url(remote).map({ String(cString: $0) }), configured != parts.address {
            // A cache configured by an older Cairn may hold the credentials: replace its address.
            git_remote_set_url(repo, "origin", parts.address)
            git_remote_free(remote)
            var fresh: OpaquePointer?
            guard git_remote_lookup(&fresh, repo, "origin") == 0, let fresh else { throw CairnError("cannot configure the remote \(shown)") }
            remote = fresh
        }
        defer { git_remote_free(remote) }
        let credentials = Unmanaged.passRetained(URLCredentials(user: parts.user, password: parts.password, token: Secrets.value("CAIRN_GIT_TOKEN")))
        defer { credentials.release() }
        var options = git_fetch_options()
        git_fetch_options_init(&options, UInt32(GIT_FETCH_OPTIONS_VERSION))
        options.prune = GIT_FETCH_PRUNE
        options.callbacks.payload = credentials.toOpaque()
        options.callbacks.credentials = { out, _, usernameFromURL, allowed, payload in
            let given = payload.map { Unmanaged<URLCredentials>.fromOpaque($0).takeUnretainedValue() }
            if allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0, let given, let user = given.user, !given.tried {
                given.tried = true
                return git_credential_userpass_plaintext_new(out, user, given.password ?? "")
            }
            if allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0, let token = given?.token {
                return git_credential_userpass_plaintext_new(out, "x-access-token", token)
            }
            if allowed & GIT_CREDENTIAL_SSH_KEY.rawValue != 0 {
                if let usernameFromURL { return git_credential_ssh_key_from_agent(out, usernameFromURL) }
                return git_credential_ssh_key_from_agent(out, "git")
            }
            return GIT_PASSTHROUGH.rawValue
        }
        if let commit {
            // A refspec of a bare object id: its objects, and no ref (libgit2 1.4 and later).
            options.prune = GIT_FETCH_NO_PRUNE
            let rc = commit.withCString { spec -> Int32 in
                var strings: [UnsafeMutablePointer<CChar>?] = [UnsafeMutablePointer(mutating: spec)]
                return strings.withUnsafeMutableBufferPointer { buffer in
                    var refspecs = git_strarray(strings: buffer.baseAddress, count: 1)
                    return git_remote_fetch(remote, &refspecs, &options, "cairn fetch \(commit)")
                }
            }
            guard rc == 0 else {
                throw CairnError("cannot fetch commit \(commit) from \(shown): \(redactingSecrets(lastGitError(rc), parts))",
                                  hint: "the remote must hold the commit and allow fetching it by id (GitHub and GitLab do; "
                                      + "plain git needs uploadpack.allowReachableSHA1InWant)")
            }
            return path
        }
        let rc = git_remote_fetch(remote, nil, &options, "cairn fetch")
        guard rc == 0 else {
            throw CairnError("cannot fetch \(shown): \(redactingSecrets(lastGitError(rc), parts))",
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

/// Credentials taken from a `--repo` address, handed to libgit2's callback once.
final class URLCredentials: @unchecked Sendable {
    let user: String?
    let password: String?
    /// `CAIRN_GIT_TOKEN`, tried after the address's own credentials.
    let token: String?
    var tried = false

    init(user: String?, password: String?, token: String?) {
        self.user = user
        self.password = password
        self.token = token
    }
}

/// A library message with any credential it might echo replaced by `***`.
func redactingSecrets(_ message: String, _ parts: RemoteMirror.Parts) -> String {
    var text = message
    for secret in [parts.password, parts.user] {
        if let secret, secret.count >= 4 { text = text.replacingOccurrences(of: secret, with: "***") }
    }
    return text
}

extension GitRepository {
    /// Runs libgit2's global set-up once.
    static let ensureInitialised: Int32 = git_libgit2_init()
}
