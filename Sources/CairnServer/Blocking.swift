import CairnReconcile
import Foundation
import ServiceLifecycle

/// Runs blocking work (libgit2, SQLite, trainers) on its own thread, so it never holds one of
/// the few threads Swift concurrency and the HTTP server share.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}

/// Runs a service's blocking loop on its own thread until the loop returns. Hummingbird hands
/// its services either a graceful shutdown or a cancellation; both set the flag the loop is
/// given, so it stops after its current work (and hands running training back).
func runUntilShutdown(_ body: @escaping @Sendable (StopFlag) throws -> Void) async throws {
    let stop = StopFlag()
    try await withTaskCancellationHandler {
        try await withGracefulShutdownHandler {
            try await blocking { try body(stop) }
        } onGracefulShutdown: {
            stop.set()
        }
    } onCancel: {
        stop.set()
    }
}
