import Synchronization

/// The supervising task's inbox: one consumer, any number of posters, no cancellation semantics
/// (a stop must run to its end even when the task running it was cancelled).
final class Mailbox: Sendable {
    enum Message: Sendable, Equatable {
        case exited(generation: Int, status: ExitStatus)
        case stop
        case timer(Int)
    }

    private struct State {
        var messages: [Message] = []
        var waiter: CheckedContinuation<Message, Never>?
        var nextTimer = 0
    }

    private let state = Mutex(State())

    func post(_ message: Message) {
        let waiter = state.withLock { state -> CheckedContinuation<Message, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.messages.append(message)
            return nil
        }
        waiter?.resume(returning: message)
    }

    func next() async -> Message {
        await withCheckedContinuation { continuation in
            let message = state.withLock { state -> Message? in
                if !state.messages.isEmpty { return state.messages.removeFirst() }
                state.waiter = continuation
                return nil
            }
            if let message { continuation.resume(returning: message) }
        }
    }

    /// A timer ``schedule(after:on:)`` started.
    struct Alarm: Sendable {
        /// What it posts: `.timer(id)`.
        let id: Int
        let task: Task<Void, Never>

        /// Stops it; once it has not fired yet, it never posts.
        func cancel() { task.cancel() }
    }

    /// Posts `.timer(id)` once `delay` has passed on `clock`, unless cancelled first.
    func schedule(after delay: Duration, on clock: any Clock<Duration>) -> Alarm {
        let id = state.withLock { state -> Int in
            state.nextTimer += 1
            return state.nextTimer
        }
        let task = Task { [self] in
            do {
                try await clock.sleep(for: delay)
            } catch {
                return
            }
            post(.timer(id))
        }
        return Alarm(id: id, task: task)
    }
}
