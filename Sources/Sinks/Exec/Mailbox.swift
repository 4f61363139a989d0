import Dispatch
import Foundation
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

    /// Posts `.timer(id)` after `delay`; returns the id.
    func schedule(after delay: Duration, on queue: DispatchQueue) -> Int {
        let id = state.withLock { state -> Int in
            state.nextTimer += 1
            return state.nextTimer
        }
        queue.asyncAfter(deadline: .now() + delay.timeInterval) { [self] in post(.timer(id)) }
        return id
    }
}
