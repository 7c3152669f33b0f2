import CairnCore
import Foundation

/// Reads manifests from a working directory instead of a commit: uncommitted files as they
/// are on disk, for pre-commit hooks (`cairn validate --worktree`). Files git ignores are skipped.
public enum WorktreeSource {
    public static func snapshot(repository: GitRepository, root: String = "", exclude: Set<String> = []) throws(CairnError) -> RevisionSnapshot {
        guard let workdir = repository.workdir else {
            throw CairnError("\(repository.location) is a bare repository and has no working tree",
                              hint: "drop --worktree to read a revision instead")
        }
        let tree = DirectoryTree(root: URL(fileURLWithPath: workdir).standardizedFileURL.path)
        let cleanRoot = RepoPathText.clean(root)
        guard (try? tree.entry(at: cleanRoot)) == .directory else {
            throw CairnError("the manifest folder '\(cleanRoot)' does not exist in the working tree",
                              hint: "check --path; it is relative to the repository root")
        }
        var files: [ManifestFile] = []
        try collect(tree, cleanRoot, repository: repository, exclude: exclude, into: &files)
        files.sort { $0.path < $1.path }
        return RevisionSnapshot(commit: nil, manifestRoot: cleanRoot, files: files, tree: tree)
    }

    private static func collect(_ tree: DirectoryTree, _ dir: String, repository: GitRepository, exclude: Set<String>,
                                into files: inout [ManifestFile]) throws(CairnError) {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: tree.absolute(dir)).sorted()
        } catch {
            throw CairnError("cannot list \(dir.isEmpty ? "." : dir): \(error.localizedDescription)")
        }
        for name in names {
            let path = dir.isEmpty ? name : "\(dir)/\(name)"
            switch try? tree.entry(at: path) {
            case .directory?:
                if name.hasPrefix(".") || exclude.contains(name) || exclude.contains(path) || repository.isIgnored(path + "/") { continue }
                // A submodule (or any repository inside this one) is not this repository's
                // content: a revision's tree does not read it either.
                if (try? tree.entry(at: path + "/.git")) != nil { continue }
                try collect(tree, path, repository: repository, exclude: exclude, into: &files)
            case .file?:
                guard name.hasSuffix(".yaml") || name.hasSuffix(".yml"), !repository.isIgnored(path) else { continue }
                do {
                    files.append(ManifestFile(path: path, contents: try tree.readFile(at: path)))
                } catch {
                    throw CairnError("cannot read \(path): \(error)")
                }
            default:
                continue
            }
        }
    }
}

/// A directory on disk seen as a `RevisionTree`; symlinks are reported, never followed.
struct DirectoryTree: RevisionTree {
    let root: String

    func absolute(_ path: String) -> String {
        path.isEmpty ? root : "\(root)/\(path)"
    }

    func entry(at path: String) throws -> TreeEntry? {
        var info = stat()
        guard lstat(absolute(RepoPathText.clean(path)), &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFLNK:
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: absolute(path))
            return .symlink(target: target)
        case S_IFREG: return .file
        default: return nil
        }
    }

    func readFile(at path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: absolute(RepoPathText.clean(path))) else {
            throw CairnError("cannot read \(path)")
        }
        return [UInt8](data)
    }
}
