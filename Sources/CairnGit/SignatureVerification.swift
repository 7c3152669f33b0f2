import CairnCore
import Crypto
import Foundation

/// Which revisions may be applied: only those whose commits are signed by a trusted key. SSH
/// signatures (`gpg.format ssh`) are verified here, in Swift, against an OpenSSH
/// `allowed_signers` file; OpenPGP signatures by Debian's `gpgv` against a keyring. The trust
/// files live outside the repository being verified (a commit could otherwise trust itself).
public struct SignaturePolicy: Sendable, Equatable {
    /// Which commits must be signed.
    public enum Mode: String, Sendable, CaseIterable {
        /// The revision's own commit.
        case head
        /// Every commit since the last applied revision (all of them on a first apply).
        case all
    }

    public var mode: Mode
    /// An OpenSSH allowed_signers file (`principals [options] keytype key`).
    public var allowedSigners: String?
    /// An OpenPGP keyring for gpgv (`gpg --export KEYS > keyring.gpg`).
    public var keyring: String?

    public init(mode: Mode, allowedSigners: String?, keyring: String?) {
        self.mode = mode
        self.allowedSigners = allowedSigners
        self.keyring = keyring
    }
}

/// Who signed a verified commit.
public struct VerifiedSigner: Sendable, Equatable {
    /// `ssh` or `openpgp`.
    public var format: String
    /// `SHA256:…` (SSH, as ssh-keygen -l prints it) or the primary key's fingerprint (OpenPGP).
    public var fingerprint: String
    /// The allowed_signers principal, or the OpenPGP user id.
    public var identity: String?

    /// How an audit row names it: `ssh SHA256:… (ada@example.com)`.
    public var description: String { "\(format) \(fingerprint)" + (identity.map { " (\($0))" } ?? "") }
}

/// Verifies commit signatures under a policy.
public enum SignatureVerifier {
    /// The signer of `commit`, or an error saying why it is not trusted.
    public static func verify(_ repository: GitRepository, commit: String, policy: SignaturePolicy) throws(CairnError) -> VerifiedSigner {
        guard let signed = try repository.signature(of: commit) else {
            throw CairnError("commit \(commit.prefix(12)) is not signed", hint: "sign it (git commit -S) with a key the trust files list", reason: .untrustedRevision)
        }
        if signed.signature.contains("-----BEGIN SSH SIGNATURE-----") {
            guard let file = policy.allowedSigners else {
                throw CairnError("commit \(commit.prefix(12)) has an SSH signature, and no allowed_signers file is configured",
                                 hint: "pass --allowed-signers FILE", reason: .untrustedRevision)
            }
            return try SSHSignature.verify(signed, allowedSigners: file, commit: commit)
        }
        if signed.signature.contains("-----BEGIN PGP SIGNATURE-----") {
            guard let keyring = policy.keyring else {
                throw CairnError("commit \(commit.prefix(12)) has an OpenPGP signature, and no keyring is configured",
                                 hint: "pass --gpg-keyring FILE", reason: .untrustedRevision)
            }
            return try OpenPGPSignature.verify(signed, keyring: keyring, commit: commit)
        }
        throw CairnError("commit \(commit.prefix(12)) has a signature of a kind Cairn does not verify (SSH and OpenPGP only)", reason: .untrustedRevision)
    }

    /// Refuses trust files inside the repository: a commit must not be able to trust itself.
    public static func checkTrustFiles(_ policy: SignaturePolicy, repository: String) throws(CairnError) {
        let root = (realpath(repository, nil).map { p -> String in defer { free(p) }; return String(cString: p) }) ?? repository
        for file in [policy.allowedSigners, policy.keyring].compactMap({ $0 }) {
            guard let real = realpath(file, nil) else {
                throw CairnError("the trust file \(file) cannot be read", hint: "give an existing allowed_signers file or keyring")
            }
            let path = String(cString: real)
            free(real)
            if path == root || path.hasPrefix(root + "/") {
                throw CairnError("the trust file \(file) is inside the repository it would verify: a commit could trust itself",
                                 hint: "keep allowed_signers and keyrings outside the repository (for example /etc/cairn/)")
            }
        }
    }
}

/// OpenSSH's SSHSIG format (PROTOCOL.sshsig), verified with swift-crypto: Ed25519 and
/// ECDSA P-256/P-384 keys.
enum SSHSignature {
    struct Reader {
        var bytes: [UInt8]
        var offset = 0

        mutating func take(_ n: Int) throws(CairnError) -> [UInt8] {
            guard n >= 0, offset + n <= bytes.count else { throw CairnError("the SSH signature is truncated", reason: .untrustedRevision) }
            defer { offset += n }
            return Array(bytes[offset..<offset + n])
        }

        mutating func uint32() throws(CairnError) -> Int {
            let b = try take(4)
            return Int(b[0]) << 24 | Int(b[1]) << 16 | Int(b[2]) << 8 | Int(b[3])
        }

        mutating func string() throws(CairnError) -> [UInt8] { try take(try uint32()) }
    }

