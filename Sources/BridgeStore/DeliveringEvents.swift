import BridgeCore
import Synchronization

/// Events this process routed, as values, until every sink's cursor has passed them: a claim of
/// a cursor delivery takes its event from here instead of reading the event's row and parsing
/// it again. Without it each sink parsed each event once more (issue 16: with two sinks, two
/// parses of about 6 µs each per notification, after the one routing reads from
/// ``RecentEvents``).
///
/// The file stays the truth; this serves an event only in its routed form, added after the
/// routing commit that wrote that form (``SQLiteStateStore/commitRouting(_:now:)``): the form
/// routing passed when it changed the event, else the journaled form, from ``RecentEvents`` or
/// from the file's rows routing read (kept here as candidates, never served before their
/// routing). A claim that does not find an event here reads the file, as before. Nothing
/// rewrites an event's body after its routing.
///
/// Bounded: at most `capacity` events (a parsed event takes a few KB); past it the oldest go
/// first, and their sinks read them from the file. Events at or below every sink's cursor are
/// dropped as the cursors pass them, in the order they came: one routed ahead of the mark (its
/// enrichment finished first) stays behind a later-numbered one until room is needed.
final class DeliveringEvents: Sendable {
    private struct State {
        var events: [Int64: BridgeEvent] = [:]
        /// Journaled forms read from the file for routing: not served until routed.
        var journaled: [Int64: BridgeEvent] = [:]
        /// Sequence numbers in the order they came, oldest first, from `head` on (entries before
        /// `head` were dropped; some after it may be gone from `events` too).
        var order: [Int64] = []
        var head = 0

        /// Drops the oldest while `condition(sequence, events held)` holds.
        mutating func dropOldest(while condition: (Int64, Int) -> Bool) {
            while head < order.count, condition(order[head], events.count) {
                events[order[head]] = nil
                head += 1
            }
            if head > 1024, head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int = 2048) {
        self.capacity = capacity
    }

    /// Unrouted events read from the file, in their journaled form: candidates for ``routed(_:)``.
    func read(_ events: [PendingEvent]) {
        guard !events.isEmpty else { return }
        state.withLock { state in
            if state.journaled.count + events.count > capacity { state.journaled = [:] }  // for room: the file answers
            for pending in events { state.journaled[pending.sequence] = pending.event }
        }
    }

    /// The journaled form of `sequence` read from the file, if ``read(_:)`` kept it.
    func journaledForm(_ sequence: Int64) -> BridgeEvent? {
        state.withLock { $0.journaled[sequence] }
    }

    /// After a routing commit: these events are routed, in this form.
    func routed(_ events: [(sequence: Int64, event: BridgeEvent)]) {
        guard !events.isEmpty else { return }
        state.withLock { state in
            for (sequence, event) in events {
                state.journaled[sequence] = nil
                if state.events.updateValue(event, forKey: sequence) == nil { state.order.append(sequence) }
            }
            let capacity = self.capacity
            state.dropOldest { _, held in held > capacity }
        }
    }

    func event(_ sequence: Int64) -> BridgeEvent? {
        state.withLock { $0.events[sequence] }
    }

    /// Every sink's cursor is at or past `sequence`: the events up to it are delivered everywhere.
    func delivered(through sequence: Int64) {
        state.withLock { state in
            state.dropOldest { oldest, _ in oldest <= sequence }
        }
    }

    /// Events held (tests).
    var count: Int { state.withLock { $0.events.count } }
}
