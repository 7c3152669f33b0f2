import CairnCore
import Crypto
import Foundation

/// Content-addressed artifact folders: `<root>/<sha256>/…`, written once, never overwritten.
///
/// An artifact's hash is sha256 over its sorted file list (`path`, tab, the file's sha256,
/// new line), so it names the whole folder's content.
public struct ArtifactStore: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    public func folder(_ hash: String) -> URL { root.appendingPathComponent(hash) }

    /// Moves `staging` (a folder of files) into the store; returns its content hash. If an
    /// artifact with the same content exists it is kept, and `staging` is removed.
    public func store(staging: URL) throws -> String {
        Self.takeOwnership(of: staging)
        let hash = try Self.contentHash(of: staging)
        let target = folder(hash)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        // An artifact already there is touched before it is reused: garbage collection never
        // takes a folder touched since a run began (`collectGarbage`). If it is gone meanwhile
        // (collected), the staging folder takes its place.
        if utimes(target.path, nil) == 0 {
            try? FileManager.default.removeItem(at: staging)
            return hash
        }
        do {
            try FileManager.default.moveItem(at: staging, to: target)
        } catch {
            // Another worker stored the same content first: fine, it is the same artifact.
            if FileManager.default.fileExists(atPath: target.path) {
                try? FileManager.default.removeItem(at: staging)
                return hash
            }
            throw CairnError("cannot store artifact \(hash): \(error.localizedDescription)")
        }
        return hash
    }

    /// sha256 over one sorted line per entry of the tree under `folder`, never following a link:
    /// a regular file is `path<TAB>sha256` (with `<TAB>exec` when executable), a symbolic link
    /// `path<TAB>symlink<TAB>target`, an empty folder `path/<TAB>dir`. So the hash names exactly
    /// what the folder holds: two artifacts that differ only in a link, a mode or an empty folder
    /// have different addresses. (An artifact of plain files hashes as it always has.) Any other
    /// kind of entry (a FIFO, a socket, a device) is refused.
    public static func contentHash(of folder: URL) throws -> String {
        var lines: [String] = []
        try entries(of: folder) { path, entry in
            switch entry {
            case let .file(bytes, executable): lines.append("\(path)\t\(sha256Hex(try bytes()))\(executable ? "\texec" : "")\n")
            case let .symlink(target): lines.append("\(path)\tsymlink\t\(target)\n")
            case .emptyFolder: lines.append("\(path)/\tdir\n")
            }
        }
        return sha256Hex(lines.sorted().joined())
    }

    /// One entry of an artifact folder; a file's bytes are read only when asked for.
    public enum Entry {
        case file(bytes: () throws -> [UInt8], executable: Bool)
        case symlink(target: String)
        case emptyFolder
    }

    /// Visits every entry under `folder` (relative paths), never following a link: files, links
    /// and empty folders. Any other kind of entry (a FIFO, a socket, a device) is refused.
    public static func entries(of folder: URL, _ visit: (String, Entry) throws -> Void) throws {
        let base = folder.standardizedFileURL.path
        let fm = FileManager.default
        func walk(_ relative: String) throws {
            let dir = relative.isEmpty ? base : base + "/" + relative
            guard let names = try? fm.contentsOfDirectory(atPath: dir) else { throw CairnError("cannot read the artifact folder \(dir)") }
            if names.isEmpty, !relative.isEmpty { try visit(relative, .emptyFolder) }
            for name in names {
                let path = relative.isEmpty ? name : relative + "/" + name
                var info = stat()
                guard lstat(base + "/" + path, &info) == 0 else { throw CairnError("cannot read \(path) in the artifact") }
                switch info.st_mode & S_IFMT {
                case S_IFDIR:
                    try walk(path)
                case S_IFLNK:
                    try visit(path, .symlink(target: try fm.destinationOfSymbolicLink(atPath: base + "/" + path)))
                case S_IFREG:
                    try visit(path, .file(bytes: {
                        guard let data = fm.contents(atPath: base + "/" + path) else { throw CairnError("cannot read \(path) in the artifact") }
                        return [UInt8](data)
                    }, executable: info.st_mode & 0o111 != 0))
                default:
                    throw CairnError("the artifact holds \(path), which is neither a file, a folder nor a symbolic link")
                }
            }
        }
        try walk("")
    }

    /// A trainer running as another user wrote `staging`: make it this process's, and writable by
    /// it only, before it is hashed and stored, so no later trainer can change a stored artifact.
    static func takeOwnership(of staging: URL) {
        let (uid, gid) = (geteuid(), getegid())
        func fix(_ path: String) {
            var info = stat()
            guard lstat(path, &info) == 0 else { return }
            if info.st_uid != uid || info.st_gid != gid { _ = lchown(path, uid, gid) }
            if info.st_mode & S_IFMT != S_IFLNK, info.st_mode & 0o022 != 0 { chmod(path, info.st_mode & 0o7755) }
        }
        fix(staging.path)
        guard let e = FileManager.default.enumerator(atPath: staging.path) else { return }
        while let relative = e.nextObject() as? String { fix(staging.path + "/" + relative) }
    }

    /// Throws unless the store holds a folder under `hash` that still hashes to `hash` (read
    /// again, every file). `identity` names the version in the error, when there is one.
    public func verifyDigest(_ hash: String, of identity: VersionIdentity? = nil) throws {
        let of = identity.map { " of \($0)" } ?? ""
        let dir = folder(hash)
        guard hash.count == 64, hash.allSatisfy({ $0.isHexDigit }), FileManager.default.fileExists(atPath: dir.path) else {
            throw CairnError("artifact \(hash.prefix(12))…\(of) is missing from \(root.path)")
        }
        let actual = try Self.contentHash(of: dir)
        guard actual == hash else {
            throw CairnError("artifact\(of) was tampered with: its content hashes to \(actual.prefix(12))…, not \(hash.prefix(12))…")
        }
    }

    /// Checks an artifact against its recorded hash and signature before it is used.
    public func verify(hash: String, signature: String, identity: VersionIdentity, key: SigningKey) throws {
        try verifyDigest(hash, of: identity)
        guard key.verify(signature, contentHash: hash, identity: identity) else {
            throw CairnError("artifact of \(identity) has a signature this key did not make (tampered, or signed with another CAIRN_SIGNING_KEY)")
        }
    }
}

