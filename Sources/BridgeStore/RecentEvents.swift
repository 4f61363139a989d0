import BridgeCore
import Synchronization

/// The events this process journaled and has not routed yet, as values, so routing takes them
/// from memory instead of reading their rows back and parsing them again (issue 16: a read on
/// a reader thread and a parse per event, about a tenth of a notification's CPU).
///
/// The file stays the truth; this only answers ``unrouted(after:replica:limit:)`` when it can
/// answer exactly as the file would, and says `nil` (ask the file) otherwise:
/// - events journaled before it began (a restart's backlog) or dropped for room are below
///   `completeAbove`, and a read that starts below it goes to the file;
/// - sequence numbers above the routed-through mark are consecutive in the file (the journal
///   gives them one by one and prunes only at or below the mark), so an answer is the run of
///   consecutive numbers after the start: the first number it does not hold ends the answer.
///   An event committed but not yet added here (its journal call has not returned) ends the run
///   early; the caller reads again when that call rings its doorbell.
/// - An event the dispatcher read from the file and routed ahead of the mark before its journal
///   call added it here is not flagged here; served again (after a rewind), it is skipped by
///   `commitRouting`, which checks the file's flag, as for any event routed twice.
///
/// One process writes a SQLite file (its lock says so), so every event journaled into it after
/// the start passes through ``journaled(_:)``.
final class RecentEvents: Sendable {
    struct Entry: Sendable {
        var pending: PendingEvent
        /// The replica that accepted it (`events.accepted_by`).
        var acceptedBy: String?
        /// Routed ahead of the mark (`events.routed = 1`).
        var routed = false
    }

    private struct State {
        var entries: [Int64: Entry] = [:]
        /// Every event journaled with a higher number is here until the mark passes it.
        var completeAbove: Int64
        /// The routed-through mark, as of the last routing commit.
        var mark: Int64
    }

    private let state: Mutex<State>
    /// At most this many events are kept (bounded memory: a parsed event takes a few KB; four
    /// routing batches' worth); past it they are dropped and read from the file until routing
    /// catches up.
    let capacity: Int

    init(mark: Int64, lastSequence: Int64, capacity: Int = 1024) {
        self.capacity = capacity
        state = Mutex(State(completeAbove: max(mark, lastSequence), mark: mark))
    }

    /// After a journal commit: these events are in the file under their sequence numbers.
    func journaled(_ entries: [Entry]) {
        guard let highest = entries.map(\.pending.sequence).max() else { return }
        state.withLock { state in
            if state.entries.count + entries.count > capacity {
                // No room: forget them all; reads below `highest` go to the file.
                state.entries = [:]
                state.completeAbove = max(state.completeAbove, highest)
                return
            }
            for entry in entries where entry.pending.sequence > state.mark {
                state.entries[entry.pending.sequence] = entry
            }
        }
    }

    /// After a routing commit: the mark is now `mark`, and `routed` (those above it) are flagged.
    func routed(_ routed: Set<Int64>, mark: Int64) {
        state.withLock { state in
            if mark > state.mark {
                state.mark = mark
                state.entries = state.entries.filter { $0.key > mark }
            }
            for sequence in routed where sequence > mark {
                state.entries[sequence]?.routed = true
            }
        }
    }

    /// What the file would answer to "the unrouted events above `max(after, mark)` that `replica`
    /// accepted (or nobody did), oldest first, at most `limit`"; nil when only the file can tell.
    func unrouted(after sequence: Int64, replica: String?, limit: Int) -> [PendingEvent]? {
        state.withLock { state in
            var next = max(sequence, state.mark)
            guard next >= state.completeAbove else { return nil }
            var answer: [PendingEvent] = []
            while answer.count < limit, let entry = state.entries[next + 1] {
                next += 1
                guard !entry.routed else { continue }
                if let replica, let acceptedBy = entry.acceptedBy, acceptedBy != replica { continue }
                answer.append(entry.pending)
            }
            return answer
        }
    }

    /// The journaled form of `sequence`, if held.
    func event(_ sequence: Int64) -> BridgeEvent? {
        state.withLock { $0.entries[sequence]?.pending.event }
    }

    /// Forgets everything up to `sequence` (the highest in the file): adoption changed whose
    /// events they are, so the file answers until routing passes them.
    func forget(through sequence: Int64) {
        state.withLock { state in
            state.entries = [:]
            state.completeAbove = max(state.completeAbove, sequence)
        }
    }
}
