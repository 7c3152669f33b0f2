import CairnCore

/// Resolves a path written in a manifest to a file inside the repository, following
/// symlinks the way a checkout would, and refusing anything that leaves the repository.
public enum RepoPath {
    /// Why a dataset path is refused (outside the repository, through a link, not a file).
    public enum Problem: Error, Equatable, Sendable, CustomStringConvertible {
        case absolute
        case escapes(String)
        case symlinkOut(link: String, target: String)
        case missing(String)
        case notAFile(String)
        case submodule(String)
        case tooManyLinks

        public var description: String {
            switch self {
            case .absolute: "is absolute"
            case let .escapes(p): "leaves the repository (\(p))"
            case let .symlinkOut(link, target): "goes through the symlink \(link) → \(target), which points outside the repository"
            case let .missing(p): "does not exist at this revision (\(p))"
            case let .notAFile(p): "is not a file (\(p))"
            case let .submodule(p): "is inside the submodule \(p), which Cairn does not read"
            case .tooManyLinks: "goes through more than 40 symlinks"
            }
        }
    }

    /// The repository-relative path of the file `path` (relative to `root`) names.
    public static func resolve(_ path: String, root: String, tree: any RevisionTree) -> Result<String, Problem> {
        if path.hasPrefix("/") { return .failure(.absolute) }
        var pending = components(path).reversed() as [Substring]
        var resolved: [Substring] = components(root)
        var hops = 0
        while let part = pending.popLast() {
            if part == "." { continue }
            if part == ".." {
                guard !resolved.isEmpty else { return .failure(.escapes(path)) }
                resolved.removeLast()
                continue
            }
            let here = (resolved + [part]).joined(separator: "/")
            let entry: TreeEntry?
            do { entry = try tree.entry(at: here) } catch { return .failure(.missing(here)) }
            switch entry {
            case nil:
                return .failure(.missing(here))
            case .submodule?:
                return .failure(.submodule(here))
            case .file?:
                guard pending.isEmpty else { return .failure(.notAFile(here)) }
                return .success(here)
            case .directory?:
                resolved.append(part)
            case let .symlink(target)?:
                hops += 1
                if hops > 40 { return .failure(.tooManyLinks) }
                if target.hasPrefix("/") { return .failure(.symlinkOut(link: here, target: target)) }
                // Continue from the link's folder with the target's parts in front of what is left.
                var depth = resolved.count
                for t in components(target) where t != "." {
                    depth += t == ".." ? -1 : 1
                    if depth < 0 { return .failure(.symlinkOut(link: here, target: target)) }
                }
                pending.append(contentsOf: components(target).reversed())
            }
        }
        return .failure(.notAFile(resolved.joined(separator: "/")))
    }

    static func components(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }
}
