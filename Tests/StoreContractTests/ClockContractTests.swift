import BridgeCore
import Foundation
import Testing

/// Where time matters the caller passes it, and the store dates nothing itself: tests then set
/// time instead of reading the wall clock.
@Suite("Store contract: the caller's time")
struct ClockContractTests {
    @Test("new deliveries are due at the time passed to commitRouting", arguments: StoreKind.allCases)
    func routingStamp(kind: StoreKind) async throws {
        let now = t0.addingTimeInterval(3600)
        try await kind.withStore { store in
            let event = makeEvent(at: t0)
            _ = try await store.journal([entry(event)])
            let pending = try await store.unroutedEvents(limit: 1)
            try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["a"]) }, now: now)
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == now)
            #expect(try await store.dueDeliveries(sink: "a", now: now.addingTimeInterval(-0.001), limit: 10, excluding: []).isEmpty)
            #expect(try await store.dueDeliveries(sink: "a", now: now, limit: 10, excluding: []).map(\.event.id) == [event.id])
        }
    }

    @Test("retried dead letters are due, and aged, from the time passed to retryDeadLetters", arguments: StoreKind.allCases)
    func retryStamp(kind: StoreKind) async throws {
        let now = t0.addingTimeInterval(3600)
        try await kind.withStore { store in
            _ = try await store.journal([entry(makeEvent(at: t0))])
            let pending = try await store.unroutedEvents(limit: 1)
            try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["a"]) }, now: now)
            let delivery = try #require(try await store.dueDeliveries(sink: "a", now: now, limit: 1, excluding: []).first)
            try await store.recordDeadLetter(deliveryID: delivery.id, attempts: 1, error: "400", at: now)

            let later = now.addingTimeInterval(86_400)
            #expect(try await store.retryDeadLetters(DeadLetterSelection(ids: [delivery.id]), now: later) == 1)
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == later)
            let retried = try await store.dueDeliveries(sink: "a", now: later, limit: 1, excluding: [])
            #expect(retried.first?.createdAt == later)
        }
    }
}
