import ArgumentParser
import CairnCore

@main
struct Cairn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cairn",
        abstract: "GitOps for machine-learning model lifecycles.",
        discussion: "Reads manifests at a git revision, compares them with the registry database and plans or applies the difference.",
        version: "0.1.0",
        subcommands: [Validate.self, PlanCommand.self, Reconcile.self, Apply.self, Status.self, Versions.self, History.self, Audit.self, Rollback.self, Suspend.self, Resume.self, WorkerCommand.self, Logs.self, Artifact.self, Recommend.self, Traces.self, AB.self, Notifications.self, ServeCommand.self, Token.self, DatabaseCommand.self]
    )

    /// Hardens the process before anything else runs (see `ProcessHardening`), then runs the
    /// command as ArgumentParser would.
    static func main() async {
        ProcessHardening.apply()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
