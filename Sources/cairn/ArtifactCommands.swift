import ArgumentParser
import CairnCore
import CairnTraining
import Foundation

/// `cairn artifact`: verify a version's artifact, export and verify portable bundles, and
/// collect artifacts no version references.
struct Artifact: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Work with trained artifacts.",
                                                    subcommands: [Verify.self, Export.self, PublicKey.self, GC.self])

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a version's artifact (content hash and HMAC signature), or an exported bundle offline.",
            discussion: """
            `cairn artifact verify MODEL@N` checks the registry's artifact with the signing key. `cairn artifact verify --bundle FILE \
            --public-key KEY` checks an exported bundle with nothing but the registry's public bundle key (`cairn artifact public-key`). \
            Exit status 0 when intact, 1 when tampered, missing or signed with another key.
            """
        )

        @Argument(help: "The version: MODEL@N.")
        var version: String?

        @Option(help: "An exported bundle to verify offline (needs --public-key).")
        var bundle: String?

        @Option(help: "The registry's public bundle key: 64 hex characters, or a file holding them.")
        var publicKey: String?

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var artifacts: ArtifactOptions

        func run() throws {
            try reportingFailures {
                if let bundle {
                    guard let publicKey else {
                        throw CairnError("--bundle needs --public-key", hint: "the registry's operator prints it with `cairn artifact public-key`; it is not secret")
                    }
                    let keyText = FileManager.default.contents(atPath: publicKey).map { String(decoding: $0, as: UTF8.self) } ?? publicKey
                    guard let data = FileManager.default.contents(atPath: bundle) else { throw CairnError("cannot read the bundle \(bundle)") }
                    do {
                        let verified = try ArtifactBundle.verify([UInt8](data), publicKey: keyText)
                        print("\(verified.model) v\(verified.version): bundle intact, statement signed by this key, artifact \(verified.artifactHash.prefix(12))… matches")
                    } catch let error as CairnError {
                        print("\(bundle): TAMPERED: \(error.message)")
                        throw ExitCode(1)
                    }
                    return
                }
                guard let version else { throw CairnError("name a version (MODEL@N), or a bundle with --bundle FILE --public-key KEY") }
                let (model, number) = try parseVersionRef(version)
                let v = try loadVersion(database: database, model: model, number: number)
                guard let hash = v.artifactHash, let signature = v.artifactSignature else {
                    throw CairnError("\(model) v\(number) has no artifact")
                }
                let key = try artifacts.key(db: database.db, generate: false)
                do {
                    try artifacts.store(db: database.db).verify(hash: hash, signature: signature,
                                                                identity: VersionIdentity(model: model, version: number, fingerprint: v.fingerprint),
                                                                key: key)
                } catch let error as CairnError {
                    print("\(model) v\(number): TAMPERED: \(error.message)")
                    throw ExitCode(1)
                }
                print("\(model) v\(number): artifact \(hash.prefix(12))… intact, signature valid")
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a version's portable bundle: its artifact, metadata and signature, verifiable offline.",
            discussion: "The artifact is verified against the registry first. Verify the bundle anywhere with `cairn artifact verify --bundle FILE --public-key KEY`."
        )

        @Argument(help: "The version: MODEL@N.")
        var version: String

        @Option(name: .shortAndLong, help: "Where to write the bundle (default: MODEL-vN.cairn.tar in the current folder; - for standard output).")
        var output: String?

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var artifacts: ArtifactOptions

        func run() throws {
            try reportingFailures {
                let (model, number) = try parseVersionRef(version)
                let v = try loadVersion(database: database, model: model, number: number)
                guard let db = try database.openForReading() else { throw CairnError("no registry database at \(database.shown)") }
                let bytes = try ArtifactBundle.make(version: v, request: try db.runRequest(v.runID), store: artifacts.store(db: database.db),
                                                    key: try artifacts.key(db: database.db, generate: false))
                let path = output ?? "\(model)-v\(number).cairn.tar"
                if path == "-" {
                    FileHandle.standardOutput.write(Data(bytes))
                    return
                }
                try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
                printError("wrote \(path) (\(bytes.count) bytes): \(model) v\(number), artifact \(v.artifactHash?.prefix(12) ?? "")…")
            }
        }
    }

    struct PublicKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "public-key",
            abstract: "Print the public key bundles are signed with (what an offline verifier holds; not secret)."
        )

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var artifacts: ArtifactOptions

        func run() throws {
            try reportingFailures { print(try artifacts.key(db: database.db, generate: false).bundlePublicKeyHex) }
        }
    }

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Remove artifacts no version references any more (those of deleted versions and models).",
            discussion: """
            Never removes an artifact a version or a submitted result references, one changed within --min-age, or one changed \
            since the oldest queued or running run began (a run may be writing or reusing it). `cairn serve` runs this on a schedule \
            (--artifact-gc-every).
            """
        )

        @Flag(help: "Only list what would be removed.")
        var dryRun = false

        @Option(help: "Keep artifacts changed more recently than this (default 1h).")
        var minAge: String = "1h"

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var artifacts: ArtifactOptions

        func run() throws {
            try reportingFailures {
                guard let age = ManifestDuration(parsing: minAge) else { throw CairnError("--min-age '\(minAge)' is not a duration such as 1h or 30m") }
                guard let db = try database.openForReading() else { throw CairnError("no registry database at \(database.shown)") }
                let (referenced, activeSince) = try db.artifactReferences()
                let collected = try artifacts.store(db: database.db).collectGarbage(referenced: referenced, activeSince: activeSince,
                                                                                  minAge: Int64(age.seconds), now: clock.unixNow(), dryRun: dryRun)
                for hash in collected.removed { print("\(dryRun ? "would remove" : "removed") \(hash)") }
                print("\(dryRun ? "would remove" : "removed") \(collected.removed.count) unreferenced artifact\(collected.removed.count == 1 ? "" : "s") "
                      + "(\(collected.bytes) bytes); kept \(referenced.count) referenced"
                      + (collected.kept.isEmpty ? "" : " and \(collected.kept.count) too new to remove"))
            }
        }
    }
}
