import CairnCore
import CairnStore
import CairnTraining
import Foundation
import Hummingbird

/// The learning loop's endpoints: traced recommendations, traces and shadow agreement, outcome
/// feedback, and A/B readouts.
extension HTTPAPI {
    /// The largest feedback request (1,000 samples of short ids fit well within it).
    static let feedbackBodyLimit = 1 << 20
    static let feedbackBatchLimit = 1000

    func registerLearning(_ router: Router<BasicRequestContext>) {
        router.get("v1/targets/:name/recommendations") { request, context -> Response in
            if let denied = await authorize(request, .read) { return denied }
            let name = try context.parameters.require("name")
            let user = request.uri.queryParameters.get("user")
            let items = request.uri.queryParameters.get("items").map { $0.split(separator: ",").map(String.init) } ?? []
            let k = request.uri.queryParameters.get("k").flatMap(Int.init) ?? 10
            guard user != nil || !items.isEmpty else { return Self.json(Problem(error: "give user=U or items=a,b"), status: .badRequest) }
            guard (1...1000).contains(k) else { return Self.json(Problem(error: "k must be between 1 and 1000"), status: .badRequest) }
            let (served, problem) = await serving.served(name)
            guard let served else {
                return Self.json(Problem(error: problem ?? "ServingTarget/\(name) serves nothing yet"), status: .notFound)
            }
            // One snapshot of the target: its routes and models belong together.
            let route = RouteChoice.pick(served.routes, key: user ?? items.joined(separator: ","))
            guard let model = served.models[ServingCache.key(route)] else {
                return Self.json(Problem(error: "\(route.model) v\(route.version) is not loaded"), status: .serviceUnavailable)
            }
            let started = DispatchTime.now().uptimeNanoseconds
            var answer = Recommendation(target: name, route: route, user: user, scored: model.recommend(user: user, items: items, k: k))
            let micros = Int((DispatchTime.now().uptimeNanoseconds - started) / 1000)
            let requestId = hexString(randomBytes(16))
            answer.requestId = requestId
            // The shadows are scored by the recorder's thread, after this answer is sent.
            traces.submit(DecisionTrace(requestId: requestId, at: Int64(Date().timeIntervalSince1970 * 1000), target: name, user: user,
                                        model: route.model, version: route.version, k: k,
                                        items: answer.items.map { DecisionTrace.Scored(item: $0.item, score: $0.score) }, latencyMicros: micros),
                          history: items, shadows: served.shadows.compactMap { s in served.models[ServingCache.key(s)].map { (s, $0) } })
            var response = Self.json(answer)
            response.headers[.init("X-Request-Id")!] = requestId
            return response
        }

        router.get("v1/models/:name") { request, context -> Response in
            if let denied = await authorize(request, .read) { return denied }
            let name = try context.parameters.require("name")
            struct Model: Encodable {
                var formatVersion = "1"
                var name: String
                var lifecycle: String
                var stage: String
                var family: String?
                var record: ModelRecord
                var versions: [ModelVersion]
            }
            let found: Model? = try await blocking { [db] in
                guard let m = try db.observedState().models[name] else { return nil }
                return Model(name: name, lifecycle: m.spec.lifecycle.rawValue, stage: m.stage.rawValue, family: m.spec.family,
                             record: ModelRecord.of(m), versions: m.versions)
            }
            guard let found else { return Self.json(Problem(error: "Model/\(name) has never been applied"), status: .notFound) }
            return Self.json(found)
        }

        // A reviewer's sample of any version (pending ones included): what approving it would put live.
        router.get("v1/models/:name/versions/:number/recommendations") { request, context -> Response in
            if let denied = await authorize(request, .read) { return denied }
            let name = try context.parameters.require("name")
            guard let number = Int(try context.parameters.require("number")) else {
                return Self.json(Problem(error: "the version is a number"), status: .badRequest)
            }
            let query = request.uri.queryParameters
            let k = query.get("k").flatMap(Int.init) ?? 10
            guard (1...1000).contains(k) else { return Self.json(Problem(error: "k must be between 1 and 1000"), status: .badRequest) }
            let subject: Review.Subject
            if let user = query.get("user") {
                subject = .user(user)
            } else if let items = query.get("items") {
                subject = .items(items.split(separator: ",").map(String.init))
            } else if let seed = query.get("random").flatMap(Int.init) {
                subject = .random(seed: seed)
            } else {
                return Self.json(Problem(error: "give user=U, items=a,b or random=SEED"), status: .badRequest)
            }
            let loader = serving.loader, repository = configuration.source().path
            let result: Result<Review.Sample, CairnError> = try await blocking { [db] in
                do {
                    guard let version = try db.versions(of: name)?.first(where: { $0.number == number }) else {
                        throw CairnError("Model/\(name) has no v\(number)")
                    }
                    return .success(try Review.sample(of: version, request: try db.runRequest(version.runID), loader: loader,
                                                      repository: repository, subject: subject, k: k))
                } catch let e as CairnError {
                    return .failure(e)
                }
            }
            switch result {
            case let .success(sample): return Self.json(sample)
            case let .failure(e): return Self.json(PlanFailure(error: e.message, hint: e.hint), status: .notFound)
            }
        }

        router.get("v1/traces/:id") { request, context -> Response in
            if let denied = await authorize(request, .read) { return denied }
            let id = try context.parameters.require("id")
            if let pending = traces.pending(id) { return Self.json(pending) }
            guard let found = try await blocking({ [db] in try db.trace(id) }) else {
                return Self.json(Problem(error: "no trace of request \(id) (traces are kept \(ManifestDuration(seconds: Int(configuration.traceRetention.maxAge))))"),
                                 status: .notFound)
            }
            return Self.json(found)
        }

        router.get("v1/targets/:name/traces") { request, context -> Response in
            if let denied = await authorize(request, .read) { return denied }
            let name = try context.parameters.require("name")
            let limit = request.uri.queryParameters.get("limit").flatMap(Int.init) ?? 20
            guard (0...1000).contains(limit) else { return Self.json(Problem(error: "limit must be between 0 and 1000"), status: .badRequest) }
            return Self.json(try await blocking { [db] in try TraceReport.of(target: name, db: db, limit: limit) })
        }

        router.get("v1/targets/:name/ab") { request, context -> Response in
            if let denied = await authorize(request, .read) { return denied }
            let name = try context.parameters.require("name")
            let since = request.uri.queryParameters.get("since").flatMap(Int64.init)
            switch try await blocking({ [db] in try ExperimentReport.readout(target: name, db: db, since: since) }) {
            case let .success(readout): return Self.json(readout)
            case let .failure(problem): return Self.json(Problem(error: problem.message), status: .notFound)
            }
        }

        router.post("v1/feedback") { request, _ -> Response in
            if let denied = await authorize(request, .feedback) { return denied }
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: Self.feedbackBodyLimit)
            } catch {
                return Self.json(Problem(error: "the body is larger than \(Self.feedbackBodyLimit) bytes: send at most \(Self.feedbackBatchLimit) samples a request"),
                                 status: .contentTooLarge)
            }
            let parsed: [FeedbackInput]
            do {
                parsed = try FeedbackInput.parse(Array(buffer: body), limit: Self.feedbackBatchLimit)
            } catch let e as CairnError {
                return Self.json(PlanFailure(error: e.message, hint: e.hint), status: .badRequest)
            }
            let resolved = await resolve(parsed)
            guard case let .success(samples) = resolved else {
                if case let .failure(e) = resolved { return Self.json(PlanFailure(error: e.message, hint: e.hint), status: .unprocessableContent) }
                return Self.json(Problem(error: "unreachable"), status: .internalServerError)
            }
            let now = Int64(Date().timeIntervalSince1970)
            _ = try await blocking { [db] in try db.recordFeedback(samples, receivedAt: now) }
            var unknown: [String: Int] = [:]
            for s in samples where s.weight == nil { unknown["\(s.template)/\(s.outcome)", default: 0] += 1 }
            metrics.recordFeedback(known: samples.count - unknown.values.reduce(0, +), unknown: unknown.values.reduce(0, +))
            struct Accepted: Encodable {
                var accepted: Int
                var unknownOutcomes: [String: Int]
                var warnings: [String]
            }
            let warnings = unknown.keys.sorted().map { key -> String in
                let (template, outcome) = (key.prefix { $0 != "/" }, key.drop { $0 != "/" }.dropFirst())
                return "Template/\(template) gives outcome '\(outcome)' no weight: \(unknown[key]!) sample(s) kept and counted, never learned from; "
                    + "add it to the template's events and its OutcomeWeights to learn from it"
            }
            return Self.json(Accepted(accepted: samples.count, unknownOutcomes: unknown, warnings: warnings))
        }
    }

    /// Each input's route (from its request's trace, or the user's route on the target now) and
    /// template weight; the first that cannot be resolved fails the whole request.
    func resolve(_ inputs: [FeedbackInput]) async -> Result<[FeedbackSample], CairnError> {
        do {
            let observed = try await blocking { [db] in try db.observedState() }
            var samples: [FeedbackSample] = []
            for (n, input) in inputs.enumerated() {
                let at = "samples[\(n)]"
                var user = input.user, target = input.target ?? "", route: LiveRoute?
                if let id = input.requestId {
                    var trace = traces.pending(id)
                    if trace == nil { trace = try await blocking { [db] in try db.trace(id) } }
                    guard let trace else {
                        throw CairnError("\(at).requestId: no traced request \(id) (traces are kept \(ManifestDuration(seconds: Int(configuration.traceRetention.maxAge))))",
                                         hint: "send target and user instead")
                    }
                    if let given = input.target, given != trace.target {
                        throw CairnError("\(at).target: request \(id) was served by ServingTarget/\(trace.target), not \(given)")
                    }
                    if let given = user, let traced = trace.user, given != traced {
                        throw CairnError("\(at).user: request \(id) was for user \(traced), not \(given)")
                    }
                    guard let traced = user ?? trace.user else {
                        throw CairnError("\(at).user: request \(id) named no user (it scored a list of items)", hint: "give the user the outcome is about")
                    }
                    user = traced
                    target = trace.target
                    route = LiveRoute(model: trace.model, version: trace.version, weight: 0)
                } else {
                    guard let t = input.target, let u = user else {
                        throw CairnError("\(at): give requestId, or target and user", hint: "the recommendations' answer carries requestId")
                    }
                    let (served, _) = await serving.served(t)
                    guard let served else { throw CairnError("\(at).target: ServingTarget/\(t) serves nothing") }
                    route = RouteChoice.pick(served.routes, key: u)
                }
                guard let route, let user, let model = observed.models[route.model] else {
                    throw CairnError("\(at): Model/\(route?.model ?? "?") is not in the registry")
                }
                let template = model.spec.template
                let spec = observed.templates[template]?.spec
                let weights = spec.flatMap { observed.weights[$0.outcomeWeights]?.spec.weights }
                let known = spec?.events.contains(input.outcome) == true ? weights?[input.outcome] : nil
                samples.append(FeedbackSample(at: input.at ?? Int64(Date().timeIntervalSince1970), requestId: input.requestId, target: target,
                                              model: route.model, version: route.version, template: template, user: user, item: input.item,
                                              outcome: input.outcome, weight: known))
            }
            return .success(samples)
        } catch let e as CairnError {
            return .failure(e)
        } catch {
            return .failure(CairnError("\(error)"))
        }
    }
}
