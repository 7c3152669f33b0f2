import CairnCore
import Crypto
import Foundation

/// A portable, offline-verifiable export of one version (`cairn artifact export`, `GET
/// /v1/models/{m}/versions/{n}/bundle`): a POSIX tar holding `cairn-bundle.json` (the version's
/// metadata, the artifact's file list and content hash, signed with Ed25519) and the artifact's
/// files under `artifact/`. The Ed25519 key is derived from the registry's signing key; its public
/// half (`cairn artifact public-key`) is all an offline verifier holds. The same version always
/// exports to the same bytes.
public enum ArtifactBundle {
    public static let format = "cairn-bundle/1"
    static let metadataName = "cairn-bundle.json"
    static let signatureName = "cairn-bundle.sig"
    static let artifactFolder = "artifact/"

    /// The statement a bundle signs: what the version is and what its artifact holds.
    public static func statement(of version: ModelVersion, request: TrainRequest?, lines: [String]) -> JSONValue {
        var o: [String: JSONValue] = [
            "format": .string(format),
            "model": .string(version.model), "version": .int(version.number), "systemName": .string(version.systemName),
            "status": .string(version.status.rawValue), "metrics": .object(version.metrics.mapValues { .double($0) }),
            "datasetHash": .string(version.datasetHash), "fingerprint": .string(version.fingerprint),
            "fingerprintInputs": .from(version.fingerprintInputs), "commit": .string(version.commit),
            "trainerVersion": .string(version.trainerVersion), "createdAt": .int(Int(version.createdAt)),
            "artifact": .object(["hash": .string(version.artifactHash ?? ""), "entries": .array(lines.map { .string($0) })]),
            "registrySignature": .string(version.artifactSignature ?? ""),
        ]
        if let label = version.label { o["label"] = .string(label) }
        if let description = version.description { o["description"] = .string(description) }
        if let tuning = version.tuning { o["tuning"] = .from(tuning) }
        if let learned = version.learned { o["learned"] = .from(learned) }
        if let request {
            o["template"] = .object(["name": .string(request.template.metadata.name), "spec": .from(request.template)])
            var params: [String: JSONValue]
            switch request.template.trainer {
            case let .builtin(_, p): params = p
            case let .exec(_, _, _, p): params = p
            case let .slurm(job): params = job.params
            }
            if let chosen = version.tuning?.chosenTrial { params.merge(chosen.params) { _, new in new } }
            o["params"] = .object(params)
        }
        return .object(o)
    }

    /// Writes the bundle of `version` (its artifact verified against the registry's hash and
    /// HMAC signature first) and returns its bytes. `request` is its run's stored request
    /// (`RegistryDatabase.runRequest`), which gives the template and parameters.
    public static func make(version: ModelVersion, request requestText: String?, store: ArtifactStore, key: SigningKey) throws -> [UInt8] {
        let request = requestText.flatMap { try? JSONDecoder().decode(TrainRequest.self, from: Data($0.utf8)) }
        guard let hash = version.artifactHash, let signature = version.artifactSignature else {
            throw CairnError("\(version.model) v\(version.number) has no artifact to export")
        }
        try store.verify(hash: hash, signature: signature, identity: VersionIdentity(model: version.model, version: version.number,
                                                                                      fingerprint: version.fingerprint), key: key)
        let folder = store.folder(hash)
        let entries = try TarEntry.read(folder: folder)
        let lines = entries.map(\.hashLine).sorted()
        let statement = Self.statement(of: version, request: request, lines: lines)
        // The signature is over the statement file's exact bytes.
        let text = statement.canonicalBytes
        let signed = try key.bundleKey.signature(for: text)
        let signatureFile = JSONValue.object(["algorithm": .string("ed25519"), "signature": .string(Data(signed).base64EncodedString()),
                                          "publicKey": .string(key.bundlePublicKeyHex)])
        var tar = Tar()
        try tar.add(TarEntry(path: metadataName, kind: .file(bytes: text, executable: false)))
        try tar.add(TarEntry(path: signatureName, kind: .file(bytes: signatureFile.canonicalBytes + [10], executable: false)))
        for entry in entries.sorted(by: { $0.path < $1.path }) {
            var e = entry
            e.path = artifactFolder + e.path
            try tar.add(e)
        }
        return tar.finish()
    }

    /// What verifying a bundle found.
    public struct Verified: Sendable {
        public var model: String
        public var version: Int
        public var artifactHash: String
        public var statement: JSONValue
    }