extension ArtifactStore {
    /// What a collection found (and, unless a dry run, removed).
    public struct Collected: Sendable, Equatable {
        /// Unreferenced artifacts removed (or, in a dry run, that would be), by hash.
        public var removed: [String]
        /// Unreferenced artifacts kept because they are too new or a run may be writing them.
        public var kept: [String]
        public var bytes: Int64
    }

    /// Removes the artifact folders no version references: never one in `referenced`, never one
    /// changed less than `minAge` seconds ago, never one changed since `activeSince` (the oldest
    /// queued or running run's creation: a run that is writing, or reusing, an artifact has not
    /// been recorded yet). Each folder is first renamed aside and checked again, so a run that
    /// reuses it at that moment either finds it gone (and stores its own) or made it new (and it is
    /// put back).
    public func collectGarbage(referenced: Set<String>, activeSince: Int64?, minAge: Int64, now: Int64, dryRun: Bool) throws -> Collected {
        var out = Collected(removed: [], kept: [], bytes: 0)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { return out }
        let cutoff = min(now - minAge, activeSince ?? Int64.max)
        func changed(_ path: String) -> Int64? {
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return nil }
            return Int64(info.st_mtim.tv_sec)
        }
        // A collection that stopped between setting a folder aside and removing it left it there.
        for name in names where name.hasPrefix(".gc-") && !referenced.contains(String(name.dropFirst(4))) && !dryRun {
            if let mtime = changed(root.appendingPathComponent(name).path), mtime < cutoff {
                try? FileManager.default.removeItem(at: root.appendingPathComponent(name))
            }
        }
        for name in names.sorted() where name.count == 64 && name.allSatisfy({ $0.isHexDigit }) && !referenced.contains(name) {
            let path = folder(name).path
            guard let mtime = changed(path) else { continue }
            if mtime >= cutoff {
                out.kept.append(name)
                continue
            }
            let size = Self.size(of: path)
            if dryRun {
                out.removed.append(name)
                out.bytes += size
                continue
            }
            let aside = root.appendingPathComponent(".gc-\(name)").path
            guard rename(path, aside) == 0 else { continue }
            if let again = changed(aside), again >= cutoff {
                _ = rename(aside, path)
                out.kept.append(name)
                continue
            }
            try? FileManager.default.removeItem(atPath: aside)
            out.removed.append(name)
            out.bytes += size
        }
        return out
    }

    static func size(of path: String) -> Int64 {
        var total: Int64 = 0
        if let e = FileManager.default.enumerator(atPath: path) {
            while let relative = e.nextObject() as? String {
                var info = stat()
                if lstat(path + "/" + relative, &info) == 0, info.st_mode & S_IFMT == S_IFREG { total += Int64(info.st_size) }
            }
        }
        return total
    }
}

