import CairnCore
import Foundation

/// How exec trainers are kept from the worker that runs them. Trainer code is not trusted: it
/// must not read the signing key or the worker's secrets, write the registry, or outlive its
/// worker.
///
/// - Run by root, a trainer runs as an unprivileged user (`--trainer-user`, default `nobody`),
///   in its own PID namespace with its own /proc (it cannot see the worker), with no new
///   privileges. The database and the key are readable by their owner only, so it can reach
///   neither; its output folder is the only place it can write.
/// - Run by any other user, a trainer runs as that user (Linux gives no way to switch): it is
///   kept in its own PID namespace where user namespaces allow, but it could read what that user
///   can read. The worker says so at start.
///
/// Either way the trainer gets SIGKILL when its worker dies (`setpriv --pdeathsig`), and the PID
/// namespace takes every process it started down with it.
public struct TrainerIsolation: Sendable {
    /// How exec trainers are kept apart: another user and namespaces, or not at all (with a warning).
    public enum Mode: Sendable, Equatable {
        /// Another user, a PID namespace of its own.
        case otherUser(name: String, uid: UInt32, gid: UInt32)
        /// The worker's own user; `pidNamespace` when user namespaces are available.
        case sameUser(pidNamespace: Bool)
    }

    public var mode: Mode

    public init(mode: Mode) { self.mode = mode }

    /// No isolation beyond the kill on the worker's death (in-process tests).
    public static let none = TrainerIsolation(mode: .sameUser(pidNamespace: false))

    /// The isolation this process can give: another user when root, else what is available.
    public static func forThisProcess(trainerUser: String) throws -> TrainerIsolation {
        guard geteuid() == 0 else { return TrainerIsolation(mode: .sameUser(pidNamespace: userNamespacesWork)) }
        guard let entry = getpwnam(trainerUser) else {
            throw CairnError("the trainer user '\(trainerUser)' does not exist: create it (useradd --system --no-create-home \(trainerUser)) or name another with --trainer-user")
        }
        guard entry.pointee.pw_uid != 0 else {
            throw CairnError("--trainer-user \(trainerUser) is root: trainers run untrusted code and must not run as root; name an unprivileged user")
        }
        return TrainerIsolation(mode: .otherUser(name: trainerUser, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid))
    }

    /// A warning for the operator when trainers can reach what they should not.
    public var warning: String? {
        switch mode {
        case .otherUser: return nil
        case .sameUser:
            let user = getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? "uid \(geteuid())"
            return "exec trainers run as \(user), the user running cairn: they can read the signing key and write the registry database. "
                + "Run `cairn serve`/`cairn worker` as root so that trainers run as an unprivileged --trainer-user, or use builtin trainers only"
        }
    }

    /// A description for the start-up log.
    public var summary: String {
        switch mode {
        case let .otherUser(name, _, _): return "exec trainers run as \(name) in their own PID namespace, killed with their worker"
        case let .sameUser(pid): return "exec trainers run as this user" + (pid ? " in their own PID namespace" : "") + ", killed with their worker"
        }
    }

    /// The program and arguments that run `command` (looked up on PATH) isolated.
    func wrap(_ command: [String]) -> (executable: String, arguments: [String]) {
        var args = ["--pdeathsig", "KILL", "--"]
        switch mode {
        case let .otherUser(_, uid, gid):
            args += ["/usr/bin/unshare", "--pid", "--fork", "--kill-child=KILL", "--mount-proc", "--",
                     // Changing user clears the parent-death signal unshare set: set it again after.
                     "/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--no-new-privs", "--pdeathsig", "KILL", "--"]
        case .sameUser(pidNamespace: true):
            args += ["/usr/bin/unshare", "--user", "--map-current-user", "--pid", "--fork", "--kill-child=KILL", "--mount-proc", "--"]
        case .sameUser(pidNamespace: false):
            break
        }
        return ("/usr/bin/setpriv", args + ["/usr/bin/env"] + command)
    }

    /// Gives the trainer's user the folders it writes (output, home); the rest stays the worker's.
    func prepare(writable: [URL]) throws {
        guard case let .otherUser(_, uid, gid) = mode else { return }
        for url in writable {
            guard chown(url.path, uid, gid) == 0 else {
                throw CairnError("cannot give \(url.path) to the trainer user: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// True when an unprivileged user namespace with a PID namespace can be made here.
    static let userNamespacesWork: Bool = {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        p.arguments = ["--user", "--map-current-user", "--pid", "--fork", "--mount-proc", "--", "/bin/true"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()
}
