public import Logging
import Synchronization

/// Captures what code under test logs, as text, with a way to await an entry.
///
/// swift-log's `InMemoryLogHandler` keeps entries but cannot be awaited; tests here wait for a
/// logged outcome (a plugin started, a delivery registered) instead of polling or sleeping, so
/// this keeps the same entries and wakes waiters as they arrive. Compare entries by level and
/// metadata where the code gives them; a message's wording is for operators and may change.
public final class LogCapture: Sendable {
    public struct Entry: Sendable, CustomStringConvertible {
        public var level: Logger.Level
        public var message: String
        public var metadata: [String: String]

        public var description: String { "[\(level)] \(message) \(metadata)" }
    }

    private struct Waiter {
        var predicate: @Sendable (Entry) -> Bool
        var needed: Int
        var continuation: CheckedContinuation<Void, Never>
    }

    private struct State {
        var entries: [Entry] = []
        var waiters: [Int: Waiter] = [:]
        var expired: Set<Int> = []
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Everything logged so far, oldest first.
    public var entries: [Entry] { state.withLock { $0.entries } }

    func append(_ entry: Entry) {
        let resumed = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.entries.append(entry)
            var done: [CheckedContinuation<Void, Never>] = []
            for (key, var waiter) in state.waiters where waiter.predicate(entry) {
                waiter.needed -= 1
                if waiter.needed <= 0 {
                    state.waiters[key] = nil
                    done.append(waiter.continuation)
                } else {
                    state.waiters[key] = waiter
                }
            }
            return done
        }
        for continuation in resumed { continuation.resume() }
    }

    /// Waits until `count` logged entries match (already logged or still to come), at most
    /// `timeout` and no longer than the calling task stays uncancelled; returns the matching
    /// entries (fewer than `count` when the time ran out or the task was cancelled).
    @discardableResult
    public func wait(for count: Int = 1, timeout: Duration = .seconds(15), where predicate: @escaping @Sendable (Entry) -> Bool) async -> [Entry] {
        let key = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        let guardTask = Task { [self] in
            try? await Task.sleep(for: timeout)
            expire(key)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    let needed = count - state.entries.filter(predicate).count
                    if needed <= 0 || state.expired.contains(key) { return true }
                    state.waiters[key] = Waiter(predicate: predicate, needed: needed, continuation: continuation)
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            expire(key)
        }
        guardTask.cancel()
        return entries.filter(predicate)
    }

    /// Ends the wait `key` now (its time ran out, or its task was cancelled), also if it has not begun.
    private func expire(_ key: Int) {
        let waiter = state.withLock { state -> Waiter? in
            guard let waiter = state.waiters.removeValue(forKey: key) else {
                state.expired.insert(key)
                return nil
            }
            return waiter
        }
        waiter?.continuation.resume()
    }

    /// The first matching entry, waiting for it up to `timeout`.
    public func first(timeout: Duration = .seconds(15), where predicate: @escaping @Sendable (Entry) -> Bool) async -> Entry? {
        await wait(for: 1, timeout: timeout, where: predicate).first
    }

    /// A logger whose every entry (from `level` up) lands here.
    public func logger(label: String = "test", level: Logger.Level = .trace) -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var merged = metadata
            if let extra = event.metadata { merged.merge(extra) { _, new in new } }
            capture.append(.init(level: event.level, message: event.message.description, metadata: merged.mapValues { "\($0)" }))
        }
    }
}
