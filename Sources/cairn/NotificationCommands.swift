import ArgumentParser
import CairnCore
import CairnStore
import Foundation

/// `cairn notifications`: the outbox's deliveries, and retrying failed ones.
struct Notifications: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List notification deliveries (pending, delivered, failed), or retry failed ones.",
        discussion: "Events are written with the audit rows of what they report; `cairn serve --notify FILE` delivers them.",
        subcommands: [List.self, Retry.self],
        defaultSubcommand: List.self
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List deliveries, newest event first.")

        @Option(help: "Only this receiver's.")
        var receiver: String?

        @Option(help: "Only deliveries in this state: pending, delivered or failed.")
        var state: String?

        @Option(help: "How many.")
        var limit: Int = 50

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var output: OutputOptions

        func validate() throws {
            if let state, !["pending", "delivered", "failed"].contains(state) { throw ValidationError("--state is pending, delivered or failed") }
        }

        func run() throws {
            try reportingFailures(format: output.format) {
                guard let db = try database.openForReading() else { throw CairnError("no registry database at \(database.shown)") }
                let rows = try db.deliveries(receiver: receiver, state: state, limit: limit)
                if output.format == .json { return printJSON(rows) }
                if rows.isEmpty {
                    print("No deliveries" + (receiver.map { " to \($0)" } ?? "") + (state.map { " \($0)" } ?? "") + ".")
                    return
                }
                print(table(["EVENT", "KIND", "ADDRESS", "RECEIVER", "STATE", "ATTEMPTS", "WHEN", "LAST ERROR"], rows.map { d in
                    [String(d.eventID), d.kind, d.address, d.receiver, d.state, String(d.attempts),
                     d.deliveredAt.map { "delivered \(Describe.time($0))" } ?? d.nextAttemptAt.map { "next \(Describe.time($0))" } ?? "",
                     d.lastError ?? ""]
                }, markdown: output.format == .markdown), terminator: "")
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put failed deliveries back in the queue (one event's, or all of a receiver's).")

        @Argument(help: "The event id (all failed events when absent).")
        var event: Int?

        @Option(help: "Only this receiver's.")
        var receiver: String?

        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingFailures {
                let count = try database.open().retryDeliveries(event: event, receiver: receiver, now: unixNow())
                print("\(count) failed deliver\(count == 1 ? "y" : "ies") queued again.")
            }
        }
    }
}
