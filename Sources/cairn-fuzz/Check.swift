import CairnCore
import CairnManifests

/// The property every input must have: loading it through the YAML loader, the manifest decoder
/// and the cross-reference checks never crashes, and either decodes or yields diagnostics that
/// each say where (this file, line and column from 1) and what.
/// A violation stops the process (a finding for libFuzzer; a failure for the replay run).
enum FuzzCheck {
    static let path = "fuzz/input.yaml"

    /// A one-file repository: the input, plus a small dataset that templates may name.
    struct Tree: RevisionTree {
        let input: [UInt8]
        func entry(at path: String) throws -> TreeEntry? {
            switch path {
            case "", "fuzz", "data": return .directory
            case FuzzCheck.path, "data/interactions.csv": return .file
            case "data/escape": return .symlink(target: "../../outside")
            default: return nil
            }
        }
        func readFile(at path: String) throws -> [UInt8] {
            path == FuzzCheck.path ? input : Array("user_id,item_id,event,timestamp\nu1,a,click,1793491200\n".utf8)
        }
    }

    /// Returns the number of manifests decoded (0 when the input yields diagnostics).
    @discardableResult
    static func run(_ bytes: [UInt8]) -> Int {
        let snapshot = RevisionSnapshot(commit: nil, manifestRoot: "", files: [ManifestFile(path: path, contents: bytes)], tree: Tree(input: bytes))
        let loaded = ManifestLoader.load(snapshot)
        for diagnostic in loaded.diagnostics {
            guard let at = diagnostic.location else { fail("a diagnostic without a location: \(diagnostic.oneLine)") }
            if at.file != path || at.line < 1 || at.column < 1 { fail("a diagnostic with a bad location \(at): \(diagnostic.oneLine)") }
            if diagnostic.summary.isEmpty { fail("a diagnostic without a message at \(at)") }
        }
        if loaded.isValid {
            let count = loaded.manifests.outcomeWeights.count + loaded.manifests.templates.count + loaded.manifests.models.count
                + loaded.manifests.servingTargets.count
            return count
        }
        return 0
    }

    static func fail(_ message: String) -> Never {
        fatalError("cairn-fuzz: \(message)")
    }
}
