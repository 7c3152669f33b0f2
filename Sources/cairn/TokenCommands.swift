import ArgumentParser
import CairnCore
import CairnStore
import Foundation

extension RegistryDatabase.TokenScope: ExpressibleByArgument {}

/// `cairn token create|list|revoke`: bearer tokens for the HTTP API of `cairn serve`.
struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke API tokens for `cairn serve`.",
        discussion: """
            Every endpoint but /healthz and /readyz (and /metrics with --public-metrics) needs `Authorization: Bearer TOKEN`. \
            Scopes: read (status, plan, targets, recommendations, traces, A/B readouts, metrics), feedback (read, and POST /v1/feedback), export (read, and download artifact bundles), admin (all, and POST /v1/reconcile). \
            Only a token's SHA-256 is stored; creating and revoking one is recorded in the audit history.
            """,
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a token; it is printed once and not stored.")
        @Argument(help: "A name for the token (who or what uses it).")
        var name: String
        @Option(help: "read or admin.")
        var scope: RegistryDatabase.TokenScope = .read
        @OptionGroup var database: DatabaseOptions

        func validate() throws {
            guard !name.isEmpty, name.count <= 64, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw ValidationError("a token name is 1 to 64 letters, digits, '-', '_' or '.'")
            }
        }

        func run() throws {
            try reportingFailures {
                let token = try database.open().createToken(name: name, scope: scope, by: currentUser(), at: unixNow())
                print(token)
                printError("token \(name) (\(scope.rawValue)) created: keep it now, it is not shown again")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (names and scopes, never the tokens).")
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingFailures {
                let tokens = try database.openForReading()?.tokens() ?? []
                if tokens.isEmpty { print("No API tokens. `cairn token create NAME --scope read` makes one.") }
                for t in tokens {
                    print("\(t.name)\t\(t.scope.rawValue)\tcreated \(Describe.time(t.createdAt)) by \(t.createdBy)"
                          + (t.revokedAt.map { "\trevoked \(Describe.time($0))" } ?? ""))
                }
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token; `cairn serve` refuses it from the next request on.")
        @Argument(help: "The token's name.")
        var name: String
        @OptionGroup var database: DatabaseOptions

        func run() throws {
            try reportingFailures {
                let revoked = try database.open().revokeToken(name: name, by: currentUser(), at: unixNow())
                print(revoked ? "Token \(name) is revoked." : "Token \(name) was already revoked.")
            }
        }
    }
}
