import ArgumentParser
import CairnCore
import CairnManifests
import CairnRender
import CairnSource

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the manifests of one revision: schema, references, dataset paths.",
        discussion: "Exit status 0 when valid (warnings allowed), 1 when invalid or unreadable."
    )

    @OptionGroup var source: SourceOptions
    @OptionGroup var output: OutputOptions

    @Flag(help: "Read the working tree, uncommitted files included, instead of a revision (for pre-commit hooks).")
    var worktree = false

    @Flag(help: "Read the files staged for the next commit instead of a revision (for a plain git pre-commit hook).")
    var index = false

    @Flag(help: "Also list documents that were skipped because they are not cairn/ documents.")
    var verbose = false

    func validate() throws {
        if worktree, index { throw ValidationError("--worktree and --index do not go together") }
    }

    func run() throws {
        let snapshot: RevisionSnapshot
        let loaded: LoadedManifests
        do {
            (snapshot, loaded) = try source.load(worktree ? .worktree : index ? .index : .revision)
        } catch {
            throw fail(error, format: output.format)
        }
        let report = ValidationReport(
            valid: loaded.isValid, revision: snapshot.commit?.sha, manifestRoot: snapshot.manifestRoot,
            files: loaded.fileCount, documents: loaded.manifests.count, diagnostics: loaded.diagnostics,
            skipped: loaded.skipped.map { ($0.location, $0.apiVersion, $0.kind) })
        switch output.format {
        case .json:
            print(report.json())
        case .text, .markdown:
            let at = snapshot.commit.map { "\(source.revision)@\($0.shortSHA)" } ?? (index ? "index" : "working tree")
            let root = snapshot.manifestRoot.isEmpty ? "" : " \(snapshot.manifestRoot)/"
            print(report.text(style: output.style, heading: "Cairn validate · \(at)\(root)", verbose: verbose), terminator: "")
        }
        if !loaded.isValid { throw ExitCode(1) }
    }
}
