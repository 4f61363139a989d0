import Synchronization

/// The SQLite store's per-sink cursors: deliveries that are a position in the journal, not a row.
///
/// Routing an event in order writes no delivery rows. It extends a *route range* (`routes`: a run
/// of consecutive sequence numbers routed to the same sinks, usually one row for a long stream),
/// and each sink keeps a *cursor* (`sink_cursors.through`): every delivery of that sink at or
/// below it is done. A delivery between a sink's cursor and the routed-through mark is pending
/// unless this process knows it is done. Its id is ``deliveryID(sequence:slot:)``, a function of
/// the event and the sink, so it is the same before and after it becomes a row.
///
/// Rows are written only for what must wait: a retry, a dead letter, an event routed ahead of
/// the mark (its subscription's enrichment finished first), and *stragglers*: when more than
/// ``doneLimit`` deliveries past a sink's cursor are done while an older one is still in flight,
/// the older ones become rows so the cursor can pass them. A success of a delivery that is not a
/// row writes nothing but the cursor, and only when the cursor moves.
///
/// What is done past a cursor lives in memory only: a process killed after a success and before
/// its cursor moved delivers those deliveries again (at least once, as before), at most the
/// sink's in-flight deliveries plus ``doneLimit``.
///
/// This type is the in-memory mirror. The store's writes decide from the database inside their
/// transaction (it is the authority; several writes share one transaction in the group
/// committer) and apply what they changed here after the commit, with operations that commute:
/// a range's end only grows, a cursor only moves forward, a done mark is only added or dropped
/// below the cursor. Claims read the mirror; it may lag the file by a commit, never lead it.
final class SinkCursors: Sendable {
    /// Ids of cursor deliveries start here (2^52: ids stay exact as JSON numbers); older rows have
    /// small `AUTOINCREMENT` ids.
    static let idBase: Int64 = 1 << 52
    /// Sink slots per state file (the low bits of an id).
    static let slotBits = 10
    static let slotLimit = 1 << slotBits

    /// A run of consecutive sequence numbers routed in order to the same sinks (`slots`, sorted).
    /// Its deliveries are due from `routedAt`, the time its first event was routed (later ones,
    /// routed after it, are due no later than they were).
    struct Range: Sendable, Equatable {
        var first: Int64
        var last: Int64
        var slots: [Int]
        var routedAt: Double

        /// `slots` as the `routes.slots` column holds them.
        var slotText: String { slots.map(String.init).joined(separator: ",") }
        static func slots(_ text: String) -> [Int] { text.split(separator: ",").compactMap { Int($0) } }
    }

    struct Cursor: Sendable {
        var sink: String
        /// Every delivery of this sink at or below it is done (as the file says, or behind it).
        var through: Int64
        /// Done past `through`: delivered, or a row now.
        var done: Set<Int64> = []
    }

    struct State: Sendable {
        /// Sorted by `first`, disjoint.
        var ranges: [Range] = []
        /// By slot.
        var cursors: [Int: Cursor] = [:]
    }

    /// How many deliveries past a cursor may be done before the older pending ones become rows.
    let doneLimit: Int
    private let state: Mutex<State>

    init(_ state: State = State(), doneLimit: Int = 1024) {
        self.state = Mutex(state)
        self.doneLimit = doneLimit
    }

    static func deliveryID(sequence: Int64, slot: Int) -> Int64 {
        idBase + (sequence << slotBits) + Int64(slot)
    }

    /// The event and sink slot of a cursor delivery's id; nil for an id of an older row.
    static func decode(_ id: Int64) -> (sequence: Int64, slot: Int)? {
        guard id >= idBase else { return nil }
        let rest = id - idBase
        return (rest >> slotBits, Int(rest & Int64(slotLimit - 1)))
    }

    // MARK: Reading

    /// A handful of sinks: a look through them, not a second map to keep in step.
    func slot(of sink: String) -> Int? { state.withLock { $0.cursors.first { $0.value.sink == sink }?.key } }

    /// The first `limit` pending deliveries of `slot` (sequence numbers and due dates, oldest
    /// first) that `skip` does not leave out.
    func pending(slot: Int, limit: Int, skip: (Int64) -> Bool = { _ in false }) -> [(sequence: Int64, due: Double)] {
        guard limit > 0 else { return [] }
        return state.withLock { state in
            guard let cursor = state.cursors[slot] else { return [] }
            var found: [(sequence: Int64, due: Double)] = []
            Self.walk(state.ranges, slot: slot, after: cursor.through) { sequence, range in
                if !cursor.done.contains(sequence) && !skip(sequence) { found.append((sequence, range.routedAt)) }
                return found.count < limit
            }
            return found
        }
    }