    /// Checks a bundle offline: its statement is signed by `publicKey` (hex, from `cairn artifact
    /// public-key`), and its files hash to the artifact hash the statement names. Throws with the
    /// first thing that is wrong.
    public static func verify(_ bytes: [UInt8], publicKey: String) throws -> Verified {
        guard let raw = decodeHex(publicKey.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw CairnError("the public key is not a Cairn bundle key (64 hex characters, as `cairn artifact public-key` prints)")
        }
        let entries = try Tar.read(bytes)
        guard entries.count >= 2, entries[0].path == metadataName, case let .file(text, _) = entries[0].kind,
              entries[1].path == signatureName, case let .file(signatureFile, _) = entries[1].kind else {
            throw CairnError("not a Cairn bundle: it does not start with \(metadataName) and \(signatureName)")
        }
        guard case let .object(sig)? = JSONValue.parse(String(decoding: signatureFile, as: UTF8.self)),
              case let .string(signatureText)? = sig["signature"], let signature = Data(base64Encoded: signatureText) else {
            throw CairnError("\(signatureName) holds no signature")
        }
        guard key.isValidSignature(signature, for: text) else {
            throw CairnError("the bundle's statement is not signed by this public key (tampered, or exported by another registry)")
        }
        guard let statement = JSONValue.parse(String(decoding: text, as: UTF8.self)), case let .object(s) = statement, case .string(format)? = s["format"] else {
            throw CairnError("\(metadataName) is not a \(format) statement")
        }
        guard case let .string(model)? = s["model"], case let .int(number)? = s["version"],
              case let .object(artifact)? = s["artifact"], case let .string(hash)? = artifact["hash"] else {
            throw CairnError("the bundle's statement names no model, version or artifact hash")
        }
        var lines: [String] = []
        var paths = Set<String>()
        for entry in entries.dropFirst(2) {
            guard entry.path.hasPrefix(artifactFolder), entry.path.count > artifactFolder.count else {
                throw CairnError("the bundle holds \(entry.path), outside \(artifactFolder)")
            }
            var e = entry
            e.path = String(entry.path.dropFirst(artifactFolder.count))
            guard paths.insert(e.path).inserted else { throw CairnError("the bundle holds \(entry.path) twice") }
            if case .directory = e.kind {
                // Only an empty folder is part of the hash (as in the store).
                if entries.contains(where: { $0.path.hasPrefix(entry.path.hasSuffix("/") ? entry.path : entry.path + "/") && $0.path != entry.path }) { continue }
            }
            lines.append(e.hashLine)
        }
        let actual = sha256Hex(lines.sorted().joined())
        guard actual == hash else {
            throw CairnError("the bundle's files hash to \(actual.prefix(12))…, not the signed artifact hash \(hash.prefix(12))… (a file was changed, added or removed)")
        }
        return Verified(model: model, version: number, artifactHash: hash, statement: statement)
    }
}

extension SigningKey {
    /// The Ed25519 key bundles are signed with, derived from this key (HKDF-SHA256).
    var bundleKey: Curve25519.Signing.PrivateKey {
        let derived = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: bytes), info: Array("cairn-bundle-ed25519/1".utf8), outputByteCount: 32)
        return try! Curve25519.Signing.PrivateKey(rawRepresentation: derived.withUnsafeBytes { Array($0) })
    }

    /// The public half, hex: what an offline verifier holds.
    public var bundlePublicKeyHex: String { hexString(bundleKey.publicKey.rawRepresentation) }
}

/// One entry of an artifact folder or a bundle.
struct TarEntry {
    enum Kind {
        case file(bytes: [UInt8], executable: Bool)
        case symlink(target: String)
        case directory
    }

    var path: String
    var kind: Kind

    /// The entry's line in an artifact's content hash (`ArtifactStore.contentHash`).
    var hashLine: String {
        switch kind {
        case let .file(bytes, exec): "\(path)\t\(sha256Hex(bytes))\(exec ? "\texec" : "")\n"
        case let .symlink(target): "\(path)\tsymlink\t\(target)\n"
        case .directory: "\(path)/\tdir\n"
        }
    }

    /// Every entry under `folder` the way the store hashes it: files, links, and empty folders.
    static func read(folder: URL) throws -> [TarEntry] {
        var out: [TarEntry] = []
        try ArtifactStore.entries(of: folder) { path, entry in
            switch entry {
            case let .file(bytes, executable): out.append(TarEntry(path: path, kind: .file(bytes: try bytes(), executable: executable)))
            case let .symlink(target): out.append(TarEntry(path: path, kind: .symlink(target: target)))
            case .emptyFolder: out.append(TarEntry(path: path, kind: .directory))
            }
        }
        return out
    }
}

/// POSIX ustar, written and read here (names up to 255 bytes via the prefix field; times 0, so the
/// same entries give the same bytes).
struct Tar {
    private var out: [UInt8] = []

