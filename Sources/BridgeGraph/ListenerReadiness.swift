import Synchronization

/// Opens once the listener accepts connections: Graph validates the notification URL during
/// `POST /subscriptions`, so no subscription is created before this.
///
/// Waiting is cancellable: when the listener cannot start (its port is taken), the service group
/// cancels the subscription manager while it waits here, and the process must be able to exit.
public final class ListenerReadiness: Sendable {
    private struct State {
        var port: Int?
        var waiters: [Int: CheckedContinuation<Int, any Error>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func markListening(port: Int) {
        let waiters = state.withLock { state in
            state.port = port
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        for waiter in waiters { waiter.resume(returning: port) }
    }

    /// The bound port, once listening. Throws `CancellationError` when the waiting task is cancelled.
    public func port() async throws -> Int {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome: Result<Int, any Error>? = state.withLock { state in
                    if let port = state.port { return .success(port) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
