import CairnCore
import CairnReconcile
import CairnTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// What scoring a shadow off the request path costs the served requests: `cairn serve` on
/// examples/learning (a 50/50 split with one shadow), 4 clients sending recommendation requests
/// at once, with the shadow and again after a commit removes it. Latencies as the clients see
/// them (HTTP on 127.0.0.1 included).
struct ShadowCost {
    var withShadow: (p50: Double, p95: Double)
    var withoutShadow: (p50: Double, p95: Double)
    var traced: Int
    var shed: Int
}

func shadowCost(_ cairn: String, work: String, requestsPerClient: Int = 500) throws -> ShadowCost {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let repo = URL(fileURLWithPath: work).appendingPathComponent("learning-\(getpid())")
    try? FileManager.default.removeItem(at: repo)
    try FileManager.default.copyItem(at: root.appendingPathComponent("examples/learning"), to: repo)
    func git(_ args: [String]) throws {
        _ = try runCapturing("/usr/bin/git", ["-C", repo.path, "-c", "user.name=bench", "-c", "user.email=bench@example.com"] + args)
    }
    try git(["init", "-q", "-b", "main"])
    try git(["add", "-A"])
    try git(["commit", "-qm", "learning example"])
    let db = repo.appendingPathComponent(".bench/cairn.db").path
    let token = try runCapturing(cairn, ["token", "create", "bench-shadow", "--scope", "admin", "--db", db]).trimmingCharacters(in: .whitespacesAndNewlines)
    let port = freeLocalPort()
    let pid = try spawn(cairn, ["serve", "--repo", repo.path, "--db", db, "--listen", "127.0.0.1:\(port)", "--interval", "1s"])
    defer { stopProcess(pid) }
    let session = URLSession(configuration: .ephemeral)
    @Sendable func get(_ path: String) -> (Int, Data) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.timeoutInterval = 30
        let done = DispatchSemaphore(value: 0)
        let answer = Locked<(Int, Data)>((0, Data()))
        session.dataTask(with: request) { data, response, _ in
            answer.update { $0 = ((response as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data()) }
            done.signal()
        }.resume()
        done.wait()
        return answer.value
    }
    func shadows() -> Int? {
        let (status, body) = get("/v1/targets/shop-homepage")
        guard status == 200, let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return nil }
        return (object["shadow"] as? [Any])?.count
    }
    func wait(_ what: String, _ check: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(300)
        while !check() {
            guard Date() < deadline else { throw BenchError("timed out waiting for \(what)") }
            guard stillRunning(pid) else { throw BenchError("cairn serve exited while waiting for \(what) (port \(port))") }
            Thread.sleep(forTimeInterval: 0.5)
        }
    }
    func measure() throws -> (p50: Double, p95: Double) {
        let times = Locked<[Double]>([])
        let failures = Locked<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 4) { client in
            for n in 0..<requestsPerClient {
                let user = String(format: "u%04d", (client * requestsPerClient + n) % 1400)
                let start = Date()
                let (status, _) = get("/v1/targets/shop-homepage/recommendations?user=\(user)&k=10")
                let elapsed = Date().timeIntervalSince(start)
                if status == 200 { times.update { $0.append(elapsed) } } else { failures.update { $0 += 1 } }
            }
        }
        guard failures.value == 0 else { throw BenchError("\(failures.value) recommendation requests failed") }
        let sorted = times.value.sorted()
        return (sorted[sorted.count / 2], sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.95))])
    }
    try wait("the example to be trained and live with its shadow") { shadows() == 1 }
    _ = try measure()  // warm-up
    let with = try measure()
    func counter(_ result: String) -> Int {
        let text = String(decoding: get("/metrics").1, as: UTF8.self)
        return text.split(separator: "\n").first { $0.hasPrefix("cairn_traces_total{result=\"\(result)\"}") }
            .flatMap { Double($0.split(separator: " ").last ?? "") }.map(Int.init) ?? 0
    }
    let traced = counter("recorded"), shed = counter("shed")
    let targets = repo.appendingPathComponent("targets.yaml")
    let text = try String(contentsOf: targets, encoding: .utf8)
    try text.replacingOccurrences(of: "  shadow:\n    - {model: shop-recs-tight, version: 1}\n", with: "").write(to: targets, atomically: true, encoding: .utf8)
    try git(["commit", "-qam", "no shadow"])
    try wait("the shadow to be removed") { shadows() == 0 }
    _ = try measure()
    let without = try measure()
    session.finishTasksAndInvalidate()
    return ShadowCost(withShadow: with, withoutShadow: without, traced: traced, shed: shed)
}
