import BridgeCore
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import BridgeStore

/// The SQLite store's claims from memory (issue 16): a sink with no pending row in `deliveries`
/// has only cursor deliveries, whose events the routing left in memory, so its claims need no
/// read of the file. Every way a row appears (a retry, a dead letter sent back, an event routed
/// out of order) sends its sink's claims back to the file until a read finds none.
@Suite("SQLite store: claims from memory")
struct MemoryClaimTests {
    static let replica = ReplicaID("memory-claims")

    static func fileClaims(_ store: SQLiteStateStore) -> Int { store.fileClaims.load(ordering: .relaxed) }

    /// A store with the replica registered; "now" a minute ahead of the wall clock, which the
    /// routing stamps (a loaded run may take seconds between two steps).
    static func open(_ directory: TemporaryDirectory) async throws -> (SQLiteStateStore, Date) {
        let store = try SinkCursorTests.open(directory.file("state.sqlite"))
        let now = wallClock(plus: 60)
        try await store.registerReplica(replica, now: now, lease: .seconds(3600))
        return (store, now)
    }

    @Test("once a read has found no pending row, claims and the next due date come from memory, with the same deliveries")
    func fromMemory() async throws {
        let directory = TemporaryDirectory()
        let (store, now) = try await Self.open(directory)
        let a = try #require(try await store.journalAndRoute(SinkCursorTests.events(6), to: ["a"])["a"])
        let first = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 2)
        #expect(first.map(\.id) == a[0..<2].map(\.id))
        #expect(Self.fileClaims(store) == 1)
        let second = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 2)
        #expect(second.map(\.id) == a[2..<4].map(\.id))
        #expect(second.map(\.event) == a[2..<4].map(\.event))
        #expect(second.allSatisfy { $0.attempts == 0 && $0.sink == "a" })
        #expect(Self.fileClaims(store) == 1, "the second claim read the file")
        try await store.recordSuccesses(deliveryIDs: (first + second).map(\.id))
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 10).map(\.id) == a[4...].map(\.id))
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 10).isEmpty, "claimed already")
        #expect(try await store.nextDueDate(sink: "a", replica: Self.replica, now: now) == nil, "the rest are held")
        #expect(Self.fileClaims(store) == 1)
        // The leases a read found stand for a second at most, and until a lease changes.
        _ = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(2), limit: 10)
        #expect(Self.fileClaims(store) == 2)
        _ = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(2), limit: 10)
        #expect(Self.fileClaims(store) == 2)
        try await store.renewLease(Self.replica, now: now.addingTimeInterval(2), lease: .seconds(3600))
        _ = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(2), limit: 10)
        #expect(Self.fileClaims(store) == 3)
    }

    @Test("a lease that lapses between two claims from memory stops them; a lease released stops them at once")
    func leases() async throws {
        let directory = TemporaryDirectory()
        let store = try SinkCursorTests.open(directory.file("state.sqlite"))
        let now = wallClock(plus: 60)
        try await store.registerReplica(Self.replica, now: now, lease: .milliseconds(500))
        try await store.journalAndRoute(SinkCursorTests.events(3), to: ["a"])
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 1).count == 1)
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(0.1), limit: 1).count == 1)
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(0.6), limit: 1).isEmpty, "lapsed")
        try await store.renewLease(Self.replica, now: now.addingTimeInterval(0.6), lease: .seconds(60))
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(0.6), limit: 1).count == 1)
        try await store.journalAndRoute(SinkCursorTests.events(1, from: 3), to: ["a"])
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(0.7), limit: 1).count == 1)
        try await store.releaseReplica(Self.replica)
        try await store.journalAndRoute(SinkCursorTests.events(1, from: 4), to: ["a"])
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(0.8), limit: 1).isEmpty, "released")
    }

    @Test("a retry sends its sink's claims to the file: the retry is claimed when due, and memory serves again once no row is left")
    func retryRow() async throws {
        let directory = TemporaryDirectory()
        let (store, now) = try await Self.open(directory)
        let a = try #require(try await store.journalAndRoute(SinkCursorTests.events(3), to: ["a", "b"])["a"])
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 1).count == 1)
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 2).count == 2)
        #expect(try await store.claimDeliveries(sink: "b", replica: Self.replica, now: now, limit: 1).count == 1)
        let reads = Self.fileClaims(store)
        try await store.recordRetry(deliveryID: a[0].id, attempts: 1, nextAttemptAt: now.addingTimeInterval(0.5), error: "503")
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 10).isEmpty, "not due yet")
        #expect(Self.fileClaims(store) == reads + 1, "a row may exist: the claim read the file")
        #expect(try await store.nextDueDate(sink: "a", replica: Self.replica, now: now) == now.addingTimeInterval(0.5))
        let retried = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(0.6), limit: 10)
        #expect(retried.map(\.id) == [a[0].id])
        #expect(retried.first?.attempts == 1)
        try await store.recordSuccesses(deliveryIDs: a.map(\.id))
        // The first read after the row is gone learns it; the next claim is from memory again.
        let more = try #require(try await store.journalAndRoute(SinkCursorTests.events(2, from: 3), to: ["a"])["a"])
        let later = now.addingTimeInterval(0.7)
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: later, limit: 1).map(\.id) == [more[0].id])
        let reads2 = Self.fileClaims(store)
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: later, limit: 1).map(\.id) == [more[1].id])
        #expect(Self.fileClaims(store) == reads2)
    }

    @Test("dead letters sent back are claimed at once, though the sink's claims came from memory")
    func replayedDeadLetters() async throws {
        let directory = TemporaryDirectory()
        let (store, now) = try await Self.open(directory)
        let a = try #require(try await store.journalAndRoute(SinkCursorTests.events(2), to: ["a"])["a"])
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 1).count == 1)
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 1).count == 1)
        try await store.recordDeadLetter(deliveryID: a[0].id, attempts: 1, error: "400", at: now)
        try await store.recordSuccesses(deliveryIDs: [a[1].id])
        // A read learns there is no pending row (the dead letter is not one), then memory serves.
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 5).isEmpty)
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 5).isEmpty)
        #expect(try await store.retryDeadLetters(.all, now: now) == 1)
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 5).map(\.id) == [a[0].id])
    }

    @Test("an event routed out of order is a row: its sink's claims read the file and find it")
    func routedOutOfOrder() async throws {
        let directory = TemporaryDirectory()
        let (store, now) = try await Self.open(directory)
        _ = try await store.journalAndRoute(SinkCursorTests.events(1), to: ["a"])
        _ = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 5)
        #expect(try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now, limit: 5).isEmpty)
        _ = try await store.journal(SinkCursorTests.events(2, from: 1).map { entry($0) })
        let pending = try await store.unroutedEvents(limit: 2)
        try await store.commitRouting([RoutedEvent(sequence: pending[1].sequence, event: pending[1].event, changed: false, sinks: ["a"])], now: now)
        let claimed = try await store.claimDeliveries(sink: "a", replica: Self.replica, now: now.addingTimeInterval(0.1), limit: 5)
        #expect(claimed.map(\.event.id) == [pending[1].event.id])
    }

    @Test("a read that began before a commit that may have added rows does not count: the sink stays unknown")
    func staleReadRefused() {
        let rows = PendingRows()
        let before = rows.epoch
        rows.mayHaveAdded()
        rows.observedNone("a", since: before)
        #expect(!rows.hasNone("a"))
        rows.observedNone("a", since: rows.epoch)
        #expect(rows.hasNone("a"))
        rows.mayHaveAdded()
        #expect(!rows.hasNone("a"), "forgotten at the next commit that may add rows")
    }
}
