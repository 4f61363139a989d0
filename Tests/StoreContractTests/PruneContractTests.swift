import BridgeCore
import Foundation
import Testing

@Suite("Store contract: pruning")
struct PruneContractTests {
    @Test("prune drops routed events with nothing left to deliver that arrived before the cut-off, and keeps the rest", arguments: StoreKind.allCases)
    func pruneEvents(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let cutoff = t0.addingTimeInterval(100)
            let delivered = makeEvent(at: t0)
            let routedNowhere = makeEvent(at: cutoff.addingTimeInterval(-0.001))
            let pendingDelivery = makeEvent(at: t0.addingTimeInterval(2))
            let deadLetter = makeEvent(at: t0.addingTimeInterval(3))
            let recent = makeEvent(at: cutoff)
            let events = [delivered, routedNowhere, pendingDelivery, deadLetter, recent]
            _ = try await store.journal(events.map { entry($0) })
            let pending = try await store.unroutedEvents(limit: 10)
            try await store.commitRouting(
                zip(pending, [["a"], [], ["a"], ["a"], ["a"]]).map { event, sinks in
                    RoutedEvent(sequence: event.sequence, event: event.event, changed: false, sinks: sinks)
                })
            let due = try await store.dueDeliveries(sink: "a", now: wallClock(plus: 1), limit: 10, excluding: [])
            try #require(due.map(\.event.id) == [delivered, pendingDelivery, deadLetter, recent].map(\.id))
            try await store.recordSuccess(deliveryID: due[0].id)
            try await store.recordDeadLetter(deliveryID: due[2].id, attempts: 1, error: "400", at: wallClock(plus: 0))
            try await store.recordSuccess(deliveryID: due[3].id)

            try await store.prune(deliveredBefore: cutoff, deduplicationBefore: t0)
            #expect(try await store.eventCount() == 3)
            #expect(try await store.recentEvents(limit: 10).map(\.id) == [recent, deadLetter, pendingDelivery].map(\.id))
            // What is still to deliver keeps its event.
            #expect(try await store.dueDeliveries(sink: "a", now: wallClock(plus: 1), limit: 10, excluding: []).map(\.event) == [pendingDelivery])
            #expect(try await store.deadLetters(limit: 10).map(\.eventID) == [deadLetter.id])
            #expect(try await store.retryAllDeadLetters() == 1)
        }
    }

    @Test("prune keeps events that are not routed yet, however old", arguments: StoreKind.allCases)
    func pruneKeepsUnrouted(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let routed = makeEvent(at: t0)
            let unrouted = makeEvent(at: t0.addingTimeInterval(1))
            _ = try await store.journal([entry(routed), entry(unrouted)])
            let first = try await store.unroutedEvents(limit: 1)
            try await store.commitRouting(first.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: []) })

            try await store.prune(deliveredBefore: wallClock(plus: 3600), deduplicationBefore: t0)
            #expect(try await store.eventCount() == 1)
            #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == [unrouted.id])
            #expect(try await store.unroutedCount() == 1)
        }
    }

    @Test(
        "prune keeps the deduplication keys seen on or after its cut-off; a key seen more than the window before journals again, pruned or not",
        arguments: StoreKind.allCases)
    func pruneDeduplicationKeys(kind: StoreKind) async throws {
        try await kind.withStore { store in
            _ = try await store.journal([entry(makeEvent(at: t0), key: "old"), entry(makeEvent(at: t0.addingTimeInterval(10)), key: "kept")])
            // Keeps every event (nothing is routed). A key seen before t0 + 10 s may go (the SQLite
            // store keeps keys up to two windows, see DeduplicationTables); "kept" must stay.
            try await store.prune(deliveredBefore: t0, deduplicationBefore: t0.addingTimeInterval(10))
            #expect(try await store.eventCount() == 2)
            #expect(try await store.journal([entry(makeEvent(at: t0.addingTimeInterval(20)), key: "kept")]) == [.duplicate])
            // A window and a second after t0: "old" has expired, "kept" (seen at t0 + 10 s) has not.
            let later = t0.addingTimeInterval(window + 1)
            let outcomes = try await store.journal([entry(makeEvent(at: later), key: "old"), entry(makeEvent(at: later), key: "kept")])
            #expect(outcomes == [.journaled, .duplicate])
        }
    }
}
