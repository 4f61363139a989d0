import BridgeCore
import Foundation
import GRDB
import TestSupport
import Testing

@testable import BridgeStore

/// The SQLite store's per-sink cursors (issue 16): a delivery routed in order is a position in the
/// journal until it must wait. The contract suite checks the behaviour every store shares; these
/// check what the file holds, and what a process killed between any two writes leaves.
@Suite("SQLite store: per-sink cursors")
struct SinkCursorTests {
    /// A new state file in a folder of its own, removed when `body` returns.
    static func withFile(_ body: (String) async throws -> Void) async throws {
        let directory = TemporaryDirectory()
        try await body(directory.file("state.sqlite"))
    }

    static func open(_ path: String, doneLimit: Int = 1024) throws -> SQLiteStateStore {
        try SQLiteStateStore(path: path, walSizeLimit: SQLiteStateStore.walSizeLimit, cursorDoneLimit: doneLimit, logger: quietLogger)
    }

    static func count(_ store: SQLiteStateStore, _ sql: String) async throws -> Int {
        try await store.pool.read { db in try Int.fetchOne(db, sql: sql) ?? -1 }
    }

    static func through(_ store: SQLiteStateStore, _ sink: String) async throws -> Int64? {
        try await store.pool.read { db in try Int64.fetchOne(db, sql: "SELECT through FROM sink_cursors WHERE sink = ?", arguments: [sink]) }
    }

    static let replica = ReplicaID("cursor-tests")

    static func events(_ count: Int, from offset: Int = 0) -> [BridgeEvent] {
        (offset..<(offset + count)).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
    }

    // MARK: The in-memory model

    @Test("an id names its event and sink slot, and stays exact as a JSON number")
    func ids() {
        let id = SinkCursors.deliveryID(sequence: 123_456_789, slot: 1023)
        let decoded = SinkCursors.decode(id)
        #expect(decoded?.sequence == 123_456_789 && decoded?.slot == 1023)
        #expect(SinkCursors.decode(42) == nil, "an older row's id is no cursor delivery")
        #expect(Double(SinkCursors.deliveryID(sequence: 1 << 41, slot: 7)) < 9_007_199_254_740_992)
    }

    @Test("a cursor moves over an unbroken run of done deliveries of its own sink only, never past the ranges")
    func advance() {
        let ranges = [
            SinkCursors.Range(first: 1, last: 3, slots: [0, 1], routedAt: 0),
            SinkCursors.Range(first: 4, last: 5, slots: [1], routedAt: 0),
            SinkCursors.Range(first: 6, last: 8, slots: [0], routedAt: 0),
        ]
        #expect(SinkCursors.advanced(ranges, slot: 0, from: 0, done: [1, 2, 3, 6, 8]) == 6, "4 and 5 are not slot 0's; 7 is pending")
        #expect(SinkCursors.advanced(ranges, slot: 0, from: 0, done: [2, 3]) == 0, "1 is pending")
        #expect(SinkCursors.advanced(ranges, slot: 1, from: 0, done: [1, 2, 3, 4, 5, 6]) == 5, "6 is not slot 1's, and nothing past 5 is known")
        #expect(SinkCursors.advanced(ranges, slot: 0, from: 7, done: [8, 9]) == 8, "9 is in no range: not passed")
    }

    @Test("pending lists a sink's deliveries past its cursor that are not done, with their ranges' routing time")
    func pending() {
        var state = SinkCursors.State()
        state.ranges = [
            SinkCursors.Range(first: 1, last: 4, slots: [0], routedAt: 10),
            SinkCursors.Range(first: 5, last: 6, slots: [0, 1], routedAt: 20),
        ]
        state.cursors = [0: SinkCursors.Cursor(sink: "a", through: 1, done: [3]), 1: SinkCursors.Cursor(sink: "b", through: 0)]
        let cursors = SinkCursors(state)
        #expect(cursors.pending(slot: 0, limit: 10).map(\.sequence) == [2, 4, 5, 6])
        #expect(cursors.pending(slot: 0, limit: 10).map(\.due) == [10, 10, 20, 20])
        #expect(cursors.pending(slot: 0, limit: 2, skip: { $0 == 2 }).map(\.sequence) == [4, 5])
        #expect(cursors.pendingCounts() == ["a": 4, "b": 2])
        cursors.advance(slot: 0, to: 4)
        #expect(cursors.pending(slot: 0, limit: 10).map(\.sequence) == [5, 6])
        #expect(cursors.done(slot: 0).isEmpty, "done marks at or below the cursor are dropped")
    }

