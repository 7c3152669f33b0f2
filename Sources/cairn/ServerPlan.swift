import CairnCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `cairn plan --server URL --revision SHA`: the plan a running `cairn serve` makes of a commit
/// (fetched from its remote) against the live registry, for pull-request CI that has neither
/// the registry nor a copy of it.
enum ServerPlan {
    struct Failure: Decodable {
        var error: String
        var hint: String?
        var diagnostics: [String]?
    }

    /// Refuses addresses that would send the token in clear across a network, or elsewhere.
    static func endpoint(server: String, revision: String) throws -> URL {
        guard var components = URLComponents(string: server), let scheme = components.scheme?.lowercased(),
              ["http", "https"].contains(scheme), let host = components.host, !host.isEmpty else {
            throw CairnError("--server '\(server)' is not an http:// or https:// address", hint: "give the address `cairn serve` listens on, such as https://cairn.internal")
        }
        if scheme == "http", !["127.0.0.1", "localhost", "::1", "[::1]"].contains(host.lowercased()) {
            throw CairnError("--server \(server) is plain http to another host: the API token would cross the network in clear",
                             hint: "put `cairn serve` behind https (a reverse proxy) and use https://")
        }
        if components.user != nil || components.password != nil {
            throw CairnError("--server must not hold credentials", hint: "give the API token in CAIRN_TOKEN or CAIRN_TOKEN_FILE")
        }
        guard CommitInfo.isFullID(revision) else {
            throw CairnError("--server needs --revision as a full commit id (40 hexadecimal digits), not '\(Diagnostic.shortened(revision))'",
                             hint: "in GitHub Actions, the merge commit is ${{ github.sha }} on pull_request events")
        }
        components.path = (components.path.hasSuffix("/") ? String(components.path.dropLast()) : components.path) + "/v1/plan"
        components.queryItems = [URLQueryItem(name: "revision", value: revision.lowercased()), URLQueryItem(name: "format", value: "json")]
        return components.url!
    }

    static func fetch(server: String, revision: String, timeout: Double = 300) throws -> Plan {
        let url = try endpoint(server: server, revision: revision)
        guard let token = Secrets.value("CAIRN_TOKEN") else {
            throw CairnError("no API token: set CAIRN_TOKEN (or CAIRN_TOKEN_FILE) to a read-scoped token",
                             hint: "make one with `cairn token create ci-plan --scope read` where the registry is")
        }
        var request = URLRequest(url: url)
        request.timeoutInterval = timeout
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Accept")
        let (status, body) = try send(request)
        let shown = server
        guard status == 200 else {
            let failure = try? JSONDecoder().decode(Failure.self, from: body)
            let detail = failure.map { $0.error + ($0.diagnostics.map { ":\n  " + $0.joined(separator: "\n  ") } ?? "") }
            switch status {
            case 401: throw CairnError("\(shown) refused the API token (401)", hint: "check CAIRN_TOKEN; `cairn token list` shows the tokens there")
            case 403: throw CairnError("\(shown): the token may not read plans (403)", hint: "use a token of scope read or admin")
            default:
                throw CairnError("\(shown) could not plan \(revision.prefix(12)) (\(status)): \(detail ?? String(decoding: body.prefix(300), as: UTF8.self))",
                                 hint: failure?.hint)
            }
        }
        do {
            return try JSONDecoder().decode(Plan.self, from: body)
        } catch {
            throw CairnError("\(shown) answered with something that is not a plan", hint: "is --server the address of `cairn serve`?")
        }
    }

    /// Does not follow redirects: the token goes to the address given, nowhere else.
    final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
        func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                        newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
            completionHandler(nil)
        }
    }

    final class Box: @unchecked Sendable {
        var result: Result<(Int, Data), Error> = .failure(CairnError("no answer"))
    }

    static func send(_ request: URLRequest) throws -> (Int, Data) {
        let session = URLSession(configuration: .ephemeral, delegate: NoRedirects(), delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        let done = DispatchSemaphore(value: 0)
        let box = Box()
        session.dataTask(with: request) { data, response, error in
            if let error {
                box.result = .failure(error)
            } else if let http = response as? HTTPURLResponse {
                box.result = .success((http.statusCode, data ?? Data()))
            }
            done.signal()
        }.resume()
        done.wait()
        do {
            return try box.result.get()
        } catch let error as CairnError {
            throw error
        } catch {
            throw CairnError("cannot reach \(request.url?.host ?? "the server"): \(error.localizedDescription)",
                             hint: "check --server and that `cairn serve` is running")
        }
    }
}
