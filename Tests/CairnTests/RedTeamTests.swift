import CairnCore
import CairnTraining
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import GRDB
import Testing

/// The red-team suite (`make redteam`; RELIABILITY.md, "Security"): each attack on the promise
/// "what is live changed only through a reviewed commit, and no secret leaks" runs as a real
/// process against the built binary, and must be refused or detected with a clear message,
/// with nothing lost.
@Suite struct RedTeamTests {
    /// The example fleet in a fresh repository, reconciled once into its own registry.
    final class Fleet: @unchecked Sendable {
        let repo: GitFixture
        let registry: Registry
        var db: String { registry.db }

        init(_ label: String, reconcile: Bool = true) throws {
            repo = try GitFixture()
            try repo.copyExamples()
            try repo.commit("The example fleet")
            registry = Registry(label)
            if reconcile {
                let first = try cairn(["reconcile", "--repo", repo.path, "--db", db], env: Registry.env)
                #expect(first.status == 0 || first.status == 3, "\(first.stdout)\(first.stderr)")
            }
        }

        func plan(_ extra: [String] = []) throws -> ProcessResult {
            try cairn(["plan", "--repo", repo.path, "--db", db, "--format", "json"] + extra, env: Registry.env)
        }
    }

    // MARK: 6. A typo never archives a live model

    @Test func anApiVersionTypoIsAnErrorNotARemovedModel() throws {
        let fleet = try Fleet("cairn-redteam-apiversion")
        let models = try String(contentsOfFile: fleet.repo.path + "/models/search.yaml", encoding: .utf8)
        let variants: [(String, String, String)] = [
            ("capitalised", "apiVersion: Cairn/v1\nkind: Model\nmetadata:\n  name: search-popular", "apiVersion 'Cairn/v1' is not Cairn's"),
            ("lower-case key", "apiversion: cairn/v1\nkind: Model\nmetadata:\n  name: search-popular", "looks like a misspelt apiVersion"),
            ("missing", "kind: Model\nmetadata:\n  name: search-popular", "is a Cairn kind, but the document has no apiVersion"),
            ("misspelt group", "apiVersion: carin/v1\nkind: Model\nmetadata:\n  name: search-popular", "apiVersion 'carin/v1' is not Cairn's"),
        ]
        let original = "apiVersion: cairn/v1\nkind: Model\nmetadata:\n  name: search-popular"
        #expect(models.contains(original))
        for (label, replacement, message) in variants {
            fleet.repo.write("models/search.yaml", models.replacingOccurrences(of: original, with: replacement))
            try fleet.repo.commit("search-popular: \(label) apiVersion")
            let validate = try cairn(["validate", "--repo", fleet.repo.path])
            #expect(validate.status == 1, "\(label): \(validate.stdout)")
            #expect(validate.stdout.contains("models/search.yaml:") && validate.stdout.contains(message), "\(label): \(validate.stdout)")
            #expect(validate.stdout.contains("hint:"), "\(label)")
            let plan = try fleet.plan()
            #expect(plan.status == 1, "\(label): the revision is refused, not planned")
            #expect(!plan.stdout.contains("\"archive\""), "\(label): \(plan.stdout)")
        }
        // Documents that are clearly another tool's are still skipped, and counted.
        fleet.repo.write("models/search.yaml", models)
        fleet.repo.write("ci/workflow.yaml", "name: ci\non: [push]\njobs: {}\n")
        fleet.repo.write("k8s/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n")
        try fleet.repo.commit("Other tools' YAML")
        let validate = try cairn(["validate", "--repo", fleet.repo.path])
        #expect(validate.status == 0, "\(validate.stdout)")
        #expect(validate.stdout.contains("2 documents skipped"), "\(validate.stdout)")
    }

    // MARK: 8. One key, one encoding

