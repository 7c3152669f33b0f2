import Foundation

/// Runs blocking work (libgit2, SQLite, trainers) on its own thread, so it never holds one of
/// the few threads Swift concurrency and the HTTP server share.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            continuation.resume(with: Result { try body() })
        }
    }
}