/// What a signature binds an artifact to.
public struct VersionIdentity: Sendable, CustomStringConvertible {
    public var model: String
    public var version: Int
    public var fingerprint: String

    public init(model: String, version: Int, fingerprint: String) {
        self.model = model
        self.version = version
        self.fingerprint = fingerprint
    }

    public var description: String { "\(model) v\(version)" }

    var signedText: String { "cairn-artifact/1\n\(model)\n\(version)\n\(fingerprint)\n" }
}

/// The HMAC-SHA256 key that signs artifacts.
public struct SigningKey: Sendable {
    /// Raw key bytes (`SymmetricKey` is not `Sendable`; one is made per use).
    let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    var key: SymmetricKey { SymmetricKey(data: bytes) }

    /// HMAC-SHA256 over the content hash and the version identity, hex.
    public func sign(contentHash: String, identity: VersionIdentity) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array((contentHash + "\n" + identity.signedText).utf8), using: key)
        return hexString(mac)
    }

    public func verify(_ signature: String, contentHash: String, identity: VersionIdentity) -> Bool {
        guard let given = decodeHex(signature) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: Array((contentHash + "\n" + identity.signedText).utf8), using: key)
    }

    /// Reads a key written as hex (at least 32 hex characters, 64 as generated), the one
    /// encoding of a key wherever it comes from: `CAIRN_SIGNING_KEY=$(cat signing.key)` is the
    /// same key as the file. Surrounding white space is ignored. The key itself is never quoted.
    public static func parse(_ text: String, source: String) throws -> SigningKey {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bytes = decodeHex(trimmed), bytes.count >= 16 else {
            throw CairnError("\(source) is not a Cairn signing key: a key is at least 32 hex characters (64 as generated, \(trimmed.count) characters given)")
        }
        return SigningKey(bytes: bytes)
    }

    /// The key from `CAIRN_SIGNING_KEY`, else from `file`, generated there (0600) on first use;
    /// both in the same hex encoding. `notice` is told when a key is generated.
    public static func load(environment: [String: String], file: URL, notice: (String) -> Void) throws -> SigningKey {
        if let text = environment["CAIRN_SIGNING_KEY"], !text.isEmpty {
            return try parse(text, source: "CAIRN_SIGNING_KEY")
        }
        if let data = FileManager.default.contents(atPath: file.path) {
            return try parse(String(decoding: data, as: UTF8.self), source: file.path)
        }
        let bytes = randomBytes(32)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let text = hexString(bytes) + "\n"
        // Private from the start (no window in which others could read it), and exclusive: if
        // another process generated one first, use that one.
        let fd = open(file.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        if fd < 0 {
            if errno == EEXIST { return try load(environment: environment, file: file, notice: notice) }
            throw CairnError("cannot write a signing key to \(file.path): \(String(cString: strerror(errno)))")
        }
        let written = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
        guard written == text.utf8.count else { throw CairnError("cannot write a signing key to \(file.path)") }
        notice("generated a signing key at \(file.path) (mode 0600); set CAIRN_SIGNING_KEY or keep this file to verify artifacts later")
        return SigningKey(bytes: bytes)
    }
}
