import Synchronization

/// Wakes a waiting loop when there is new work. A ring while nobody waits is remembered once,
/// so a ring between "found nothing" and "wait" is never lost.
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func ring() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if state.waiters.isEmpty {
                state.rung = true
                return []
            }
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns after a ring (possibly one that came before the call), after `timeout`, or on cancellation.
    public func wait(timeout: Duration?) async {
        await wait(timeout: timeout, clock: ContinuousClock())
    }

    /// As ``wait(timeout:)``, with `timeout` measured on `clock` (a test clock moves it by hand).
    public func wait(timeout: Duration?, clock: any Clock<Duration>) async {
        if state.withLock({ state in
            let rung = state.rung
            state.rung = false
            return rung
        }) { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForRing() }
            if let timeout {
                group.addTask { try? await clock.sleep(for: timeout) }
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForRing() async {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state -> Bool in
                    if state.rung {
                        state.rung = false
                        return true
                    }
                    if Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}

import Metrics

extension Timer {
    /// Records a `Duration` measured with `ContinuousClock`.
    package func recordElapsed(_ duration: Duration) {
        let parts = duration.components
        recordNanoseconds(parts.seconds * 1_000_000_000 + parts.attoseconds / 1_000_000_000)
    }
}