    static func encoded(_ bytes: [UInt8]) -> [UInt8] {
        let n = bytes.count
        return [UInt8(n >> 24 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + bytes
    }

    static func verify(_ signed: CommitSignature, allowedSigners: String, commit: String) throws(CairnError) -> VerifiedSigner {
        let short = commit.prefix(12)
        let body = signed.signature.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }.joined()
        guard let blob = Data(base64Encoded: String(body)) else {
            throw CairnError("commit \(short): the SSH signature is not base64", reason: .untrustedRevision)
        }
        var r = Reader(bytes: [UInt8](blob))
        guard try r.take(6) == Array("SSHSIG".utf8), try r.uint32() == 1 else {
            throw CairnError("commit \(short): not an SSHSIG version 1 signature", reason: .untrustedRevision)
        }
        let publicKey = try r.string()
        let namespace = try r.string()
        _ = try r.string()
        let hashName = String(decoding: try r.string(), as: UTF8.self)
        let signatureBlob = try r.string()
        guard namespace == Array("git".utf8) else {
            throw CairnError("commit \(short): the SSH signature is for namespace '\(String(decoding: namespace, as: UTF8.self))', not git",
                             reason: .untrustedRevision)
        }
        let digest: [UInt8]
        switch hashName {
        case "sha512": digest = Array(SHA512.hash(data: signed.signedData))
        case "sha256": digest = Array(SHA256.hash(data: signed.signedData))
        default: throw CairnError("commit \(short): unknown SSH signature hash '\(hashName)'", reason: .untrustedRevision)
        }
        let message = Array("SSHSIG".utf8) + encoded(namespace) + encoded([]) + encoded(Array(hashName.utf8)) + encoded(digest)
        let fingerprint = "SHA256:" + Data(SHA256.hash(data: publicKey)).base64EncodedString().replacingOccurrences(of: "=", with: "")

        // Who may sign: the key must be listed, for the git namespace, valid at the commit's time.
        let entry = try allowedEntry(for: publicKey, file: allowedSigners, commit: short, fingerprint: fingerprint, at: signed.committedAt)
        guard try valid(signatureBlob, key: publicKey, message: message) else {
            throw CairnError("commit \(short): the SSH signature by \(fingerprint) does not match the commit (it was changed after signing, or signed by another key)",
                             reason: .untrustedRevision)
        }
        return VerifiedSigner(format: "ssh", fingerprint: fingerprint, identity: entry)
    }

    static func valid(_ signatureBlob: [UInt8], key: [UInt8], message: [UInt8]) throws(CairnError) -> Bool {
        var k = Reader(bytes: key)
        let keyType = String(decoding: try k.string(), as: UTF8.self)
        var s = Reader(bytes: signatureBlob)
        let signatureType = String(decoding: try s.string(), as: UTF8.self)
        let signature = try s.string()
        do {
            switch keyType {
            case "ssh-ed25519":
                guard signatureType == "ssh-ed25519" else { return false }
                return try Curve25519.Signing.PublicKey(rawRepresentation: try k.string()).isValidSignature(signature, for: message)
            case "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384":
                guard signatureType == keyType else { return false }
                _ = try k.string()
                let point = try k.string()
                var rs = Reader(bytes: signature)
                let width = keyType.hasSuffix("256") ? 32 : 48
                func fixed(_ mpint: [UInt8]) -> [UInt8] {
                    let trimmed = Array(mpint.drop { $0 == 0 })
                    return Array(repeating: 0, count: max(0, width - trimmed.count)) + trimmed.suffix(width)
                }
                let raw = fixed(try rs.string()) + fixed(try rs.string())
                if width == 32 {
                    return try P256.Signing.PublicKey(x963Representation: point)
                        .isValidSignature(try P256.Signing.ECDSASignature(rawRepresentation: raw), for: SHA256.hash(data: message))
                }
                return try P384.Signing.PublicKey(x963Representation: point)
                    .isValidSignature(try P384.Signing.ECDSASignature(rawRepresentation: raw), for: SHA384.hash(data: message))
            default:
                throw CairnError("SSH keys of type \(keyType) are not verified by Cairn", hint: "sign with an ed25519 or ecdsa key", reason: .untrustedRevision)
            }
        } catch let e as CairnError {
            throw e
        } catch {
            return false
        }
    }

    /// The principal of the allowed_signers line listing `key`, or why none may sign.
    static func allowedEntry(for key: [UInt8], file: String, commit: Substring, fingerprint: String, at time: Int64) throws(CairnError) -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw CairnError("cannot read the allowed_signers file \(file)")
        }
        var expired: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = tokens(line)
            guard fields.count >= 3 else { continue }
            let principals = fields[0]
            var rest = Array(fields.dropFirst())
            var options: [String: String] = [:]
            if !rest[0].hasPrefix("ssh-") && !rest[0].hasPrefix("ecdsa-") && !rest[0].hasPrefix("sk-") {
                for option in splitOptions(rest[0]) {
                    let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
                    options[parts[0].lowercased()] = parts.count > 1 ? parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) : ""
                }
                rest.removeFirst()
            }
            guard rest.count >= 2, let listed = Data(base64Encoded: rest[1]), [UInt8](listed) == key else { continue }
            if options["cert-authority"] != nil { continue }
            if let namespaces = options["namespaces"], !namespaces.split(separator: ",").contains("git") { continue }
            if let after = options["valid-after"].flatMap(sshTime), time < after {
                expired = "is valid only after \(Describe.time(after))"
                continue
            }
            if let before = options["valid-before"].flatMap(sshTime), time >= before {
                expired = "expired at \(Describe.time(before))"
                continue
            }
            return principals
        }
        if let expired {
            throw CairnError("commit \(commit): the key \(fingerprint) \(expired) (the commit is of \(Describe.time(time)))",
                             hint: "sign with a current key, or extend its validity in the allowed_signers file", reason: .untrustedRevision)
        }
        throw CairnError("commit \(commit): the key \(fingerprint) that signed it is not in the allowed_signers file \(file)",
                         hint: "sign with a listed key, or add the key (a reviewed change outside the repository)", reason: .untrustedRevision)
    }

    /// Whitespace-separated fields, a quoted string kept whole.
    static func tokens(_ line: String) -> [String] {
        var out: [String] = [], current = "", quoted = false
        for ch in line {
            if ch == "\"" { quoted.toggle() }
            if ch.isWhitespace && !quoted {
                if !current.isEmpty { out.append(current); current = "" }
            } else {
                current.append(ch)
            }
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    static func splitOptions(_ text: String) -> [String] {
        var out: [String] = [], current = "", quoted = false
        for ch in text {
            if ch == "\"" { quoted.toggle() }
            if ch == "," && !quoted { out.append(current); current = "" } else { current.append(ch) }
        }
        out.append(current)
        return out
    }

    /// `YYYYMMDD[HHMM[SS]][Z]` (UTC; local time without Z is read as UTC here).
    static func sshTime(_ text: String) -> Int64? {
        let digits = text.hasSuffix("Z") ? String(text.dropLast()) : text
        guard [8, 12, 14].contains(digits.count), digits.allSatisfy(\.isNumber) else { return nil }
        let padded = digits + String(repeating: "0", count: 14 - digits.count)
        let d = Array(padded)
        let iso = "\(String(d[0..<4]))-\(String(d[4..<6]))-\(String(d[6..<8]))T\(String(d[8..<10])):\(String(d[10..<12])):\(String(d[12..<14]))Z"
        return Timestamp.parse(iso)
    }
}

/// OpenPGP signatures, verified by Debian's gpgv against a keyring.
enum OpenPGPSignature {
    static func verify(_ signed: CommitSignature, keyring: String, commit: String) throws(CairnError) -> VerifiedSigner {
        let short = commit.prefix(12)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cairn-gpgv-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let status: String
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let signature = dir.appendingPathComponent("commit.sig"), data = dir.appendingPathComponent("commit")
            try Data(signed.signature.utf8).write(to: signature)
            try Data(signed.signedData).write(to: data)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/gpgv")
            process.arguments = ["--homedir", dir.path, "--status-fd", "1", "--keyring", (keyring as NSString).standardizingPath.hasPrefix("/") ? keyring
                : FileManager.default.currentDirectoryPath + "/" + keyring, signature.path, data.path]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            let bytes = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            status = String(decoding: bytes, as: UTF8.self)
        } catch {
            throw CairnError("cannot run gpgv to verify commit \(short): \(error)", hint: "install Debian's gpgv package")
        }
        let lines = status.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        func line(_ keyword: String) -> [String]? { lines.first { $0.count > 1 && $0[0] == "[GNUPG:]" && $0[1] == keyword } }
        if let expired = line("EXPKEYSIG") {
            throw CairnError("commit \(short): the OpenPGP key \(expired.count > 2 ? expired[2] : "?") that signed it has expired",
                             hint: "sign with a current key", reason: .untrustedRevision)
        }
        if line("REVKEYSIG") != nil { throw CairnError("commit \(short): the OpenPGP key that signed it is revoked", reason: .untrustedRevision) }
        if line("BADSIG") != nil {
            throw CairnError("commit \(short): the OpenPGP signature does not match the commit (it was changed after signing)", reason: .untrustedRevision)
        }
        if let missing = line("NO_PUBKEY") ?? line("ERRSIG") {
            throw CairnError("commit \(short): signed by OpenPGP key \(missing.count > 2 ? missing[2] : "?"), which is not in the keyring \(keyring)",
                             hint: "sign with a key of the keyring, or add the key to it (a reviewed change outside the repository)", reason: .untrustedRevision)
        }
        guard let good = line("GOODSIG"), let valid = line("VALIDSIG"), valid.count > 2 else {
            throw CairnError("commit \(short): gpgv did not verify the OpenPGP signature", reason: .untrustedRevision)
        }
        // VALIDSIG's tenth field is the primary key's fingerprint (the signing subkey's is the first).
        let primary = valid.count > 11 ? valid[11] : valid[2]
        return VerifiedSigner(format: "openpgp", fingerprint: primary, identity: good.count > 3 ? good[3...].joined(separator: " ") : nil)
    }
}
