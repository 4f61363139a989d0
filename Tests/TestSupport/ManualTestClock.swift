public import Foundation
import Synchronization

/// A `Clock` that moves only when the test advances it, with the wall date that goes with it:
/// what the delivery side waits on and stamps with in tests. Sleepers wake in deadline order
/// when `advance` passes their deadline; cancelling a sleeper ends its sleep with
/// `CancellationError`, as `ContinuousClock` does. A test awaits `sleeper(where:)` to know a
/// component has gone to sleep (and until when) instead of guessing with a real pause.
public final class ManualTestClock: Clock, Sendable {
    public struct Instant: InstantProtocol {
        /// Time since the clock was made.
        public var offset: Duration

        public init(offset: Duration) { self.offset = offset }

        public func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        public func duration(to other: Instant) -> Duration { other.offset - offset }
        public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.offset < rhs.offset }
    }

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct Watcher {
        /// Over the deadlines of every sleeper asleep.
        var condition: @Sendable ([Instant]) -> Bool
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var now = Instant(offset: .zero)
        var sleepers: [Int: Sleeper] = [:]
        var watchers: [Int: Watcher] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())
    /// The wall date at offset zero.
    public let start: Date

    public init(start: Date) { self.start = start }

    public var now: Instant { state.withLock { $0.now } }
    public var minimumResolution: Duration { .zero }

    /// The wall date now: `start` plus how far the clock has moved.
    public var date: Date { wallDate(of: now) }

    public func wallDate(of instant: Instant) -> Date { start.addingTimeInterval(instant.offset.secondsValue) }

    public func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Start { case sleep([CheckedContinuation<Void, Never>]), wake, cancelled }
                let start = state.withLock { state -> Start in
                    if Task.isCancelled { return .cancelled }
                    if deadline <= state.now { return .wake }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    let deadlines = state.sleepers.values.map(\.deadline)
                    let matched = state.watchers.filter { $0.value.condition(deadlines) }
                    for key in matched.keys { state.watchers[key] = nil }
                    return .sleep(matched.values.map(\.continuation))
                }
                switch start {
                case .cancelled: continuation.resume(throwing: CancellationError())
                case .wake: continuation.resume()
                case .sleep(let watchers): for watcher in watchers { watcher.resume() }
                }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Moves the clock on by `duration`, waking every sleeper whose deadline it reaches.
    public func advance(by duration: Duration) {
        let woken = state.withLock { state -> [Sleeper] in
            state.now = state.now.advanced(by: duration)
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }
            for key in due.keys { state.sleepers[key] = nil }
            return due.values.sorted { $0.deadline < $1.deadline }
        }
        for sleeper in woken { sleeper.continuation.resume() }
    }

    /// Moves the clock to `date` (never back).
    public func advance(to date: Date) {
        let target = Duration.seconds(date.timeIntervalSince(start))
        advance(by: max(.zero, target - now.offset))
    }

    /// Returns once `condition` holds for the deadlines of the sleepers asleep (checked now and
    /// whenever one goes to sleep).
    public func until(_ condition: @escaping @Sendable ([Instant]) -> Bool) async {
        await withCheckedContinuation { continuation in
            let holds = state.withLock { state -> Bool in
                if condition(state.sleepers.values.map(\.deadline)) { return true }
                state.nextID += 1
                state.watchers[state.nextID] = Watcher(condition: condition, continuation: continuation)
                return false
            }
            if holds { continuation.resume() }
        }
    }

    /// Returns the deadline of a sleeper for which `predicate` holds, once there is one (one already
    /// asleep counts).
    public func sleeper(where predicate: @escaping @Sendable (Instant) -> Bool) async -> Instant {
        await until { $0.contains(where: predicate) }
        return state.withLock { $0.sleepers.values.map(\.deadline).filter(predicate).min()! }
    }

    /// Returns once at least `count` sleepers sleep until `offset`.
    public func sleepers(_ count: Int, until offset: Duration) async {
        await until { deadlines in deadlines.filter { $0.offset == offset }.count >= count }
    }

    /// The deadlines of the sleepers now asleep.
    public var pendingDeadlines: [Instant] { state.withLock { $0.sleepers.values.map(\.deadline).sorted() } }
}

extension Duration {
    /// This duration in seconds.
    public var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
