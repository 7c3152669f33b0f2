import CairnCore
import CairnStore
import Foundation
import Testing

/// Signed commits only (`--verify-signatures`), with real signatures made by `ssh-keygen` and
/// `gpg` on real repositories, through the built binary.
@Suite(.serialized) struct SignatureTests {
    static let manifests = [
        "w.yaml": "apiVersion: cairn/v1\nkind: OutcomeWeights\nmetadata: {name: w}\nspec: {weights: {click: 1}}\n",
        "t.yaml": """
            apiVersion: cairn/v1
            kind: Template
            metadata: {name: t}
            spec:
              events: [click]
              outcomeWeights: w
              dataset: {path: data/i.csv}
              trainer: {kind: builtin, algorithm: popularity}
              evaluation: {metrics: [ndcg@10]}
            """,
        "m.yaml": "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: m}\nspec: {template: t}\n",
        "data/i.csv": "user_id,item_id,event,timestamp\nu1,i1,click,1\n",
    ]

    /// Keys outside the repository, and the repository.
    final class Keys: @unchecked Sendable {
        let dir = TempDir("cairn-keys")
        let repo: GitFixture
        var db: String { dir.path + "/state/cairn.db" }
        var allowedSigners: String { dir.path + "/allowed_signers" }

        init() throws {
            repo = try GitFixture()
            for name in ["ada", "mallory"] {
                _ = try runProcess("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", dir.path + "/" + name])
            }
            try trust("ada@example.com namespaces=\"git\" " + (try publicKey("ada")))
        }

