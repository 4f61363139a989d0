import Foundation
import Synchronization

/// An append-only log that callers can await: "wait until the log holds what I expect".
final class EventLog<Item: Sendable>: Sendable {
    private struct Waiter {
        let ready: @Sendable ([Item]) -> Bool
        let continuation: CheckedContinuation<[Item], any Error>
    }

    private let state = Mutex<(items: [Item], waiters: [UUID: Waiter])>(([], [:]))

    var items: [Item] { state.withLock { $0.items } }

    func clear() { state.withLock { $0.items = [] } }

    func append(_ item: Item) {
        let ready: [(CheckedContinuation<[Item], any Error>, [Item])] = state.withLock { state in
            state.items.append(item)
            var ready: [(CheckedContinuation<[Item], any Error>, [Item])] = []
            for (id, waiter) in state.waiters where waiter.ready(state.items) {
                ready.append((waiter.continuation, state.items))
                state.waiters[id] = nil
            }
            return ready
        }
        for (continuation, items) in ready { continuation.resume(returning: items) }
    }

    /// Returns the items once `ready(items)` holds; throws ``SimulatorError`` after `timeout`.
    func wait(timeout: Duration, until ready: @escaping @Sendable ([Item]) -> Bool) async throws -> [Item] {
        let id = UUID()
        return try await withThrowingTaskGroup(of: [Item].self) { group in
            group.addTask {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { continuation in
                        let now: [Item]? = self.state.withLock { state in
                            if ready(state.items) { return state.items }
                            state.waiters[id] = Waiter(ready: ready, continuation: continuation)
                            return nil
                        }
                        if let now { continuation.resume(returning: now) }
                    }
                } onCancel: {
                    let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                    waiter?.continuation.resume(throwing: CancellationError())
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw SimulatorError(message: "timed out after \(timeout) waiting for the simulator's log")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}

extension GraphSimulator {
    /// Waits until a call matching `predicate` has been answered (including ones answered before),
    /// and returns the first such.
    public func waitForRequest(timeout: Duration = .seconds(10), where predicate: @escaping @Sendable (RecordedRequest) -> Bool) async throws
        -> RecordedRequest
    {
        let items = try await requestLog.wait(timeout: timeout) { $0.contains(where: predicate) }
        return items.first(where: predicate)!
    }

    /// Waits until the delivery log satisfies `ready` (e.g. "three change-notification attempts") and returns it.
    public func waitForDeliveries(timeout: Duration = .seconds(10), until ready: @escaping @Sendable ([DeliveryAttempt]) -> Bool) async throws
        -> [DeliveryAttempt]
    {
        try await deliveryLog.wait(timeout: timeout, until: ready)
    }
}
