import Synchronization

/// A count that only grows, and waits for it to reach a number: "returns once N deliveries
/// happened". Every wait is bounded: past `timeout` it returns false instead of hanging the run,
/// and the test's own expectations then say what did not happen. Waiters are woken by ``add(_:)``,
/// never by polling.
public final class Tally: Sendable {
    private struct State {
        var count = 0
        var nextID = 0
        var waiters: [Int: (target: Int, continuation: CheckedContinuation<Bool, Never>)] = [:]
        /// Waits given up (timeout, cancellation) before they were registered.
        var givenUp: Set<Int> = []
    }

    private let state = Mutex(State())

    public init() {}

    /// The count so far.
    public var count: Int { state.withLock { $0.count } }

    /// Adds `amount`, waking every waiter whose number is reached.
    public func add(_ amount: Int = 1) {
        let ready = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.count += amount
            let count = state.count
            let reached = state.waiters.filter { $0.value.target <= count }
            for id in reached.keys { state.waiters[id] = nil }
            return reached.values.map(\.continuation)
        }
        for continuation in ready { continuation.resume(returning: true) }
    }

    /// Returns true once the count is at least `target`; false when `timeout` passed first (or the
    /// waiting task was cancelled). The timeout guards the run, it is not what a test measures.
    @discardableResult
    public func wait(for target: Int, timeout: Duration = .seconds(30)) async -> Bool {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        let timer = Task {
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self.giveUp(id)
        }
        defer { timer.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = state.withLock { state -> Bool? in
                    if state.count >= target { return true }
                    if state.givenUp.remove(id) != nil || Task.isCancelled { return false }
                    state.waiters[id] = (target, continuation)
                    return nil
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            giveUp(id)
        }
    }

    private func giveUp(_ id: Int) {
        let waiter = state.withLock { state -> (target: Int, continuation: CheckedContinuation<Bool, Never>)? in
            guard let waiter = state.waiters.removeValue(forKey: id) else {
                state.givenUp.insert(id)
                return nil
            }
            return waiter
        }
        waiter?.continuation.resume(returning: false)
    }
}