    // MARK: What the file holds

    @Test("routing on to the same sinks moves only the open range's end; its row gets the end before another range opens, and a reopened store reads it")
    func openRange() async throws {
        try await Self.withFile { path in
            let store = try Self.open(path)
            try await store.journalAndRoute(Self.events(2), to: ["a"])
            try await store.journalAndRoute(Self.events(3, from: 2), to: ["a"])
            #expect(try await Self.count(store, "SELECT last FROM routes") == 2, "the row keeps the end it was written with")
            #expect(try await Self.count(store, "SELECT last FROM route_ranges") == 5)
            let reopened = try Self.open(path)
            #expect(try await reopened.queueDepths() == ["a": QueueDepth(pending: 5, dead: 0)], "the mirror read the open end")

            try await reopened.journalAndRoute(Self.events(1, from: 5), to: ["b"])
            #expect(try await Self.count(reopened, "SELECT last FROM routes WHERE first = 1") == 5, "written into the row before b's range opened")
            #expect(try await Self.count(reopened, "SELECT COUNT(*) FROM routes") == 2)
            let again = try Self.open(path)
            #expect(try await again.queueDepths() == ["a": QueueDepth(pending: 5, dead: 0), "b": QueueDepth(pending: 1, dead: 0)])
        }
    }

    @Test("deliveries routed in order write no delivery rows: one range, and cursors that move as they succeed")
    func noRows() async throws {
        try await Self.withFile { path in
            let store = try Self.open(path)
            let routed = try await store.journalAndRoute(Self.events(5), to: ["a", "b"])
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM deliveries") == 0)
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM routes") == 1)
            try await store.journalAndRoute(Self.events(3, from: 5), to: ["a", "b"])
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM routes") == 1, "the next events routed in order extend the range")
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 8, dead: 0), "b": QueueDepth(pending: 8, dead: 0)])

            let a = try #require(routed["a"])
            try await store.recordSuccesses(deliveryIDs: a.map(\.id))
            #expect(try await Self.through(store, "a") == 5)
            #expect(try await Self.through(store, "b") == 0)
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM deliveries") == 0)
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 3, dead: 0), "b": QueueDepth(pending: 8, dead: 0)])
        }
    }

    @Test("a retry makes a row with the delivery's id; the cursor passes it and a reopened store still holds it")
    func retryBecomesRow() async throws {
        try await Self.withFile { path in
            let store = try Self.open(path)
            let a = try #require(try await store.journalAndRoute(Self.events(3), to: ["a"])["a"])
            let later = wallClock(plus: 60)
            try await store.recordRetry(deliveryID: a[0].id, attempts: 1, nextAttemptAt: later, error: "503")
            try await store.recordSuccesses(deliveryIDs: [a[1].id, a[2].id])
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM deliveries WHERE id = \(a[0].id) AND attempts = 1") == 1)
            #expect(try await Self.through(store, "a") == 3)

            let reopened = try Self.open(path)
            let due = try await reopened.dueDeliveries(sink: "a", now: later, limit: 10, excluding: [])
            #expect(due.map(\.id) == [a[0].id])
            #expect(due.map(\.attempts) == [1])
            #expect(try await reopened.dueDeliveries(sink: "a", now: later.addingTimeInterval(-1), limit: 10, excluding: []).isEmpty)
        }
    }

    @Test("successes past an older delivery in flight hold the cursor; a reopened store delivers them again (at least once)")
    func outOfOrder() async throws {
        try await Self.withFile { path in
            let store = try Self.open(path)
            let a = try #require(try await store.journalAndRoute(Self.events(4), to: ["a"])["a"])
            let now = wallClock(plus: 1)
            try await store.registerReplica(Self.replica, now: now, lease: .seconds(30))
            #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 4).count == 4)
            try await store.recordSuccesses(deliveryIDs: [a[1].id, a[3].id])
            #expect(try await Self.through(store, "a") == 0, "the first is still in flight")
            #expect(try await store.queueDepths()["a"]?.pending == 2)
            #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 4).isEmpty, "the other two are still claimed")

            // A process killed now: its marks are gone, the file's cursor is where it was.
            let reopened = try Self.open(path)
            #expect(try await reopened.dueDeliveries(sink: "a", now: now, limit: 10, excluding: []).map(\.id) == a.map(\.id))

            try await store.recordSuccesses(deliveryIDs: [a[0].id, a[2].id])
            #expect(try await Self.through(store, "a") == 4)
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM deliveries") == 0)
        }
    }

    @Test("an event routed ahead of the mark keeps rows; the next in order joins a range; a reopened store counts and hands out both")
    func routedAhead() async throws {
        try await Self.withFile { path in
            let store = try Self.open(path)
            let events = Self.events(2)
            _ = try await store.journal(events.map { entry($0) })
            let pending = try await store.unroutedEvents(limit: 2)
            try await store.commitRouting([RoutedEvent(sequence: pending[1].sequence, event: pending[1].event, changed: false, sinks: ["a"])])
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM deliveries") == 1, "the second event, routed first, is a row")
            try await store.commitRouting([RoutedEvent(sequence: pending[0].sequence, event: pending[0].event, changed: false, sinks: ["a"])])
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM deliveries") == 1)
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM routes") == 1)

            let reopened = try Self.open(path)
            #expect(try await reopened.queueDepths() == ["a": QueueDepth(pending: 2, dead: 0)])
            let now = wallClock(plus: 1)
            try await reopened.registerReplica(Self.replica, now: now, lease: .seconds(30))
            let claimed = try await reopened.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 10)
            #expect(Set(claimed.map(\.event.id)) == Set(events.map(\.id)))
            try await reopened.recordSuccesses(deliveryIDs: claimed.map(\.id))
            #expect(try await reopened.queueDepths().isEmpty)
            #expect(try await Self.through(reopened, "a") == 1)
        }
    }

    @Test("past the limit of done deliveries the older ones in flight become rows, keep their claim, and the cursor passes them")
    func stragglers() async throws {
        try await Self.withFile { path in
            let store = try Self.open(path, doneLimit: 3)
            let a = try #require(try await store.journalAndRoute(Self.events(8), to: ["a"])["a"])
            let now = wallClock(plus: 1)
            try await store.registerReplica(Self.replica, now: now, lease: .seconds(30))
            #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 8).count == 8)
            try await store.recordSuccesses(deliveryIDs: [a[2].id, a[3].id, a[4].id])
            #expect(try await Self.through(store, "a") == 0, "three done past the cursor: at the limit, not over it")
            try await store.recordSuccesses(deliveryIDs: [a[6].id])
            // 1, 2 (in flight) and 6 (pending) are older than the newest done one (7): rows now.
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM deliveries") == 3)
            #expect(
                try await Self.count(store, "SELECT COUNT(*) FROM deliveries WHERE attempts = 0 AND next_attempt_at = (SELECT routed_at FROM routes)") == 3,
                "due when they were routed, untried")
            #expect(try await Self.through(store, "a") == 7)
            #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 8).isEmpty, "their claims hold")

            try await store.recordSuccesses(deliveryIDs: [a[0].id, a[1].id, a[5].id, a[7].id])
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM deliveries") == 0)
            #expect(try await Self.through(store, "a") == 8)
            #expect(try await Self.open(path).dueDeliveries(sink: "a", now: now, limit: 10, excluding: []).isEmpty)
        }
    }

    @Test("prune keeps events a cursor has not passed for every sink, drops the rest and the ranges done for all")
    func prune() async throws {
        try await Self.withFile { path in
            let store = try Self.open(path)
            let routed = try await store.journalAndRoute(Self.events(4), to: ["a", "b"])
            let a = try #require(routed["a"]), b = try #require(routed["b"])
            try await store.recordSuccesses(deliveryIDs: a.map(\.id) + [b[0].id, b[1].id])
            let future = t0.addingTimeInterval(3600)
            try await store.prune(deliveredBefore: future, deduplicationBefore: future)
            #expect(try await store.eventCount() == 2, "b's last two are pending")
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM routes") == 1)
            try await store.recordSuccesses(deliveryIDs: [b[2].id, b[3].id])
            try await store.prune(deliveredBefore: future, deduplicationBefore: future)
            #expect(try await store.eventCount() == 0)
            #expect(try await Self.count(store, "SELECT COUNT(*) FROM routes") == 0)
            let next = try await store.journalAndRoute(Self.events(1, from: 10), to: ["a"])
            #expect(next["a"]?.count == 1, "routing goes on after the ranges are gone")
        }
    }

    // MARK: Crashes

    /// Random work on one file, abandoned (as `kill -9` leaves it: every write that returned is
    /// committed, nothing in memory survives) at random points and reopened. After each reopen
    /// every delivery whose success was not recorded is still there, pending or a dead letter, with
    /// its attempts; one whose success was recorded comes back only if the file's cursor had not
    /// passed it, which is bounded by what was done past the cursor.
    @Test("killed between any two writes, a reopened store loses no delivery and repeats only what was done past a cursor", arguments: [1, 2, 3, 4])
    func randomKills(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        try await Self.withFile { path in
            let sinks = ["a", "b"]
            var store = try Self.open(path, doneLimit: 6)
            // An hour ahead of the wall clock, which routing stamps (a loaded run takes seconds a round).
            var now = wallClock(plus: 3600)
            try await store.registerReplica(Self.replica, now: now, lease: .seconds(3600))
            /// What the test knows about each delivery (id → state): the truth a reopen is checked against.
            var succeeded: Set<Int64> = []
            var dead: Set<Int64> = []
            var attempts: [Int64: Int] = [:]
            var known: Set<Int64> = []
            var offset = 0
            for round in 0..<40 {
                // Route a few events to both sinks.
                let count = Int(random.next() % 6)
                if count > 0 {
                    let routed = try await store.journalAndRoute(Self.events(count, from: offset), to: sinks)
                    offset += count
                    for deliveries in routed.values { known.formUnion(deliveries.map(\.id)) }
                }
                // Claim some, finish some of the claimed in random order.
                for sink in sinks {
                    let claimed = try await store.claimDeliveries(sink: sink, replica: Self.replica, now: now, limit: Int(random.next() % 8))
                    var finished: [Int64] = []
                    for delivery in claimed.shuffled(using: &random) where random.next() % 4 != 0 {
                        switch random.next() % 6 {
                        case 0:
                            try await store.recordRetry(deliveryID: delivery.id, attempts: delivery.attempts + 1, nextAttemptAt: now, error: "503")
                            attempts[delivery.id] = delivery.attempts + 1
                        case 1:
                            try await store.recordDeadLetter(deliveryID: delivery.id, attempts: delivery.attempts + 1, error: "400", at: now)
                            dead.insert(delivery.id)
                        default:
                            finished.append(delivery.id)
                        }
                    }
                    try await store.recordSuccesses(deliveryIDs: finished)
                    succeeded.formUnion(finished)
                }
                now = now.addingTimeInterval(1)
                if random.next() % 5 == 0 {
                    // Killed here. Reopen, and check against what the test knows.
                    store = try Self.open(path, doneLimit: 6)
                    try await store.registerReplica(Self.replica, now: now, lease: .seconds(3600))
                    var pending: [Int64: Int] = [:]
                    for sink in sinks {
                        for delivery in try await store.dueDeliveries(sink: sink, now: now, limit: 100_000, excluding: []) { pending[delivery.id] = delivery.attempts }
                    }
                    let letters = Set(try await store.deadLetters(limit: 100_000).map(\.id))
                    for id in known where !succeeded.contains(id) {
                        if dead.contains(id) {
                            #expect(letters.contains(id), "round \(round): dead letter \(id) lost")
                        } else {
                            #expect(pending[id] == attempts[id, default: 0], "round \(round): delivery \(id) lost or its attempts changed")
                        }
                    }
                    // Deliveries that came back although they succeeded: each was done past its cursor.
                    let repeated = pending.keys.filter { succeeded.contains($0) }
                    #expect(repeated.count <= 2 * (6 + 8), "round \(round): \(repeated.count) delivered deliveries came back")
                    for id in repeated { succeeded.remove(id) }
                    #expect(letters == dead, "round \(round): dead letters")
                }
            }
        }
    }
}