    mutating func add(_ entry: TarEntry) throws {
        var header = [UInt8](repeating: 0, count: 512)
        var name = Array(entry.path.utf8), prefix: [UInt8] = []
        if case .directory = entry.kind { name += Array("/".utf8) }
        if name.count > 100 {
            guard let split = name.indices.reversed().first(where: { name[$0] == UInt8(ascii: "/") && $0 <= 155 && name.count - $0 - 1 <= 100 }) else {
                throw CairnError("the artifact path \(entry.path) is too long for a bundle (at most 255 bytes, 100 after the last folder)")
            }
            prefix = Array(name[..<split])
            name = Array(name[(split + 1)...])
        }
        func put(_ bytes: [UInt8], at offset: Int) { for (i, b) in bytes.enumerated() { header[offset + i] = b } }
        func octal(_ value: Int, width: Int) -> [UInt8] { Array(String(format: "%0\(width - 1)o", value).utf8) + [0] }
        var body: [UInt8] = []
        let (mode, type): (Int, UInt8)
        switch entry.kind {
        case let .file(bytes, exec): (mode, type, body) = (exec ? 0o755 : 0o644, UInt8(ascii: "0"), bytes)
        case let .symlink(target):
            guard target.utf8.count <= 100 else { throw CairnError("the link \(entry.path) points to a target longer than 100 bytes") }
            (mode, type) = (0o777, UInt8(ascii: "2"))
            put(Array(target.utf8), at: 157)
        case .directory: (mode, type) = (0o755, UInt8(ascii: "5"))
        }
        put(name, at: 0)
        put(octal(mode, width: 8), at: 100)
        put(octal(0, width: 8), at: 108)
        put(octal(0, width: 8), at: 116)
        put(octal(body.count, width: 12), at: 124)
        put(octal(0, width: 12), at: 136)
        header[156] = type
        put(Array("ustar\0".utf8), at: 257)
        put(Array("00".utf8), at: 263)
        put(prefix, at: 345)
        put(Array(repeating: UInt8(ascii: " "), count: 8), at: 148)
        let sum = header.reduce(0) { $0 + Int($1) }
        put(Array(String(format: "%06o", sum).utf8) + [0, UInt8(ascii: " ")], at: 148)
        out += header
        out += body
        if body.count % 512 != 0 { out += [UInt8](repeating: 0, count: 512 - body.count % 512) }
    }

    func finish() -> [UInt8] { out + [UInt8](repeating: 0, count: 1024) }

    /// The entries of a ustar archive; refuses anything but files, links and folders, and any
    /// path that is absolute or climbs out (`..`).
    static func read(_ bytes: [UInt8]) throws -> [TarEntry] {
        var entries: [TarEntry] = []
        var offset = 0
        func text(_ slice: ArraySlice<UInt8>) -> String { String(decoding: slice.prefix { $0 != 0 }, as: UTF8.self) }
        func number(_ slice: ArraySlice<UInt8>) -> Int? { Int(text(slice).trimmingCharacters(in: .whitespaces), radix: 8) }
        while offset + 512 <= bytes.count {
            let h = bytes[offset..<offset + 512]
            if h.allSatisfy({ $0 == 0 }) { return entries }
            var check = Array(h)
            for i in 148..<156 { check[i] = UInt8(ascii: " ") }
            guard let size = number(h[(offset + 124)..<(offset + 136)]), size >= 0, let sum = number(h[(offset + 148)..<(offset + 156)]),
                  sum == check.reduce(0, { $0 + Int($1) }) else {
                throw CairnError("the bundle is damaged at byte \(offset): not a tar header")
            }
            let prefix = text(h[(offset + 345)..<(offset + 500)]), name = text(h[offset..<(offset + 100)])
            var path = prefix.isEmpty ? name : prefix + "/" + name
            let type = h[offset + 156]
            if type == UInt8(ascii: "5"), path.hasSuffix("/") { path.removeLast() }
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            guard !path.isEmpty, !path.hasPrefix("/"), !parts.contains(".."), !parts.contains(""), !parts.contains(".") else {
                throw CairnError("the bundle holds an entry named '\(path)': absolute, empty or climbing out of the bundle")
            }
            let start = offset + 512
            guard start + size <= bytes.count else { throw CairnError("the bundle is cut short in \(path)") }
            let body = Array(bytes[start..<start + size])
            let mode = number(h[(offset + 100)..<(offset + 108)]) ?? 0
            switch type {
            case UInt8(ascii: "0"), 0: entries.append(TarEntry(path: path, kind: .file(bytes: body, executable: mode & 0o111 != 0)))
            case UInt8(ascii: "2"): entries.append(TarEntry(path: path, kind: .symlink(target: text(h[(offset + 157)..<(offset + 257)]))))
            case UInt8(ascii: "5"): entries.append(TarEntry(path: path, kind: .directory))
            default: throw CairnError("the bundle holds \(path) of tar type '\(String(decoding: [type], as: UTF8.self))': only files, links and folders are allowed")
            }
            offset = start + (size + 511) / 512 * 512
        }
        throw CairnError("the bundle ends without the tar end marker (cut short?)")
    }
}
