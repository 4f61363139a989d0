import BridgeCore
import BridgeGraph
import Foundation
import Synchronization

/// An ``UpkeepClock`` that moves only when a test says so. Keepers that sleep on it wake when
/// ``advance(by:)`` passes their deadline (or their doorbell rings); ``advance(by:)`` returns once
/// every keeper it woke is asleep again, so a test knows the manager has acted on the new time.
final class ManualUpkeepClock: UpkeepClock {
    struct NotAsleep: Error, CustomStringConvertible {
        var description: String
    }

    private struct Sleeper {
        var deadline: Date
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var now: Date
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
        /// How many sleeps have begun.
        var sleeps = 0
        var sleepWaiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state: Mutex<State>

    init(start: Date = Date()) {
        state = Mutex(State(now: start))
    }

    var now: Date { state.withLock { $0.now } }

    /// How many sleeps have begun so far.
    var sleeps: Int { state.withLock { $0.sleeps } }

    func sleep(for duration: Duration, orUntilRung doorbell: Doorbell) async {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await doorbell.wait(timeout: nil) }
            group.addTask { await self.sleep(id: id, duration: duration) }
            await group.next()
            group.cancelAll()
        }
    }

    private func sleep(id: Int, duration: Duration) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let (resumeNow, ready) = state.withLock { state -> (Bool, [CheckedContinuation<Void, Never>]) in
                    if Task.isCancelled { return (true, []) }
                    let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
                    state.sleepers[id] = Sleeper(deadline: state.now.addingTimeInterval(seconds), continuation: continuation)
                    state.sleeps += 1
                    let sleeps = state.sleeps
                    let ready = state.sleepWaiters.filter { $0.count <= sleeps }.map(\.continuation)
                    state.sleepWaiters.removeAll { $0.count <= sleeps }
                    return (false, ready)
                }
                for waiter in ready { waiter.resume() }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume()
        }
    }

    /// Waits until `count` sleeps have begun in all (the manager's keepers are waiting).
    func waitForSleeps(_ count: Int, timeout: Duration = .seconds(10)) async throws {
        let done = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now = self.state.withLock { state -> Bool in
                        if state.sleeps >= count { return true }
                        state.sleepWaiters.append((count, continuation))
                        return false
                    }
                    if now { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            if !first {
                // Release the waiter so the group can finish.
                let waiters = self.state.withLock { state in
                    defer { state.sleepWaiters.removeAll { $0.count == count } }
                    return state.sleepWaiters.filter { $0.count == count }.map(\.continuation)
                }
                for waiter in waiters { waiter.resume() }
            }
            group.cancelAll()
            return first
        }
        guard done else { throw NotAsleep(description: "only \(sleeps) sleeps began within \(timeout), expected \(count)") }
    }

    /// Moves the clock forward, wakes the sleepers whose deadline has come, and waits until each is asleep again.
    func advance(by duration: Duration) async throws {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        let (woken, sleeps) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Int) in
            state.now = state.now.addingTimeInterval(seconds)
            let due = state.sleepers.filter { $0.value.deadline <= state.now }
            for id in due.keys { state.sleepers[id] = nil }
            return (due.values.map(\.continuation), state.sleeps)
        }
        for sleeper in woken { sleeper.resume() }
        try await waitForSleeps(sleeps + woken.count)
    }
}
