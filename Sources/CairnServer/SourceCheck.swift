import CairnCore
import CairnGit
import CairnStore

/// A registry follows one repository and one manifest folder. The first pass that applies binds
/// it; every later pass (and every plan) checks that the revision comes from the same history
/// and folder, so pointing a registry at another repository, or at the same repository with
/// another `--path`, is refused instead of archiving and re-training the fleet.
public enum SourceCheck {
    /// Throws when `desired` is not from the source `db` is bound to. With `bind`, a registry not
    /// yet bound is bound to it.
    public static func check(_ db: RegistryDatabase, desired: DesiredState, repository: GitRepository, bind: Bool) throws {
        guard let bound = try db.boundSource() else {
            if bind {
                try db.bindSource(rootCommit: try repository.rootCommit(of: desired.commit.sha), manifestRoot: desired.manifestRoot)
            }
            return
        }
        if bound.manifestRoot != desired.manifestRoot {
            throw CairnError("the registry at \(db.path) follows the manifest folder '\(bound.manifestRoot.isEmpty ? "(repository root)" : bound.manifestRoot)', "
                             + "not '\(desired.manifestRoot.isEmpty ? "(repository root)" : desired.manifestRoot)'; nothing was planned or applied",
                             hint: "pass --path \(bound.manifestRoot.isEmpty ? "''" : bound.manifestRoot), or give this folder its own registry with --db")
        }
        // A shallow clone (a CI checkout) does not have the first commit: it cannot be checked.
        if !repository.isShallow, !repository.descends(desired.commit.sha, from: bound.rootCommit) {
            throw CairnError("the registry at \(db.path) follows another repository (first commit \(bound.rootCommit.prefix(12))); "
                             + "\(desired.commit.shortSHA) of \(repository.location) does not descend from it; nothing was planned or applied",
                             hint: "pass the --repo this registry follows, or give this repository its own registry with --db")
        }
    }
}