    @Test func theKeyFileAndTheEnvironmentAreOneKeyAndServeChecksIt() throws {
        let repo = try GitFixture()
        try repo.copyExamples()
        try repo.commit("The example fleet")
        let state = TempDir("cairn-redteam-key")
        let db = state.path + "/cairn.db"
        // No CAIRN_SIGNING_KEY: a key file is generated beside the database.
        let converge = try cairn(["reconcile", "--repo", repo.path, "--db", db, "--wait"], env: ["CAIRN_SIGNING_KEY": ""])
        #expect(converge.status == 0 || converge.status == 3, "\(converge.stdout)\(converge.stderr)")
        let fileKey = try String(contentsOfFile: state.path + "/signing.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // CAIRN_SIGNING_KEY=$(cat signing.key) is the same key.
        let verify = try cairn(["artifact", "verify", "homepage-recs@1", "--db", db], env: ["CAIRN_SIGNING_KEY": fileKey])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        // A passphrase is not a key: refused, and never quoted back.
        let passphrase = try cairn(["artifact", "verify", "homepage-recs@1", "--db", db], env: ["CAIRN_SIGNING_KEY": "correct horse battery staple"])
        #expect(passphrase.status == 1)
        #expect(passphrase.stderr.contains("is not a Cairn signing key") && !passphrase.stderr.contains("horse"), "\(passphrase.stderr)")
        // `cairn serve` started with another key is not ready, and says why.
        let port = freePort()
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: cairnBinary)
        serve.arguments = ["serve", "--repo", repo.path, "--db", db, "--listen", "127.0.0.1:\(port)", "--workers", "0", "--interval", "1s"]
        var environment = ProcessInfo.processInfo.environment
        environment["CAIRN_SIGNING_KEY"] = String(repeating: "ab", count: 32)
        serve.environment = environment
        serve.standardOutput = FileHandle.nullDevice
        serve.standardError = FileHandle.nullDevice
        try serve.run()
        defer {
            kill(serve.processIdentifier, SIGKILL)
            serve.waitUntilExit()
        }
        var ready: (Int, String)?
        for _ in 0..<100 {
            if let answer = try? httpGet(port: port, "/readyz"), answer.0 == 503, answer.1.contains("signing key") {
                ready = answer
                break
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(ready?.0 == 503, "\(String(describing: ready))")
        #expect(ready?.1.contains("did not sign the live artifact") == true, "\(String(describing: ready))")
    }

    // MARK: 9. Artifacts hash exactly what they contain

    @Test func artifactsThatDifferOnlyInLinksOrModesHaveDifferentAddresses() throws {
        let dir = TempDir("cairn-redteam-artifact")
        func folder(_ name: String, _ build: (URL) throws -> Void) throws -> URL {
            let url = dir.url.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            try Data("{\"k\": 1}".utf8).write(to: url.appendingPathComponent("model.json"))
            try build(url)
            return url
        }
        let plain = try folder("plain") { _ in }
        let linkToPasswd = try folder("link-a") { try FileManager.default.createSymbolicLink(atPath: $0.path + "/extra", withDestinationPath: "/etc/passwd") }
        let linkToHosts = try folder("link-b") { try FileManager.default.createSymbolicLink(atPath: $0.path + "/extra", withDestinationPath: "/etc/hosts") }
        let executable = try folder("exec") { chmod($0.path + "/model.json", 0o755) }
        let emptyFolder = try folder("empty") { try FileManager.default.createDirectory(atPath: $0.path + "/cache", withIntermediateDirectories: true) }
        let hashes = try [plain, linkToPasswd, linkToHosts, executable, emptyFolder].map { try ArtifactStore.contentHash(of: $0) }
        #expect(Set(hashes).count == hashes.count, "\(hashes)")
        // A folder of plain files hashes as it always has: `path<TAB>sha256<LF>` lines, sorted.
        #expect(hashes[0] == sha256Hex("model.json\t\(sha256Hex(Array("{\"k\": 1}".utf8)))\n"))
        // A FIFO is refused.
        let fifo = try folder("fifo") { mkfifo($0.path + "/pipe", 0o644) }
        #expect(throws: TrainingError.self) { try ArtifactStore.contentHash(of: fifo) }
    }

    // MARK: 10. A registry from a newer Cairn is refused

    @Test func aRegistryFromANewerCairnIsRefused() throws {
        let fleet = try Fleet("cairn-redteam-schema")
        try fleet.registry.queue().write { try $0.execute(sql: "INSERT INTO grdb_migrations(identifier) VALUES ('v2')") }
        let before = try fleet.registry.dump()
        for args in [["status"], ["reconcile", "--repo", fleet.repo.path], ["plan", "--repo", fleet.repo.path], ["audit", "verify"]] {
            let result = try cairn(args + ["--db", fleet.db], env: Registry.env)
            #expect(result.status == 1, "\(args): \(result.stdout)")
            #expect(result.stderr.contains("has schema v2, newer than this Cairn knows (up to v1)"), "\(args): \(result.stderr)")
        }
        #expect(try fleet.registry.dump() == before)
    }
}

/// GET on 127.0.0.1 with a bearer token, if any; (status, body).
func httpGet(port: Int, _ path: String, token: String? = nil) throws -> (Int, String) {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.timeoutInterval = 10
    if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
    let done = DispatchSemaphore(value: 0)
    let box = ServeEndToEndTests.ResultBox()
    URLSession.shared.dataTask(with: request) { data, response, error in
        box.value = (response as? HTTPURLResponse).map { ($0.statusCode, String(decoding: data ?? Data(), as: UTF8.self)) }
        box.error = error
        done.signal()
    }.resume()
    done.wait()
    guard let value = box.value else { throw FixtureError("GET \(path): \(box.error.map { "\($0)" } ?? "no response")") }
    return value
}
