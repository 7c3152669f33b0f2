import CairnCore
import CLibGit2
import Foundation

/// A commit's signature and the bytes it signs (the commit object without its `gpgsig` header).
public struct CommitSignature: Sendable, Equatable {
    public var signature: String
    public var signedData: [UInt8]
    /// The committer's time (unix seconds): the time a key's validity is judged at.
    public var committedAt: Int64
}

extension GitRepository {
    /// The signature of `commit` (a full id), or nil when it is not signed.
    public func signature(of commit: String) throws(CairnError) -> CommitSignature? {
        var oid = git_oid()
        guard git_oid_fromstr(&oid, commit) == 0 else { throw CairnError("'\(commit)' is not a commit id") }
        var signature = git_buf(), signed = git_buf()
        defer {
            git_buf_dispose(&signature)
            git_buf_dispose(&signed)
        }
        let rc = git_commit_extract_signature(&signature, &signed, repo, &oid, nil)
        if rc == GIT_ENOTFOUND.rawValue { return nil }
        guard rc == 0, let sigPointer = signature.ptr, let dataPointer = signed.ptr else {
            throw CairnError("cannot read the signature of commit \(commit.prefix(12)): \(lastGitError(rc))")
        }
        let commitObject = try lookupCommit(commit)
        defer { git_commit_free(commitObject) }
        let committedAt = git_commit_committer(commitObject).map { Int64($0.pointee.when.time) } ?? 0
        let text = String(decoding: UnsafeRawBufferPointer(start: sigPointer, count: signature.size), as: UTF8.self)
        let data = [UInt8](UnsafeRawBufferPointer(start: dataPointer, count: signed.size))
        return CommitSignature(signature: text, signedData: data, committedAt: committedAt)
    }

    /// The commits reachable from `head` and not from `base` (every one when `base` is nil),
    /// newest first; at most `limit`, else an error.
    public func commits(from base: String?, to head: String, limit: Int = 10_000) throws(CairnError) -> [String] {
        var walk: OpaquePointer?
        guard git_revwalk_new(&walk, repo) == 0, let walk else { throw CairnError("cannot walk the history of \(location)") }
        defer { git_revwalk_free(walk) }
        git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL.rawValue | GIT_SORT_TIME.rawValue)
        var headOid = git_oid()
        guard git_oid_fromstr(&headOid, head) == 0, git_revwalk_push(walk, &headOid) == 0 else {
            throw CairnError("cannot walk the history from \(head.prefix(12)): \(lastGitError(-1))")
        }
        if let base {
            var baseOid = git_oid()
            // A base the repository no longer has (a force push removed it) hides nothing.
            if git_oid_fromstr(&baseOid, base) == 0 { _ = git_revwalk_hide(walk, &baseOid) }
        }
        var out: [String] = []
        var oid = git_oid()
        while git_revwalk_next(&oid, walk) == 0 {
            out.append(oidString(&oid))
            if out.count > limit {
                throw CairnError("more than \(limit) commits since the last applied revision to verify",
                                 hint: "verify the head commit only (--verify-signatures head), or apply an intermediate revision first")
            }
        }
        return out
    }
}
