import Foundation

/// Runs `body` on a thread of its own and returns its result: for the blocking calls tests make
/// (`waitUntilExit`, a read to the end of a pipe, `waitpid`). Not on a Dispatch global queue: on
/// Linux Swift's tasks run on that queue's threads (as many as cores: two here), so a work item
/// blocked there for seconds stalls every test of a parallel run meanwhile.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// ``onOwnThread(_:)`` for a body that throws.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