    /// Pending deliveries per sink.
    func pendingCounts() -> [String: Int] {
        state.withLock { state in
            var counts: [String: Int] = [:]
            for (slot, cursor) in state.cursors {
                var count = 0
                for range in state.ranges[Self.firstRange(state.ranges, after: cursor.through)...] where range.slots.contains(slot) {
                    count += Int(range.last - max(range.first, cursor.through + 1) + 1)
                }
                count -= cursor.done.count
                if count > 0 { counts[cursor.sink] = count }
            }
            return counts
        }
    }

    /// Whether `sequence` is done for `slot`: at or below its cursor, or marked.
    func isDone(sequence: Int64, slot: Int) -> Bool {
        state.withLock { state in
            guard let cursor = state.cursors[slot] else { return true }
            return sequence <= cursor.through || cursor.done.contains(sequence)
        }
    }

    /// A number at or below which every sink's cursor deliveries are done (nil: nothing routed
    /// in order yet): the lowest cursor of the sinks with a range past it. A sink nothing is
    /// routed to any more (removed from the configuration) does not hold it back.
    func deliveredThrough() -> Int64? {
        state.withLock { state in
            var lowest: Int64?
            for (slot, cursor) in state.cursors
            where state.ranges[Self.firstRange(state.ranges, after: cursor.through)...].contains(where: { $0.slots.contains(slot) }) {
                lowest = min(lowest ?? cursor.through, cursor.through)
            }
            return lowest ?? state.ranges.last?.last
        }
    }

    /// The done marks of `slot` past its cursor.
    func done(slot: Int) -> Set<Int64> { state.withLock { $0.cursors[slot]?.done ?? [] } }

    // MARK: Changing (after a commit, or marks that are true whatever the commit does)

    /// Marks deliveries done: delivered, or rows now.
    func markDone(_ sequences: [Int64], slot: Int) {
        state.withLock { state in
            guard var cursor = state.cursors[slot] else { return }
            for sequence in sequences where sequence > cursor.through { cursor.done.insert(sequence) }
            state.cursors[slot] = cursor
        }
    }

    /// The file's cursor of `slot` moved to `through`.
    func advance(slot: Int, to through: Int64) {
        state.withLock { state in
            guard var cursor = state.cursors[slot], through > cursor.through else { return }
            cursor.through = through
            cursor.done = cursor.done.filter { $0 > through }
            state.cursors[slot] = cursor
        }
    }

    /// A sink got its slot and cursor in the file.
    func addSink(_ sink: String, slot: Int, through: Int64) {
        state.withLock { state in
            guard state.cursors[slot] == nil else { return }
            state.cursors[slot] = Cursor(sink: sink, through: through)
        }
    }

    /// A range was written (new, or its end moved on).
    func upsert(_ range: Range) {
        state.withLock { state in
            let index = Self.insertionIndex(state.ranges, first: range.first)
            if index < state.ranges.count, state.ranges[index].first == range.first {
                state.ranges[index].last = max(state.ranges[index].last, range.last)
            } else {
                state.ranges.insert(range, at: index)
            }
        }
    }

    /// Ranges the file deleted.
    func removeRanges(firsts: Set<Int64>) {
        guard !firsts.isEmpty else { return }
        state.withLock { state in state.ranges.removeAll { firsts.contains($0.first) } }
    }

    // MARK: Walking ranges

    /// Calls `visit` with each sequence number of `slot` in `ranges` past `through`, in order,
    /// until it returns false.
    static func walk(_ ranges: [Range], slot: Int, after through: Int64, _ visit: (Int64) -> Bool) {
        walk(ranges, slot: slot, after: through) { sequence, _ in visit(sequence) }
    }

    /// ``walk(_:slot:after:_:)`` with the range of each sequence number.
    static func walk(_ ranges: [Range], slot: Int, after through: Int64, _ visit: (Int64, Range) -> Bool) {
        for range in ranges[firstRange(ranges, after: through)...] where range.slots.contains(slot) {
            var sequence = max(range.first, through + 1)
            while sequence <= range.last {
                if !visit(sequence, range) { return }
                sequence += 1
            }
        }
    }

    /// How far a cursor at `through` moves over the done deliveries `done` in `ranges`: the last
    /// sequence number of an unbroken run of done ones. Stops at the end of `ranges`: a delivery
    /// the ranges do not hold yet is never passed.
    static func advanced(_ ranges: [Range], slot: Int, from through: Int64, done: Set<Int64>) -> Int64 {
        var moved = through
        walk(ranges, slot: slot, after: through) { sequence in
            guard done.contains(sequence) else { return false }
            moved = sequence
            return true
        }
        return moved
    }

    /// The index of the first range that ends past `through`.
    static func firstRange(_ ranges: [Range], after through: Int64) -> Int {
        var low = 0, high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].last <= through { low = middle + 1 } else { high = middle }
        }
        return low
    }

    private static func insertionIndex(_ ranges: [Range], first: Int64) -> Int {
        var low = 0, high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].first < first { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
