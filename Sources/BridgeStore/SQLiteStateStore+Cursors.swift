import BridgeCore
import Foundation
import GRDB

/// The database side of ``SinkCursors``: what the store's writes read and write inside their
/// transaction, and what they hand back to apply to the mirror after the commit.
extension SQLiteStateStore {
    /// What a write changed in the cursors, applied to the mirror once it committed.
    struct CursorChanges: Sendable {
        var sinks: [(sink: String, slot: Int, through: Int64)] = []
        var ranges: [SinkCursors.Range] = []
        /// Per slot: deliveries that became rows (done for the cursor), and where the cursor moved.
        var done: [Int: [Int64]] = [:]
        var through: [Int: Int64] = [:]
        var removedRanges: Set<Int64> = []
        /// Rows were inserted in `deliveries` (routed out of order).
        var rowsAdded = false

        mutating func merge(_ move: CursorMove, slot: Int) {
            done[slot, default: []] += move.materialized
            if let moved = move.through { through[slot] = max(through[slot] ?? moved, moved) }
        }
    }

    struct CursorMove: Sendable {
        var through: Int64?
        var materialized: [Int64] = []
    }

    func apply(_ changes: CursorChanges) {
        // Deliveries that became rows (stragglers, retries, dead letters), or rows routed out of order.
        if changes.rowsAdded || changes.done.values.contains(where: { !$0.isEmpty }) { pendingRows.mayHaveAdded() }
        for added in changes.sinks { cursors.addSink(added.sink, slot: added.slot, through: added.through) }
        for range in changes.ranges { cursors.upsert(range) }
        for (slot, sequences) in changes.done { cursors.markDone(sequences, slot: slot) }
        for (slot, through) in changes.through { cursors.advance(slot: slot, to: through) }
        cursors.removeRanges(firsts: changes.removedRanges)
        if !changes.through.isEmpty, let delivered = cursors.deliveredThrough() { delivering.delivered(through: delivered) }
    }

    /// The mirror as the file holds it (at open).
    static func loadCursors(_ db: Database) throws -> SinkCursors.State {
        var state = SinkCursors.State()
        state.ranges = try Row.fetchAll(db, sql: "SELECT first, last, slots, routed_at FROM route_ranges ORDER BY first").map(range)
        for row in try Row.fetchAll(db, sql: "SELECT slot, sink, through FROM sink_cursors WHERE slot >= 0") {
            let slot: Int = row["slot"]
            state.cursors[slot] = SinkCursors.Cursor(sink: row["sink"], through: row["through"])
        }
        // Deliveries past a cursor that are rows now (a retry, a dead letter, a straggler) are done
        // for it. A row of an event routed ahead of the mark is in no range: not the cursor's.
        for id in try Int64.fetchAll(db, sql: "SELECT id FROM deliveries WHERE id >= ?", arguments: [SinkCursors.idBase]) {
            guard let (sequence, slot) = SinkCursors.decode(id), let through = state.cursors[slot]?.through, sequence > through else { continue }
            let index = SinkCursors.firstRange(state.ranges, after: sequence - 1)
            guard index < state.ranges.count, state.ranges[index].first <= sequence, state.ranges[index].slots.contains(slot) else { continue }
            state.cursors[slot]?.done.insert(sequence)
        }
        return state
    }

