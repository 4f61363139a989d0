import Synchronization

/// A value set once and awaited by any number of tasks: a listener's bound port, a first answer.
/// Waiters before and after `set` get the same value; a second `set` is ignored.
public final class OneShot<Value: Sendable>: Sendable {
    private let state = Mutex<(value: Value?, waiters: [CheckedContinuation<Value, Never>])>((nil, []))

    public init() {}

    /// Sets the value (the first call only) and wakes every waiter.
    public func set(_ value: Value) {
        let waiters = state.withLock { state -> [CheckedContinuation<Value, Never>] in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// The value, once it is set.
    public func value() async -> Value {
        await withCheckedContinuation { continuation in
            let value = state.withLock { state -> Value? in
                if let value = state.value { return value }
                state.waiters.append(continuation)
                return nil
            }
            if let value { continuation.resume(returning: value) }
        }
    }
}

/// The value of `body`, or nil when it has not finished within `limit`. A body still running then
/// goes on in the background, unawaited: for waits that cancellation cannot end (a thread blocked
/// in `Process.waitUntilExit`, an unstructured task that does not stop), so that they fail their
/// test instead of holding up the whole run.
public func value<T: Sendable>(within limit: Duration, of body: @escaping @Sendable () async -> T) async -> T? {
    let outcome = OneShot<T?>()
    let worker = Task { outcome.set(await body()) }
    let timer = Task {
        try? await Task.sleep(for: limit)
        outcome.set(nil)
    }
    let value = await outcome.value()
    timer.cancel()
    withExtendedLifetime(worker) {}
    return value
}
