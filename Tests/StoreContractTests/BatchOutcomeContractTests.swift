import BridgeCore
import Foundation
import Testing

/// `recordSuccesses(deliveryIDs:)`: the sink worker's batch of successes (issue 16).
@Suite("Store contract: successes recorded in a batch")
struct BatchOutcomeContractTests {
    @Test("a batch removes exactly its deliveries and ends their claims; the rest stay queued and claimable", arguments: StoreKind.allCases)
    func batch(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let deliveries = try await store.journalAndRoute((0..<5).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }, to: ["a", "b"])
            let a = try #require(deliveries["a"])
            let now = wallClock(plus: 1)
            let replica = ReplicaID("replica-batch")
            try await store.registerReplica(replica, now: now, lease: .seconds(30))
            let claimed = try await store.claimDeliveries(sink: "a", replica: replica, now: now, limit: 3)
            #expect(claimed.map(\.id) == Array(a.prefix(3).map(\.id)))

            try await store.recordSuccesses(deliveryIDs: [claimed[0].id, claimed[2].id])
            #expect(try await store.dueDeliveries(sink: "a", now: now, limit: 10, excluding: []).map(\.id) == [a[1].id, a[3].id, a[4].id])
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 3, dead: 0), "b": QueueDepth(pending: 5, dead: 0)])
            // The one left claimed stays this replica's; the two never claimed are handed out next.
            #expect(try await store.claimDeliveries(sink: "a", replica: replica, now: now, limit: 10).map(\.id) == [a[3].id, a[4].id])

            try await store.recordSuccesses(deliveryIDs: [])
            try await store.recordSuccesses(deliveryIDs: [a[1].id, a[3].id, a[4].id])
            #expect(try await store.dueDeliveries(sink: "a", now: now, limit: 10, excluding: []).isEmpty)
            #expect(try await store.queueDepths() == ["b": QueueDepth(pending: 5, dead: 0)])
            #expect(try await store.deadLetters(limit: 10).isEmpty)
        }
    }
}
