import ArgumentParser

@main
struct Cairn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cairn",
        abstract: "GitOps for machine-learning model lifecycles.",
        discussion: "Reads manifests at a git revision, compares them with the registry database and plans or applies the difference.",
        version: "0.1.0",
        subcommands: [Validate.self, PlanCommand.self, Reconcile.self, Apply.self, Status.self, Versions.self, History.self, Audit.self, Rollback.self, Suspend.self, Resume.self, WorkerCommand.self, Logs.self, Artifact.self, Recommend.self, ServeCommand.self]
    )
}
