import Synchronization

/// The caller's continuation, resumed exactly once by whoever gets there first: the transfer
/// thread (done, failed, shut down) or the caller's cancellation handler.
final class TransferCompletion<Output: Sendable>: Sendable {
    private enum State {
        /// The caller has not suspended yet.
        case idle
        case waiting(CheckedContinuation<Output, any Error>)
        /// Resumed, or cancelled before the caller suspended.
        case done
    }

    private let state = Mutex(State.idle)

    /// Stores the continuation. Returns `false`, having resumed it with `CancellationError`, if
    /// ``cancel()`` came first; the transfer must then not be submitted.
    func install(_ continuation: CheckedContinuation<Output, any Error>) -> Bool {
        let installed = state.withLock { state in
            guard case .idle = state else { return false }
            state = .waiting(continuation)
            return true
        }
        if !installed { continuation.resume(throwing: CancellationError()) }
        return installed
    }

    /// Whether the caller no longer waits (already resumed or cancelled).
    var isDone: Bool {
        state.withLock { state in
            if case .done = state { return true }
            return false
        }
    }

    func resume(returning value: Output) {
        take()?.resume(returning: value)
    }

    func resume(throwing error: any Error) {
        take()?.resume(throwing: error)
    }

    /// Resumes the caller with `CancellationError`. Returns `true` if a submitted transfer may
    /// still be running and should be removed.
    func cancel() -> Bool {
        guard let continuation = take() else { return false }
        continuation.resume(throwing: CancellationError())
        return true
    }

    private func take() -> CheckedContinuation<Output, any Error>? {
        state.withLock { state in
            defer { state = .done }
            if case .waiting(let continuation) = state { return continuation }
            return nil
        }
    }
}