    /// The slot of `sink`, giving it one (and a cursor at `mark`: nothing before it went to it) when new.
    static func slot(for sink: String, mark: Int64, _ db: Database, _ changes: inout CursorChanges) throws -> Int {
        if let slot = try Int.fetchOne(db.cachedStatement(sql: "SELECT slot FROM sink_cursors WHERE sink = ?"), arguments: [sink]) {
            return slot
        }
        let slot = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(slot) + 1, 0) FROM sink_cursors") ?? 0
        guard slot < SinkCursors.slotLimit else {
            throw StoreError.internalInconsistency("the state file has had \(SinkCursors.slotLimit) sink names; sink \(sink) gets no slot (use a new state file)")
        }
        try db.execute(sql: "INSERT INTO sink_cursors(slot, sink, through) VALUES (?, ?, ?)", arguments: [slot, sink, mark])
        changes.sinks.append((sink, slot, mark))
        return slot
    }

    /// Writes the ranges of events routed in order (`routed`: sequence number and sorted slots,
    /// by sequence), extending the file's last range when the first run continues it.
    ///
    /// The last range written is *open* (schema `v8-open-route-range`): rows -2 and -3 of
    /// `sink_cursors` hold its first number and its end, and the `route_ranges` view reads that
    /// end in place of the row's `last`. A stream routed on to the same sinks then moves only the
    /// open end, on the page the routing mark's move writes anyway, not the `routes` row's page.
    /// Before another range becomes the open one, the open end is written into its row. Only this
    /// function adds or extends rows, and it opens the newest one each time, so the open range,
    /// while its row exists (pruning may delete it), is the row with the greatest `first`: the one
    /// an extension extends.
    static func writeRanges(_ routed: [(sequence: Int64, slots: [Int])], at routedAt: Double, _ db: Database, _ changes: inout CursorChanges) throws {
        var runs: [SinkCursors.Range] = []
        for (sequence, slots) in routed where !slots.isEmpty {
            if let last = runs.last, last.last == sequence - 1, last.slots == slots {
                runs[runs.count - 1].last = sequence
            } else {
                runs.append(SinkCursors.Range(first: sequence, last: sequence, slots: slots, routedAt: routedAt))
            }
        }
        guard !runs.isEmpty else { return }
        if let last = try Row.fetchOne(db.cachedStatement(sql: "SELECT first, last, slots, routed_at FROM route_ranges ORDER BY first DESC LIMIT 1")).map(range),
            last.last == runs[0].first - 1, last.slots == runs[0].slots, last.routedAt <= routedAt
        {
            runs[0].first = last.first
            runs[0].routedAt = last.routedAt
            let extended = runs.removeFirst()
            if runs.isEmpty {
                try openRange(extended, db)
            } else {
                try db.cachedStatement(sql: "UPDATE routes SET last = ? WHERE first = ?").execute(arguments: [extended.last, extended.first])
            }
            changes.ranges.append(extended)
        }
        guard let newest = runs.last else { return }
        // The open range's end goes into its row before another range is the open one.
        let (openFirst, openEnd) = (ProgressRow.openRangeFirst.value, ProgressRow.openRangeEnd.value)
        try db.cachedStatement(sql: "UPDATE routes SET last = \(openEnd) WHERE first = \(openFirst) AND last < \(openEnd)").execute()
        let insert = try db.cachedStatement(sql: "INSERT INTO routes(first, last, slots, routed_at) VALUES (?, ?, ?, ?)")
        for run in runs {
            try insert.execute(arguments: [run.first, run.last, run.slotText, run.routedAt])
            changes.ranges.append(run)
        }
        try openRange(newest, db)
    }

    /// Makes `range` (a row of `routes`, or about to be one) the open range, ending at its `last`.
    private static func openRange(_ range: SinkCursors.Range, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO sink_cursors(slot, sink, through) VALUES (?, char(0) || 'open range first', ?), (?, char(0) || 'open range end', ?)
            ON CONFLICT(slot) DO UPDATE SET through = excluded.through
            """).execute(arguments: [ProgressRow.openRangeFirst.rawValue, range.first, ProgressRow.openRangeEnd.rawValue, range.last])
    }

    private static func range(_ row: Row) -> SinkCursors.Range {
        SinkCursors.Range(first: row["first"], last: row["last"], slots: SinkCursors.Range.slots(row["slots"]), routedAt: row["routed_at"])
    }

    /// The file's ranges that end past `through`, oldest first, at most `limit`.
    static func ranges(after through: Int64, limit: Int = Int.max, _ db: Database) throws -> [SinkCursors.Range] {
        try Row.fetchAll(db.cachedStatement(sql: "SELECT first, last, slots, routed_at FROM route_ranges WHERE last > ? ORDER BY first LIMIT ?"), arguments: [through, limit]).map(range)
    }

    static func through(slot: Int, _ db: Database) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT through FROM sink_cursors WHERE slot = ?"), arguments: [slot])
    }

    /// Moves `slot`'s cursor in the file over its done deliveries (the mirror's marks and
    /// `alsoDone`, which this transaction made rows). When more than the limit are done past it,
    /// the pending ones older than the newest done one become rows first (stragglers), so the
    /// cursor passes them.
    func moveCursor(slot: Int, alsoDone: [Int64] = [], _ db: Database) throws -> CursorMove {
        guard let through = try Self.through(slot: slot, db) else { return CursorMove() }
        var done = cursors.done(slot: slot)
        done.formUnion(alsoDone)
        // Enough ranges to pass every done mark: a walk never goes past the ranges it reads.
        let ranges = try Self.ranges(after: through, limit: 4 * cursors.doneLimit + 64, db)
        var moved = SinkCursors.advanced(ranges, slot: slot, from: through, done: done)
        var move = CursorMove()
        var stragglers: [(sequence: Int64, routedAt: Double)] = []
        let stillDone = done.filter { $0 > moved }
        if stillDone.count > cursors.doneLimit, let newest = stillDone.max() {
            // Due when their range was routed, as they were; a claim on one holds (same id).
            let insert = try db.cachedStatement(sql: """
                INSERT OR IGNORE INTO deliveries(id, event_seq, sink, created_at, next_attempt_at)
                SELECT ?, seq, (SELECT sink FROM sink_cursors WHERE slot = ?), received_at, ? FROM events WHERE seq = ?
                """)
            SinkCursors.walk(ranges, slot: slot, after: moved) { sequence, range in
                guard sequence < newest else { return false }
                if !done.contains(sequence) {
                    move.materialized.append(sequence)
                    stragglers.append((sequence, range.routedAt))
                }
                return true
            }
            for (sequence, routedAt) in stragglers {
                try insert.execute(arguments: [SinkCursors.deliveryID(sequence: sequence, slot: slot), slot, routedAt, sequence])
            }
            done.formUnion(move.materialized)
            moved = SinkCursors.advanced(ranges, slot: slot, from: moved, done: done)
        }
        if moved > through {
            try db.cachedStatement(sql: "UPDATE sink_cursors SET through = ? WHERE slot = ?").execute(arguments: [moved, slot])
            move.through = moved
        }
        return move
    }

    /// Makes a cursor delivery (`id` decodes to one) a row with `status`, unless it is done or
    /// not pending; returns its slot and sequence number when it did.
    func materialize(
        _ id: Int64, status: Int, attempts: Int, nextAttemptAt: Double, error: String, deadAt: Double?, _ db: Database
    ) throws -> (slot: Int, sequence: Int64)? {
        guard let (sequence, slot) = SinkCursors.decode(id), !cursors.isDone(sequence: sequence, slot: slot),
            let through = try Self.through(slot: slot, db), sequence > through
        else { return nil }
        try db.cachedStatement(sql: """
            INSERT INTO deliveries(id, event_seq, sink, status, attempts, created_at, next_attempt_at, last_error, dead_at)
            SELECT ?, seq, (SELECT sink FROM sink_cursors WHERE slot = ?), ?, ?, received_at, ?, ?, ? FROM events WHERE seq = ?
            """).execute(arguments: [id, slot, status, attempts, nextAttemptAt, error, deadAt, sequence])
        return db.changesCount == 1 ? (slot, sequence) : nil
    }

    /// The deliveries with these ids, rows or cursor deliveries, in the order given; ids that are
    /// neither (a row deleted since) are left out.
    func deliveries(_ ids: [Int64], sink: String, _ db: Database) throws -> [Delivery] {
        guard !ids.isEmpty else { return [] }
        let list = "[" + ids.map(String.init).joined(separator: ",") + "]"
        var found: [Int64: Delivery] = [:]
        let rows = try db.cachedStatement(sql: """
            SELECT d.id, d.attempts, d.created_at, e.body FROM deliveries d JOIN events e ON e.seq = d.event_seq
            WHERE d.id IN (SELECT value FROM json_each(?))
            """)
        for row in try Row.fetchAll(rows, arguments: [list]) {
            let id: Int64 = row["id"]
            found[id] = Delivery(id: id, sink: sink, event: try Self.event(row["body"]), attempts: row["attempts"], createdAt: Date(timeIntervalSince1970: row["created_at"]))
        }
        let virtual = ids.filter { found[$0] == nil }.compactMap { id in SinkCursors.decode(id).map { (id, $0.sequence) } }
        if !virtual.isEmpty {
            // Events routed by this process come from memory; the rest from their rows.
            var unread: [(id: Int64, sequence: Int64)] = []
            for (id, sequence) in virtual {
                if let event = delivering.event(sequence) {
                    found[id] = Delivery(id: id, sink: sink, event: event, attempts: 0, createdAt: event.receivedAt)
                } else {
                    unread.append((id, sequence))
                }
            }
            if !unread.isEmpty {
                let sequences = "[" + unread.map { String($0.sequence) }.joined(separator: ",") + "]"
                var events: [Int64: (String, Double)] = [:]
                let bodies = try db.cachedStatement(sql: "SELECT seq, body, received_at FROM events WHERE seq IN (SELECT value FROM json_each(?))")
                for row in try Row.fetchAll(bodies, arguments: [sequences]) {
                    events[row["seq"]] = (row["body"], row["received_at"])
                }
                for (id, sequence) in unread {
                    guard let (body, receivedAt) = events[sequence] else { continue }
                    found[id] = Delivery(id: id, sink: sink, event: try Self.event(body), attempts: 0, createdAt: Date(timeIntervalSince1970: receivedAt))
                }
            }
        }
        return ids.compactMap { found[$0] }
    }

    /// The due deliveries of `sink` in claim order (due date, then id): rows due by `now` and
    /// cursor deliveries (due since their range was routed), at most `count`, leaving out `skip`.
    func dueCandidates(sink: String, now: Double, count: Int, skip: (Int64) -> Bool, _ db: Database) throws -> [(id: Int64, due: Double)] {
        var candidates: [(id: Int64, due: Double)] = []
        let rows = try db.cachedStatement(sql: """
            SELECT id, next_attempt_at FROM deliveries WHERE sink = ? AND status = 0 AND next_attempt_at <= ?
            ORDER BY next_attempt_at, id LIMIT ?
            """)
        for row in try Row.fetchAll(rows, arguments: [sink, now, count]) {
            let id: Int64 = row["id"]
            if !skip(id) { candidates.append((id, row["next_attempt_at"])) }
        }
        if let slot = cursors.slot(of: sink) {
            for (sequence, due) in cursors.pending(slot: slot, limit: count, skip: { skip(SinkCursors.deliveryID(sequence: $0, slot: slot)) }) where due <= now {
                candidates.append((SinkCursors.deliveryID(sequence: sequence, slot: slot), due))
            }
        }
        candidates.sort { ($0.due, $0.id) < ($1.due, $1.id) }
        return Array(candidates.prefix(count))
    }

    /// The earliest due date of a pending delivery of `sink` that `skip` does not leave out.
    func earliestDue(sink: String, skip: (Int64) -> Bool, rowsLimit: Int, _ db: Database) throws -> Double? {
        var earliest: Double?
        let statement = try db.cachedStatement(sql: """
            SELECT id, next_attempt_at FROM deliveries WHERE sink = ? AND status = 0 ORDER BY next_attempt_at, id LIMIT ?
            """)
        for row in try Row.fetchAll(statement, arguments: [sink, rowsLimit]) {
            let id: Int64 = row["id"]
            if !skip(id) {
                earliest = row["next_attempt_at"]
                break
            }
        }
        if let slot = cursors.slot(of: sink),
            let due = cursors.pending(slot: slot, limit: 1, skip: { skip(SinkCursors.deliveryID(sequence: $0, slot: slot)) }).first?.due
        {
            earliest = min(earliest ?? due, due)
        }
        return earliest
    }

    /// Every pending cursor delivery of the sinks not in `kept` becomes a dead letter; their
    /// cursors move to the end of their ranges. Counts per sink.
    func retireCursorDeliveries(exceptFor kept: Set<String>, error: String, at deadAt: Double, _ db: Database, _ changes: inout CursorChanges) throws -> [String: Int] {
        var retired: [String: Int] = [:]
        let insert = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO deliveries(id, event_seq, sink, status, attempts, created_at, next_attempt_at, last_error, dead_at)
            SELECT ?, seq, ?, 1, 0, received_at, received_at, ?, ? FROM events WHERE seq = ?
            """)
        for row in try Row.fetchAll(db, sql: "SELECT slot, sink, through FROM sink_cursors WHERE slot >= 0") {
            let sink: String = row["sink"]
            guard !kept.contains(sink) else { continue }
            let slot: Int = row["slot"]
            let through: Int64 = row["through"]
            let done = cursors.done(slot: slot)
            var end = through
            var dead: [Int64] = []
            SinkCursors.walk(try Self.ranges(after: through, db), slot: slot, after: through) { sequence in
                end = sequence
                if !done.contains(sequence) { dead.append(sequence) }
                return true
            }
            for sequence in dead {
                try insert.execute(arguments: [SinkCursors.deliveryID(sequence: sequence, slot: slot), sink, error, deadAt, sequence])
            }
            if !dead.isEmpty { retired[sink] = dead.count }
            if end > through {
                try db.cachedStatement(sql: "UPDATE sink_cursors SET through = ? WHERE slot = ?").execute(arguments: [end, slot])
                changes.through[slot] = end
            }
        }
        return retired
    }

    /// Below which sequence number every event's cursor deliveries are done (the file's cursors),
    /// and the ranges that are done for every sink (to delete).
    static func cursorPruneLimit(_ db: Database) throws -> (limit: Int64, doneRanges: [Int64]) {
        var through: [Int: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT slot, through FROM sink_cursors WHERE slot >= 0") { through[row["slot"]] = row["through"] }
        var limit = Int64.max
        var doneRanges: [Int64] = []
        for range in try ranges(after: Int64.min, db) {
            var done = true
            for slot in range.slots {
                let cursor = through[slot] ?? Int64.max
                if cursor < range.last {
                    done = false
                    limit = min(limit, max(range.first, cursor + 1) - 1)
                }
            }
            if done { doneRanges.append(range.first) }
        }
        return (limit, doneRanges)
    }
}