        func publicKey(_ name: String) throws -> String {
            try String(contentsOfFile: dir.path + "/\(name).pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// The key's fingerprint as ssh-keygen prints it.
        func fingerprint(_ name: String) throws -> String {
            try runProcess("/usr/bin/ssh-keygen", ["-l", "-f", dir.path + "/\(name).pub"]).stdout.split(separator: " ")[1].description
        }

        func trust(_ lines: String) throws { try (lines + "\n").write(toFile: allowedSigners, atomically: true, encoding: .utf8) }

        /// Commits everything, signed with `key` (nil: unsigned); returns the commit id.
        @discardableResult
        func commit(_ message: String, key: String?, files: [String: String] = [:]) throws -> String {
            for (p, t) in files { repo.write(p, t) }
            try repo.git(["add", "-A"])
            if let key {
                try repo.git(["-c", "gpg.format=ssh", "-c", "user.signingkey=\(dir.path)/\(key)", "commit", "-q", "--allow-empty", "-S", "-m", message])
            } else {
                try repo.git(["commit", "-q", "--allow-empty", "-m", message])
            }
            return try repo.git(["rev-parse", "HEAD"])
        }

        func cairn(_ command: String, mode: String = "head", extra: [String] = []) throws -> ProcessResult {
            try CairnTests.cairn([command, "--repo", repo.path, "--db", db, "--verify-signatures", mode, "--allowed-signers", allowedSigners] + extra)
        }
    }

    @Test func anSSHSignedRevisionIsAppliedAndItsSignerIsOnItsAuditRows() throws {
        let keys = try Keys()
        let sha = try keys.commit("first", key: "ada", files: Self.manifests)
        let result = try keys.cairn("reconcile")
        #expect(result.status == 0, "\(result.stderr)")
        let rows = try JSONSerialization.jsonObject(with: Data(try CairnTests.cairn(["history", "--db", keys.db, "--format", "json"]).stdout.utf8)) as? [[String: Any]]
        let applied = (rows ?? []).filter { $0["revision"] as? String == sha }
        #expect(applied.count == 3)
        let expected = "ssh \(try keys.fingerprint("ada")) (ada@example.com)"
        #expect(applied.allSatisfy { $0["signer"] as? String == expected }, "\(applied.map { $0["signer"] ?? "none" })")
        // The signer is part of each row's hash: the chain verifies, and an edited signer breaks it.
        #expect(try CairnTests.cairn(["audit", "verify", "--db", keys.db]).status == 0)
        try runSQL(keys.db, "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET signer = 'ssh SHA256:someone-else (mallory@example.com)' WHERE id = 1;")
        let edited = try CairnTests.cairn(["audit", "verify", "--db", keys.db])
        #expect(edited.status == 1 && edited.stdout.contains("row 1 was altered"), "\(edited.stdout)\(edited.stderr)")
    }

    @Test func unsignedUntrustedTamperedAndExpiredRevisionsAreRefused() throws {
        let keys = try Keys()
        try keys.commit("first", key: "ada", files: Self.manifests)
        #expect(try keys.cairn("reconcile").status == 0)
        func refused(_ what: String, _ says: String, mode: String = "head") throws {
            for command in ["plan", "reconcile"] {
                let result = try keys.cairn(command, mode: mode)
                #expect(result.status == 1 && result.stderr.contains(says), "\(what), \(command): \(result.status) \(result.stderr)")
            }
        }
        let before = try RegistryDatabase(path: keys.db).auditCount()

        try keys.commit("by mallory", key: "mallory", files: ["m.yaml": "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: m}\nspec: {template: t, label: M}\n"])
        try refused("another key", "the key \(try keys.fingerprint("mallory")) that signed it is not in the allowed_signers file")

        try keys.commit("unsigned", key: nil)
        try refused("unsigned", "is not signed")

        // A signed commit changed afterwards: its object rewritten with the same signature.
        let good = try keys.commit("label it", key: "ada", files: ["m.yaml": "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: m}\nspec: {template: t, label: N}\n"])
        let object = try keys.repo.git(["cat-file", "commit", good]) + "\n"
        let forgedText = object.replacingOccurrences(of: "label it", with: "label it, honestly")
        let objectFile = keys.dir.path + "/forged"
        try forgedText.write(toFile: objectFile, atomically: true, encoding: .utf8)
        let forged = try keys.repo.git(["hash-object", "-t", "commit", "-w", objectFile])
        try keys.repo.git(["update-ref", "refs/heads/main", forged])
        try refused("tampered", "does not match the commit")

        // The key listed, but only until 2020.
        try keys.repo.git(["update-ref", "refs/heads/main", good])
        try keys.trust("ada@example.com namespaces=\"git\",valid-before=\"20200101\" " + (try keys.publicKey("ada")))
        try refused("expired", "expired at 2020-01-01T00:00:00Z")
        try keys.trust("ada@example.com namespaces=\"git\" " + (try keys.publicKey("ada")))
        #expect(try RegistryDatabase(path: keys.db).auditCount() == before, "nothing was applied")

        // Every commit since the last applied revision: the unsigned and mallory's are in the range.
        try refused("a range with an unsigned commit", "is not in the allowed_signers file", mode: "all")
        #expect(try keys.cairn("reconcile").status == 0, "the head alone is signed by ada")
        try keys.commit("signed again", key: "ada")
        #expect(try keys.cairn("reconcile", mode: "all").status == 0, "every commit since the last applied one is signed")

        // An allowed_signers file the repository itself holds is refused: a commit could trust itself.
        keys.repo.write("trust/allowed_signers", "mallory@example.com " + (try keys.publicKey("mallory")) + "\n")
        try keys.commit("trust mallory", key: "mallory")
        let own = try CairnTests.cairn(["plan", "--repo", keys.repo.path, "--db", keys.db, "--verify-signatures", "head",
                                        "--allowed-signers", keys.repo.path + "/trust/allowed_signers"])
        #expect(own.status == 1 && own.stderr.contains("is inside the repository it would verify"), "\(own.stderr)")
    }

    @Test func anOpenPGPSignedRevisionIsVerifiedByGpgv() throws {
        let keys = try Keys()
        let home = keys.dir.path + "/gnupg", other = keys.dir.path + "/gnupg-other", old = keys.dir.path + "/gnupg-old"
        func gpg(_ homedir: String, _ args: [String]) throws -> String {
            try FileManager.default.createDirectory(atPath: homedir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let result = try runProcess("/usr/bin/gpg", ["--batch", "--homedir", homedir, "--passphrase", ""] + args)
            guard result.status == 0 else { throw FixtureError("gpg \(args): \(result.stderr)") }
            return result.stdout
        }
        func fingerprint(_ homedir: String) throws -> String {
            try gpg(homedir, ["--list-keys", "--with-colons"]).split(separator: "\n").first { $0.hasPrefix("fpr:") }!.split(separator: ":", omittingEmptySubsequences: false)[9].description
        }
        _ = try gpg(home, ["--quick-gen-key", "Ada <ada@example.com>", "ed25519", "sign", "never"])
        _ = try gpg(other, ["--quick-gen-key", "Mallory <mallory@example.com>", "ed25519", "sign", "never"])
        _ = try gpg(old, ["--faked-system-time", "20200101T000000", "--quick-gen-key", "Old <old@example.com>", "ed25519", "sign", "1d"])
        let keyring = keys.dir.path + "/keyring.gpg"
        let exported = try runProcess("/bin/sh", ["-c", "gpg --batch --homedir '\(home)' --export > '\(keyring)' && gpg --batch --homedir '\(old)' --export >> '\(keyring)'"])
        #expect(exported.status == 0)
        func commit(_ message: String, homedir: String, faked: String? = nil) throws {
            let program = keys.dir.path + "/gpg-\(UUID().uuidString.prefix(8))"
            try "#!/bin/sh\nexec gpg --homedir '\(homedir)' \(faked.map { "--faked-system-time \($0)" } ?? "") \"$@\"\n".write(toFile: program, atomically: true, encoding: .utf8)
            chmod(program, 0o755)
            try keys.repo.git(["add", "-A"])
            try keys.repo.git(["-c", "gpg.format=openpgp", "-c", "gpg.program=\(program)", "-c", "user.signingkey=\(try fingerprint(homedir))",
                               "commit", "-q", "--allow-empty", "-S", "-m", message])
        }
        func run(_ command: String) throws -> ProcessResult {
            try CairnTests.cairn([command, "--repo", keys.repo.path, "--db", keys.db, "--verify-signatures", "head", "--gpg-keyring", keyring])
        }
        for (p, t) in Self.manifests { keys.repo.write(p, t) }
        try commit("first", homedir: home)
        let applied = try run("reconcile")
        #expect(applied.status == 0, "\(applied.stderr)")
        let history = try CairnTests.cairn(["history", "--db", keys.db, "--format", "json"]).stdout
        #expect(history.contains("\"signer\" : \"openpgp \(try fingerprint(home)) (Ada <ada@example.com>)\""), "\(history.prefix(1500))")

        try commit("by another key", homedir: other)
        let unknown = try run("plan")
        #expect(unknown.status == 1 && unknown.stderr.contains("which is not in the keyring"), "\(unknown.stderr)")
        try commit("by an expired key", homedir: old, faked: "20200101T120000")
        let expired = try run("plan")
        #expect(expired.status == 1 && expired.stderr.contains("has expired"), "\(expired.stderr)")
    }

    @Test func serveStallsOnAnUntrustedRevisionAndKeepsTheLastGoodOne() throws {
        let keys = try Keys()
        let setup = try ServeEndToEndTests.Setup(files: nil)
        // The fixture's first commit is unsigned: a signed one on top is what serve will apply.
        let signingKey = "\(keys.dir.path)/ada"
        func push(_ message: String, signed: Bool, files: [String: String] = [:]) throws -> String {
            for (p, t) in files { setup.work.write(p, t) }
            try setup.work.git(["add", "-A"])
            try setup.work.git((signed ? ["-c", "gpg.format=ssh", "-c", "user.signingkey=\(signingKey)"] : []) + ["commit", "-q", "--allow-empty"]
                                + (signed ? ["-S"] : []) + ["-m", message])
            try setup.work.git(["push", "-q", "origin", "main"])
            return try setup.work.git(["rev-parse", "HEAD"])
        }
        let good = try push("signed", signed: true)
        try setup.start(extra: ["--verify-signatures", "head", "--allowed-signers", keys.allowedSigners, "--workers", "0"])
        try setup.waitFor("the signed revision to be applied") { try setup.status()["lastAppliedRevision"] as? String == good }
        let bad = try push("unsigned change", signed: false, files: ["models/extra.yaml": "apiVersion: cairn/v1\nkind: Model\nmetadata: {name: extra}\nspec: {template: popular-now}\n"])
        try setup.waitFor("the unsigned revision to stall") { try setup.condition("Stalled")?["status"] as? String == "True" }
        let stalled = try setup.condition("Stalled")
        #expect(stalled?["reason"] as? String == "UntrustedRevision")
        #expect((stalled?["message"] as? String)?.contains("commit \(bad.prefix(12)) is not signed") == true, "\(stalled ?? [:])")
        #expect(try setup.status()["lastAppliedRevision"] as? String == good)
        #expect(try RegistryDatabase(path: setup.dbPath).observedState().models["extra"] == nil)
        // A preview of the unsigned commit (as for a pull request's merge commit) still shows its plan, and says it would not be applied.
        let preview = try setup.http("GET", "/v1/plan?revision=\(bad)&format=markdown")
        #expect(preview.status == 200 && preview.body.contains("**Not signed by a trusted key**") && preview.body.contains("Model/extra"), "\(preview.body.prefix(1500))")
        let fixed = try push("signed again", signed: true)
        try setup.waitFor("the next signed revision to be applied") { try setup.status()["lastAppliedRevision"] as? String == fixed }
        #expect(try RegistryDatabase(path: setup.dbPath).observedState().models["extra"] != nil)

        // Trust files inside the followed repository are refused at start: a commit could trust itself.
        let inside = try CairnTests.cairn(["serve", "--repo", setup.work.path, "--db", setup.dir.path + "/other.db", "--listen", "127.0.0.1:1",
                                           "--verify-signatures", "head", "--allowed-signers", setup.work.path + "/models/homepage.yaml"])
        #expect(inside.status == 1 && inside.stderr.contains("is inside the repository it would verify"), "\(inside.stderr)")
    }
}
