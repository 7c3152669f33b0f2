import CairnCore
import Foundation
import Testing

/// The package root, found from this file's path.
let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let fixturesRoot = packageRoot.appendingPathComponent("Tests/Fixtures")

/// A fresh folder under the system temporary directory, removed when the value is released.
final class TempDir: @unchecked Sendable {
    let url: URL
    var path: String { url.path }

    init(_ label: String = "cairn") {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func write(_ relative: String, _ text: String) {
        let file = url.appendingPathComponent(relative)
        try! FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try! Data(text.utf8).write(to: file)
    }
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion; standard input is empty.
@discardableResult
func runProcess(_ executable: String, _ arguments: [String], cwd: String? = nil, env: [String: String] = [:]) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    var environment = ProcessInfo.processInfo.environment
    for (k, v) in env { environment[k] = v }
    process.environment = environment
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // Read both pipes to the end before waiting, so a chatty child cannot block on a full pipe.
    let errData = ReadAll(err.fileHandleForReading)
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData.wait(), as: UTF8.self))
}

/// Reads a handle to its end on another thread.
final class ReadAll: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> Data {
        done.wait()
        return data
    }
}

/// Strings appended from several threads.
final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func append(_ text: String) { lock.withLock { items.append(text) } }
    var all: [String] { lock.withLock { items } }
}

/// A real git repository in a temporary folder, driven with the git command line.
final class GitFixture: @unchecked Sendable {
    let dir: TempDir
    var path: String { dir.path }

    init(bare: Bool = false) throws {
        dir = TempDir("cairn-repo")
        try git(bare ? ["init", "-q", "--bare", "-b", "main"] : ["init", "-q", "-b", "main"])
    }

    @discardableResult
    func git(_ args: [String]) throws -> String {
        let result = try runProcess("/usr/bin/git", ["-C", path, "-c", "user.name=Ada Operator", "-c", "user.email=ada@example.com",
                                                     "-c", "commit.gpgsign=false"] + args)
        if result.status != 0 { throw FixtureError("git \(args.joined(separator: " ")): \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func write(_ relative: String, _ text: String) { dir.write(relative, text) }

    /// Stages everything and commits; returns the new commit id.
    @discardableResult
    func commit(_ message: String, files: [String: String] = [:]) throws -> String {
        for (p, t) in files { write(p, t) }
        try git(["add", "-A"])
        try git(["commit", "-q", "--allow-empty", "-m", message])
        return try git(["rev-parse", "HEAD"])
    }

    /// Copies the example fleet (manifests and data) into the repository under `prefix`.
    func copyExamples(to prefix: String = "") throws {
        let source = packageRoot.appendingPathComponent("examples/fleet")
        let target = prefix.isEmpty ? dir.url : dir.url.appendingPathComponent(prefix)
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: source.path) {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: target.appendingPathComponent(name))
        }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The `cairn` executable built next to the tests (`swift build` builds it before `swift test` runs).
let cairnBinary: String = {
    if let explicit = ProcessInfo.processInfo.environment["CAIRN_BIN"] { return explicit }
    var dir = Bundle.main.bundleURL
    for _ in 0..<3 {
        let candidate = dir.appendingPathComponent("cairn").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return packageRoot.appendingPathComponent(".build/debug/cairn").path
}()

func cairn(_ args: [String], cwd: String? = nil, env: [String: String] = [:]) throws -> ProcessResult {
    try runProcess(cairnBinary, args, cwd: cwd, env: env)
}

/// A `RevisionTree` held in memory: path → file text, plus symlinks.
struct MemoryTree: RevisionTree {
    var files: [String: String] = [:]
    var links: [String: String] = [:]

    func entry(at path: String) throws -> TreeEntry? {
        if path.isEmpty { return .directory }
        if let target = links[path] { return .symlink(target: target) }
        if files[path] != nil { return .file }
        if files.keys.contains(where: { $0.hasPrefix(path + "/") }) || links.keys.contains(where: { $0.hasPrefix(path + "/") }) {
            return .directory
        }
        return nil
    }

    func readFile(at path: String) throws -> [UInt8] {
        guard let text = files[path] else { throw FixtureError("no file \(path)") }
        return Array(text.utf8)
    }

    /// A snapshot whose manifests are the `.yaml` files under `root`.
    func snapshot(root: String = "") -> RevisionSnapshot {
        let manifests = files.keys.filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && (root.isEmpty || $0.hasPrefix(root + "/")) }
            .sorted().map { ManifestFile(path: $0, contents: Array(files[$0]!.utf8)) }
        return RevisionSnapshot(commit: nil, manifestRoot: root, files: manifests, tree: self)
    }
}
