import BridgeCore
import Foundation
import GRDB
import TestSupport
import Testing

@testable import BridgeStore

/// The SQLite store keeps what it routed, as values, until every sink's cursor has passed it
/// (``DeliveringEvents``), so a claim does not read and parse each event once per sink.
@Suite("SQLite store: routed events held for their sinks")
struct DeliveringEventsTests {
    static let replica = ReplicaID("held-events")

    @Test("holds at most its capacity, the oldest going first, and drops what every cursor has passed")
    func model() {
        let held = DeliveringEvents(capacity: 3)
        let events = (0..<5).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
        held.routed((0..<4).map { (Int64($0 + 1), events[$0]) })
        #expect(held.count == 3)
        #expect(held.event(1) == nil, "the oldest went for room")
        #expect(held.event(2) == events[1])
        held.delivered(through: 3)
        #expect(held.count == 1)
        #expect(held.event(3) == nil)
        #expect(held.event(4) == events[3])
        held.routed([(5, events[4])])
        #expect(held.count == 2)
    }

    /// Journals three events and routes them to a and b, the first in a changed (enriched) form.
    static func routeThree(_ store: SQLiteStateStore) async throws -> [BridgeEvent] {
        let events = (0..<3).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
        _ = try await store.journal(events.map { entry($0) })
        var routed = try await store.unroutedEvents(limit: 10).map(\.event)
        routed[0].data = .object(["subject": .string("enriched")])
        try await store.commitRouting(
            routed.enumerated().map { index, event in RoutedEvent(sequence: Int64(index + 1), event: event, changed: index == 0, sinks: ["a", "b"]) },
            now: t0.addingTimeInterval(10))
        return routed
    }

    @Test("a claim takes a routed event from memory in its routed form, and gives what a reopened store reads from the file")
    func claimsFromMemory() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let store = try SQLiteStateStore(path: path, logger: quietLogger)
        let routed = try await Self.routeThree(store)
        let now = t0.addingTimeInterval(20)
        let reopened = try SQLiteStateStore(path: path, logger: quietLogger)
        #expect(reopened.delivering.count == 0)
        try await reopened.registerReplica(Self.replica, now: now, lease: .seconds(60))
        let fromFile = try await reopened.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 10)
        #expect(fromFile.map(\.event) == routed)

        // Behind the store's back, the rows' bodies become text no claim could parse: what the
        // first store claims now can only come from memory.
        try await store.pool.write { db in try db.execute(sql: "UPDATE events SET body = 'not JSON'") }
        try await store.registerReplica(Self.replica, now: now, lease: .seconds(60))
        let fromMemory = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 10)
        #expect(fromMemory.map(\.event) == routed)
        #expect(fromMemory.map(\.id) == fromFile.map(\.id))
        #expect(fromMemory.map(\.createdAt) == fromFile.map(\.createdAt))
        #expect(fromMemory.map(\.attempts) == fromFile.map(\.attempts))
    }

    @Test("after a restart, events routing read from the file are held in their journaled form unless changed, whatever form an unchanged one was passed in")
    func readFromFile() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let journaled = (0..<3).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
        do {
            let before = try SQLiteStateStore(path: path, logger: quietLogger)
            _ = try await before.journal(journaled.map { entry($0) })
        }
        let store = try SQLiteStateStore(path: path, logger: quietLogger)
        let pending = try await store.unroutedEvents(limit: 10)
        #expect(pending.map(\.event) == journaled)
        var enriched = pending[0].event
        enriched.data = .object(["subject": "enriched"])
        var stray = pending[1].event
        stray.data = .object(["subject": "must not be delivered"])
        try await store.commitRouting(
            [
                RoutedEvent(sequence: pending[0].sequence, event: enriched, changed: true, sinks: ["a"]),
                RoutedEvent(sequence: pending[1].sequence, event: stray, changed: false, sinks: ["a"]),
                RoutedEvent(sequence: pending[2].sequence, event: pending[2].event, changed: false, sinks: ["a"]),
            ], now: t0.addingTimeInterval(10))
        try await store.pool.write { db in try db.execute(sql: "UPDATE events SET body = 'not JSON'") }
        let now = t0.addingTimeInterval(20)
        try await store.registerReplica(Self.replica, now: now, lease: .seconds(60))
        let claimed = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 10)
        #expect(claimed.map(\.event) == [enriched, journaled[1], journaled[2]])
    }

    @Test("events go once every sink's cursor has passed them, not before")
    func droppedWhenDelivered() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        _ = try await Self.routeThree(store)
        let now = t0.addingTimeInterval(20)
        try await store.registerReplica(Self.replica, now: now, lease: .seconds(60))
        #expect(store.delivering.count == 3)
        let a = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 10)
        try await store.recordSuccesses(deliveryIDs: a.map(\.id))
        #expect(store.delivering.count == 3, "b has not had them")
        let b = try await store.claimDeliveries(sink: "b", replica: Self.replica, now: now, limit: 2)
        try await store.recordSuccesses(deliveryIDs: b.map(\.id))
        #expect(store.delivering.count == 1)
        #expect(store.delivering.event(3) != nil)
    }

    @Test("a sink nothing is routed to any more does not hold events in memory")
    func formerSinkDoesNotHold() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let now = t0.addingTimeInterval(20)
        try await store.registerReplica(Self.replica, now: now, lease: .seconds(60))
        let first = try await store.journalAndRoute((0..<2).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }, to: ["a", "b"])
        try await store.recordSuccesses(deliveryIDs: try #require(first["b"]).map(\.id))
        let later = try await store.journalAndRoute((2..<5).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }, to: ["a"])
        #expect(store.delivering.count == 5)
        try await store.recordSuccesses(deliveryIDs: try #require(first["a"]).map(\.id) + (try #require(later["a"])).map(\.id))
        #expect(store.delivering.count == 0, "b's cursor (at 2) has nothing past it")
    }
}
