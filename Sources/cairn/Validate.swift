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

    @Flag(help: "Read the files staged for the next commit (the index) instead of a revision (for pre-commit hooks).")
    var staged = false

    @Flag(help: "Also list documents that were skipped because they are not cairn/ documents.")
    var verbose = false

    func validate() throws {
        if worktree, staged { throw ValidationError("--worktree and --staged do not go together") }
    }

    func run() throws {
        let snapshot: RevisionSnapshot
        let loaded: LoadedManifests
        do {
            (snapshot, loaded) = try source.load(worktree ? .worktree : staged ? .staged : .revision)
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
            let at = snapshot.commit.map { "\(source.revision)@\($0.shortSHA)" } ?? (staged ? "staged files" : "working tree")
            let root = snapshot.manifestRoot.isEmpty ? "" : " \(snapshot.manifestRoot)/"
            print(report.text(style: output.style, heading: "Cairn validate · \(at)\(root)", verbose: verbose), terminator: "")
        }
        if !loaded.isValid { throw ExitCode(1) }
    }
}
