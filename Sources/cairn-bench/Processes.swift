import CairnReconcile
import Foundation

// How `cairn-bench` starts the processes it measures, and reads their time, memory and CPU.

/// A process's CPU time so far (user + system, from /proc), in seconds.
func cpuSeconds(_ pid: pid_t) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Starts the binary with its output thrown away (arguments carry absolute paths).
func spawn(_ executable: String, _ arguments: [String]) throws -> pid_t {
    var pid: pid_t = 0
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    guard posix_spawn(&pid, executable, &actions, nil, argv, environ) == 0 else { throw BenchError("cannot start \(executable)") }
    return pid
}

/// True while a process started with `spawn` has not exited (it is not reaped here).
func stillRunning(_ pid: pid_t) -> Bool {
    var info = siginfo_t()
    return waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info._sifields._sigchld.si_pid == 0
}

/// Ends a process started with `spawn` (SIGTERM, as a service manager would) and waits for it.
func stopProcess(_ pid: pid_t) {
    kill(pid, SIGTERM)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
}

/// Runs a process and waits for it: wall seconds, peak RSS in KiB (`wait4`), raw wait status.
func runAndWait(_ executable: String, _ arguments: [String]) throws -> (Double, Int, Int32) {
    let start = Date()
    let pid = try spawn(executable, arguments)
    var status: Int32 = 0
    var usage = rusage()
    guard wait4(pid, &status, 0, &usage) == pid else { throw BenchError("lost track of \(arguments.first ?? executable)") }
    return (Date().timeIntervalSince(start), Int(usage.ru_maxrss), status)
}

/// Starts the measured processes for a process that stays small. Linux carries the peak RSS of
/// the process that spawns into the spawned one (across vfork and exec), so a child of this
/// harness, which grows to hundreds of MB running the in-process rows, reported that as its own
/// peak. Its spawner is this binary in `--spawner` mode, started first: one request per line
/// on its standard input (a JSON array: executable, then arguments), one answer per line
/// (`wall-seconds maxrss-KiB wait-status`).
final class Spawner {
    let process = Process()
    let input = Pipe(), output = Pipe()
    var buffer = Data()

    init() throws {
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["--spawner"]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    func run(_ executable: String, _ arguments: [String]) throws -> (Double, Int, Int32) {
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: [executable] + arguments) + Data("\n".utf8))
        while !buffer.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw BenchError("the spawner exited") }
            buffer += chunk
        }
        let end = buffer.firstIndex(of: UInt8(ascii: "\n"))!
        let line = String(decoding: buffer[..<end], as: UTF8.self)
        buffer = Data(buffer[buffer.index(after: end)...])
        let fields = line.split(separator: " ")
        guard fields.count == 3, let wall = Double(fields[0]), let rss = Int(fields[1]), let status = Int32(fields[2]) else {
            throw BenchError("the spawner said \(line)")
        }
        return (wall, rss, status)
    }

    /// The `--spawner` loop.
    static func serve() -> Never {
        while let line = readLine() {
            guard let request = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String], let executable = request.first,
                  let (wall, rss, status) = try? runAndWait(executable, Array(request.dropFirst())) else {
                FileHandle.standardOutput.write(Data("error 0 0\n".utf8))
                continue
            }
            FileHandle.standardOutput.write(Data("\(wall) \(rss) \(status)\n".utf8))
        }
        exit(0)
    }
}

/// Runs the binary (through the spawner); returns wall time, the process's own peak RSS, and
/// its exit status. A process killed by a signal, or exiting with a status `allowed` does not
/// list, fails the benchmark: a figure of a run that did not do its work is no figure.
func measure(_ executable: String, _ arguments: [String], allowed: Set<Int32> = [0]) throws -> (Double, Double, Int32) {
    let (wall, rssKiB, status) = try spawner.run(executable, arguments)
    if status & 0x7f != 0 {
        throw BenchError("cairn \(arguments.joined(separator: " ")) was killed by signal \(status & 0x7f)")
    }
    let code = (status >> 8) & 0xff
    guard allowed.contains(code) else { throw BenchError("cairn \(arguments.joined(separator: " ")) exited \(code)") }
    return (wall, Double(rssKiB) / 1024, code)
}

/// Runs a command and returns its standard output; throws when it does not exit 0.
func runCapturing(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw BenchError("\(arguments.prefix(2).joined(separator: " ")) exited \(process.terminationStatus)") }
    return String(decoding: data, as: UTF8.self)
}
