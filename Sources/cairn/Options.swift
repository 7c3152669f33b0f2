import ArgumentParser
import CairnCore
import CairnGit
import CairnManifests
import CairnRender
import CairnReconcile
import CairnSource
import Foundation

/// Where the manifests come from: repository, revision, folder.
struct SourceOptions: ParsableArguments {
    @Option(help: "The git repository: a path (bare or not); for `serve`, also a file://, https:// or ssh:// URL.")
    var repo: String = "."

    @Option(help: "The revision to read: branch, tag, commit id, or an expression such as main~1 (for `serve`, the branch to follow).")
    var revision: String = "HEAD"

    @Option(help: "The manifest folder, relative to the repository root.")
    var path: String = ""

    @Option(name: .customLong("exclude"), help: "A folder name or repository path to skip (repeatable).")
    var excluded: [String] = []

    @OptionGroup var trust: TrustOptions

    func openRepository() throws(CairnError) -> GitRepository {
        try GitRepository(path: repo)
    }

    /// The manifest source the reconcile core reads.
    var manifestSource: GitManifestSource {
        var source = GitManifestSource(repository: repo, revision: revision, root: path, exclude: Set(excluded))
        source.signatures = trust.policy
        return source
    }

    /// Reads the revision (or the working directory, or the index) and validates it.
    func load(_ files: RevisionReader.Files = .revision) throws(CairnError) -> (RevisionSnapshot, LoadedManifests) {
        let revision = try RevisionReader.read(repository: try openRepository(), revision: self.revision, root: path,
                                               exclude: Set(excluded), files: files)
        return (revision.snapshot, revision.loaded)
    }
}

extension SignaturePolicy.Mode: ExpressibleByArgument {}

/// Which revisions may be planned and applied: only those signed by trusted keys.
struct TrustOptions: ParsableArguments {
    @Option(help: "Apply only revisions whose commits are signed by a trusted key: head (the revision's commit) or all (every commit since the last applied revision).")
    var verifySignatures: SignaturePolicy.Mode?

    @Option(help: "An OpenSSH allowed_signers file, outside the repository: the keys trusted for SSH-signed commits (gpg.format ssh).")
    var allowedSigners: String?

    @Option(help: "An OpenPGP keyring (gpg --export KEYS > FILE), outside the repository, for gpgv: the keys trusted for OpenPGP-signed commits.")
    var gpgKeyring: String?

    func validate() throws {
        if verifySignatures == nil, allowedSigners != nil || gpgKeyring != nil {
            throw ValidationError("--allowed-signers and --gpg-keyring go with --verify-signatures head|all")
        }
        if verifySignatures != nil, allowedSigners == nil, gpgKeyring == nil {
            throw ValidationError("--verify-signatures needs the trusted keys: --allowed-signers FILE (SSH) and/or --gpg-keyring FILE (OpenPGP)")
        }
    }

    var policy: SignaturePolicy? {
        verifySignatures.map { SignaturePolicy(mode: $0, allowedSigners: allowedSigners, keyring: gpgKeyring) }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, markdown
}

struct OutputOptions: ParsableArguments {
    @Option(help: "Output format: text, json or markdown.")
    var format: OutputFormat = .text

    @Flag(name: .customLong("no-color"), help: "No ANSI colour, even on a terminal.")
    var noColor = false

    var style: Style { Style.forStandardOutput(noColor: noColor) }
}

/// Writes to standard error: logs and errors never mix with machine output on stdout.
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Reports a failure to read the source and exits 1.
func fail(_ error: CairnError, format: OutputFormat) -> ExitCode {
    if format == .json {
        let payload: [String: String] = ["formatVersion": "1", "error": error.message, "hint": error.hint ?? ""]
        print(prettyJSON(payload))
    }
    printError("error: \(error.message)" + (error.hint.map { "\n    hint: \($0)" } ?? ""))
    return ExitCode(1)
}
