import CairnCore
import CairnReconcile
import CairnStore
import CairnTraining
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// Registry operations over HTTP: a version's portable bundle, for tokens of the `export` scope.
extension HTTPAPI {
    func registerRegistry(_ router: Router<BasicRequestContext>) {
        router.get("v1/models/:name/versions/:number/bundle") { request, context -> Response in
            if let denied = await authorize(request, .export) { return denied }
            let name = try context.parameters.require("name")
            guard let number = Int(try context.parameters.require("number")) else {
                return Self.json(Problem(error: "the version is a number"), status: .badRequest)
            }
            let loader = serving.loader
            let result: Result<[UInt8], CairnError> = try await blocking { [db] in
                do {
                    guard let version = try db.versions(of: name)?.first(where: { $0.number == number }) else {
                        throw CairnError("Model/\(name) has no v\(number)")
                    }
                    return .success(try ArtifactBundle.make(version: version, request: try db.runRequest(version.runID), store: loader.store, key: loader.key))
                } catch let e as CairnError {
                    return .failure(e)
                }
            }
            switch result {
            case let .success(bytes):
                return Response(status: .ok, headers: [.contentType: "application/x-tar",
                                                       .contentDisposition: "attachment; filename=\"\(name)-v\(number).cairn.tar\""],
                                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
            case let .failure(e):
                let missing = e.message.contains("has no v") || e.message.contains("no artifact")
                return Self.json(PlanFailure(error: e.message, hint: e.hint), status: missing ? .notFound : .conflict)
            }
        }
    }
}

/// Removes unreferenced artifacts every `every` seconds (`cairn artifact gc`, on a schedule).
public struct ArtifactCollector: Service {
    let db: RegistryDatabase
    let store: ArtifactStore
    let every: Int64
    let minAge: Int64
    let logger: Logger

    public func run() async throws {
        let (db, store, every, minAge, logger) = (self.db, self.store, self.every, self.minAge, self.logger)
        try await runUntilShutdown { stop in
            let clock = SystemClock()
            let wake = Wakeup()
            stop.wakes(wake)
            while !stop.isSet {
                _ = clock.wait(on: wake, until: clock.now() + Double(every))
                if stop.isSet { break }
                do {
                    let (referenced, activeSince) = try db.artifactReferences()
                    let collected = try store.collectGarbage(referenced: referenced, activeSince: activeSince, minAge: minAge, now: clock.unixNow(), dryRun: false)
                    if !collected.removed.isEmpty {
                        logger.info("artifact gc removed \(collected.removed.count) unreferenced artifact(s), \(collected.bytes) bytes")
                    }
                } catch {
                    logger.warning("artifact gc failed: \(error)")
                }
            }
        }
    }
}
