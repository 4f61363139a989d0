import BridgeCore
import Foundation
import Testing

/// Where a store dates something itself, it asks its clock: tests then set time instead of
/// reading the wall clock. Runs on the kinds that take one (`StoreKind.injectsClock`).
@Suite("Store contract: the store's own clock")
struct ClockContractTests {
    @Test("new deliveries are due at the store's clock when routed", arguments: StoreKind.withInjectedClock)
    func routingStamp(kind: StoreKind) async throws {
        let clock = ManualClock(t0.addingTimeInterval(3600))
        try await kind.withStore(now: { clock.now }) { store in
            let event = makeEvent(at: t0)
            _ = try await store.journal([entry(event)])
            let pending = try await store.unroutedEvents(limit: 1)
            try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["a"]) })
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == clock.now)
            #expect(try await store.dueDeliveries(sink: "a", now: clock.now.addingTimeInterval(-0.001), limit: 10, excluding: []).isEmpty)
            #expect(try await store.dueDeliveries(sink: "a", now: clock.now, limit: 10, excluding: []).map(\.event.id) == [event.id])
        }
    }

    @Test("retried dead letters are due, and aged, from the store's clock", arguments: StoreKind.withInjectedClock)
    func retryStamp(kind: StoreKind) async throws {
        let clock = ManualClock(t0.addingTimeInterval(3600))
        try await kind.withStore(now: { clock.now }) { store in
            _ = try await store.journal([entry(makeEvent(at: t0))])
            let pending = try await store.unroutedEvents(limit: 1)
            try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["a"]) })
            let delivery = try #require(try await store.dueDeliveries(sink: "a", now: clock.now, limit: 1, excluding: []).first)
            try await store.recordDeadLetter(deliveryID: delivery.id, attempts: 1, error: "400", at: clock.now)

            clock.advance(by: 86_400)
            #expect(try await store.retryDeadLetters(DeadLetterSelection(ids: [delivery.id])) == 1)
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == clock.now)
            let retried = try await store.dueDeliveries(sink: "a", now: clock.now, limit: 1, excluding: [])
            #expect(retried.first?.createdAt == clock.now)
        }
    }
}
