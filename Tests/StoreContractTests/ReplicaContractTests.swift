import BridgeCore
import Foundation
import Testing

/// Replicas, leases, claims and routing shared by several replicas (`StateStore`). Time is what
/// the test passes: a lease lapses because the test passes a later date, never by waiting.
@Suite("Store contract: replicas, leases and claims")
struct ReplicaContractTests {
    static let lease: Duration = .seconds(30)
    let a = ReplicaID("replica-a")
    let b = ReplicaID("replica-b")

    /// Journals `count` events (stamped with `replica`) and routes them to `sinks`, due at `now`.
    func routed(_ store: any ContractStore, count: Int, to sinks: [String], replica: ReplicaID? = nil, now: Date) async throws -> [Int64] {
        let events = (0..<count).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
        _ = try await store.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil, replica: replica) })
        let pending = try await store.unroutedEvents(limit: 10_000)
        try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: sinks) }, now: now)
        return pending.map(\.sequence)
    }

    @Test("a claim takes due deliveries oldest first, up to the limit, and the same replica does not get them again", arguments: StoreKind.allCases)
    func claimOnce(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let now = t0.addingTimeInterval(60)
            _ = try await routed(store, count: 5, to: ["s", "other"], now: now)
            try await store.registerReplica(a, now: now, lease: Self.lease)
            #expect(try await store.claimDeliveries(sink: "s", replica: a, now: now.addingTimeInterval(-1), limit: 10).isEmpty, "not due yet")
            let first = try await store.claimDeliveries(sink: "s", replica: a, now: now, limit: 3)
            #expect(first.count == 3)
            #expect(first.map(\.event.receivedAt) == (0..<3).map { t0.addingTimeInterval(Double($0)) })
            #expect(Set(first.map(\.sink)) == ["s"])
            let rest = try await store.claimDeliveries(sink: "s", replica: a, now: now, limit: 10)
            #expect(rest.count == 2)
            #expect(Set(first.map(\.id)).isDisjoint(with: rest.map(\.id)))
            #expect(try await store.claimDeliveries(sink: "s", replica: a, now: now, limit: 10).isEmpty)
            #expect(try await store.nextDueDate(sink: "s", replica: a, now: now) == nil, "everything due is claimed")
            // Inspection still sees them all.
            #expect(try await store.dueDeliveries(sink: "s", now: now, limit: 10, excluding: []).count == 5)
        }
    }

    @Test("an outcome ends the claim: a retry is claimable again at its date, success and dead letters are gone", arguments: StoreKind.allCases)
    func outcomesEndClaims(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let now = t0.addingTimeInterval(60)
            _ = try await routed(store, count: 3, to: ["s"], now: now)
            try await store.registerReplica(a, now: now, lease: Self.lease)
            let claimed = try await store.claimDeliveries(sink: "s", replica: a, now: now, limit: 10)
            try #require(claimed.count == 3)
            try await store.recordSuccess(deliveryID: claimed[0].id)
            try await store.recordDeadLetter(deliveryID: claimed[1].id, attempts: 1, error: "400", at: now)
            let retryAt = now.addingTimeInterval(5)
            try await store.recordRetry(deliveryID: claimed[2].id, attempts: 1, nextAttemptAt: retryAt, error: "503")
            #expect(try await store.nextDueDate(sink: "s", replica: a, now: now) == retryAt)
            #expect(try await store.claimDeliveries(sink: "s", replica: a, now: now, limit: 10).isEmpty)
            let again = try await store.claimDeliveries(sink: "s", replica: a, now: retryAt, limit: 10)
            #expect(again.map(\.id) == [claimed[2].id])
            #expect(again.first?.attempts == 1)
        }
    }

    @Test("a replica whose lease lapsed claims nothing until it renews, and renewing says it had lapsed", arguments: StoreKind.allCases)
    func ownLeaseLapsed(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let now = t0.addingTimeInterval(60)
            _ = try await routed(store, count: 2, to: ["s"], now: now)
            #expect(try await store.claimDeliveries(sink: "s", replica: a, now: now, limit: 10).isEmpty, "never registered")
            try await store.registerReplica(a, now: now, lease: Self.lease)
            let later = now.addingTimeInterval(31)
            #expect(try await store.claimDeliveries(sink: "s", replica: a, now: later, limit: 10).isEmpty)
            #expect(try await store.renewLease(a, now: later, lease: Self.lease) == false)
            #expect(try await store.claimDeliveries(sink: "s", replica: a, now: later, limit: 10).count == 2)
            #expect(try await store.renewLease(a, now: later.addingTimeInterval(10), lease: Self.lease) == true)
        }
    }

    @Test("two replicas never hold the same delivery; a lapsed replica's claims go to the other, not before", arguments: StoreKind.shared)
    func deadReplicasClaims(kind: StoreKind) async throws {
        try await kind.withTwoHandles { first, second in
            let now = t0.addingTimeInterval(60)
            _ = try await routed(first, count: 4, to: ["s"], now: now)
            try await first.registerReplica(a, now: now, lease: Self.lease)
            try await second.registerReplica(b, now: now, lease: Self.lease)
            let byA = try await first.claimDeliveries(sink: "s", replica: a, now: now, limit: 3)
            let byB = try await second.claimDeliveries(sink: "s", replica: b, now: now, limit: 10)
            #expect(byA.count == 3)
            #expect(byB.count == 1)
            #expect(Set(byA.map(\.id)).isDisjoint(with: byB.map(\.id)))

            // A renews once at +20 (one write extends all three claims), then dies.
            #expect(try await first.renewLease(a, now: now.addingTimeInterval(20), lease: Self.lease))
            let stillAlive = now.addingTimeInterval(49)
            try await second.renewLease(b, now: stillAlive, lease: Self.lease)
            #expect(try await second.claimDeliveries(sink: "s", replica: b, now: stillAlive, limit: 10).isEmpty)
            // Held by A: B's worker is told to look again when A's lease runs out (+50), not later.
            #expect(try await second.nextDueDate(sink: "s", replica: b, now: stillAlive) == now.addingTimeInterval(50))
            // For A: B's one claim, at B's lease end (+79); A's own claims (lease end +50) do not count.
            #expect(try await first.nextDueDate(sink: "s", replica: a, now: stillAlive) == stillAlive.addingTimeInterval(30))
            let lapsed = now.addingTimeInterval(50.001)
            #expect(try await second.nextDueDate(sink: "s", replica: b, now: lapsed) == now)
            let adopted = try await second.claimDeliveries(sink: "s", replica: b, now: lapsed, limit: 10)
            #expect(Set(adopted.map(\.id)) == Set(byA.map(\.id)))
            // A comes back: what B took is B's.
            #expect(try await first.renewLease(a, now: lapsed, lease: Self.lease) == false)
            #expect(try await first.claimDeliveries(sink: "s", replica: a, now: lapsed, limit: 10).isEmpty)
        }
    }

    @Test("releasing a replica frees its claims and its unrouted events at once", arguments: StoreKind.shared)
    func release(kind: StoreKind) async throws {
        try await kind.withTwoHandles { first, second in
            let now = t0.addingTimeInterval(60)
            _ = try await routed(first, count: 2, to: ["s"], now: now)
            try await first.registerReplica(a, now: now, lease: Self.lease)
            try await second.registerReplica(b, now: now, lease: Self.lease)
            _ = try await first.journal([JournalEntry(event: makeEvent(at: t0.addingTimeInterval(100)), deduplicationKey: nil, replica: a)])
            #expect(try await first.claimDeliveries(sink: "s", replica: a, now: now, limit: 10).count == 2)
            #expect(try await second.adoptUnroutedEvents(replica: b, now: now) == 0)

            try await first.releaseReplica(a)
            #expect(try await second.claimDeliveries(sink: "s", replica: b, now: now, limit: 10).count == 2)
            #expect(try await second.adoptUnroutedEvents(replica: b, now: now) == 1)
            #expect(try await second.unroutedEvents(for: b, after: 0, limit: 10).count == 1)
        }
    }

    @Test("each replica routes its own events and unstamped ones; a lapsed replica's are adopted, not before", arguments: StoreKind.shared)
    func adoption(kind: StoreKind) async throws {
        try await kind.withTwoHandles { first, second in
            let now = t0.addingTimeInterval(60)
            try await first.registerReplica(a, now: now, lease: Self.lease)
            try await second.registerReplica(b, now: now, lease: Self.lease)
            let ofA = (0..<3).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
            let ofB = makeEvent(at: t0.addingTimeInterval(10))
            let unstamped = makeEvent(at: t0.addingTimeInterval(11))
            _ = try await first.journal(ofA.map { JournalEntry(event: $0, deduplicationKey: nil, replica: a) })
            _ = try await second.journal([
                JournalEntry(event: ofB, deduplicationKey: nil, replica: b), JournalEntry(event: unstamped, deduplicationKey: nil),
            ])

            #expect(try await first.unroutedEvents(for: a, after: 0, limit: 10).map(\.event.id) == ofA.map(\.id) + [unstamped.id])
            let forB = try await second.unroutedEvents(for: b, after: 0, limit: 10)
            #expect(forB.map(\.event.id) == [ofB.id, unstamped.id])
            // B routes what it has; the read cursor moves past A's events.
            try await second.commitRouting(forB.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["s"]) }, now: now)
            let cursor = try #require(forB.last?.sequence)
            #expect(try await second.unroutedEvents(for: b, after: cursor, limit: 10).isEmpty)

            #expect(try await second.adoptUnroutedEvents(replica: b, now: now.addingTimeInterval(29)) == 0, "A is alive")
            #expect(try await second.adoptUnroutedEvents(replica: b, now: now.addingTimeInterval(31)) == 3)
            // Adopted events are older than the cursor: read again from the start.
            #expect(try await second.unroutedEvents(for: b, after: 0, limit: 10).map(\.event.id) == ofA.map(\.id))
            #expect(try await first.unroutedEvents(for: a, after: 0, limit: 10).isEmpty, "A no longer routes them")
            #expect(try await second.adoptUnroutedEvents(replica: b, now: now.addingTimeInterval(31)) == 0)
            #expect(try await second.unroutedCount() == 3)
        }
    }

    @Test("commitRouting raced by two replicas routes each event once, with one set of deliveries", arguments: StoreKind.allCases)
    func routingRace(kind: StoreKind) async throws {
        try await kind.withTwoHandles { first, second in
            let now = t0.addingTimeInterval(60)
            let events = (0..<40).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
            _ = try await first.journal(events.map { entry($0) })
            let pending = try await first.unroutedEvents(limit: 10_000)
            let routed = pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["s", "t"]) }
            // Overlapping batches, committed at once from two connections.
            async let byFirst = first.commitRouting(Array(routed[0..<30]), now: now)
            async let bySecond = second.commitRouting(Array(routed[10..<40].reversed()), now: now)
            let (one, two) = try await (byFirst, bySecond)
            #expect(one.isDisjoint(with: two))
            #expect(one.union(two) == Set(pending.map(\.sequence)))
            #expect(try await first.commitRouting(routed, now: now).isEmpty, "routed already")
            #expect(try await first.unroutedCount() == 0)
            #expect(try await first.queueDepths() == ["s": QueueDepth(pending: 40, dead: 0), "t": QueueDepth(pending: 40, dead: 0)])
            let due = try await first.dueDeliveries(sink: "s", now: now, limit: 100, excluding: [])
            #expect(Set(due.map(\.event.id)) == Set(events.map(\.id)))
        }
    }

    @Test("two replicas claiming at once never get the same delivery, and together get every one", arguments: StoreKind.shared)
    func concurrentClaims(kind: StoreKind) async throws {
        try await kind.withTwoHandles { first, second in
            let now = t0.addingTimeInterval(60)
            _ = try await routed(first, count: 300, to: ["s"], now: now)
            try await first.registerReplica(a, now: now, lease: Self.lease)
            try await second.registerReplica(b, now: now, lease: Self.lease)
            let claims = try await withThrowingTaskGroup(of: [Int64].self) { group in
                for (store, replica) in [(first, a), (second, b), (first, a), (second, b)] {
                    group.addTask {
                        var mine: [Int64] = []
                        while true {
                            let batch = try await store.claimDeliveries(sink: "s", replica: replica, now: now, limit: 7)
                            if batch.isEmpty { return mine }
                            mine += batch.map(\.id)
                        }
                    }
                }
                var all: [[Int64]] = []
                for try await ids in group { all.append(ids) }
                return all
            }
            let every = claims.flatMap { $0 }
            #expect(every.count == 300)
            #expect(Set(every).count == 300, "a delivery was claimed twice")
        }
    }

    @Test("on SQLite a registering replica ends the earlier process's lease: its claims and events are free at once", arguments: [StoreKind.sqlite])
    func sqliteSingleReplica(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let now = t0.addingTimeInterval(60)
            _ = try await routed(store, count: 2, to: ["s"], now: now)
            try await store.registerReplica(a, now: now, lease: Self.lease)
            _ = try await store.journal([JournalEntry(event: makeEvent(at: t0.addingTimeInterval(100)), deduplicationKey: nil, replica: a)])
            #expect(try await store.claimDeliveries(sink: "s", replica: a, now: now, limit: 10).count == 2)
            // The process dies; the next start registers a new replica well inside the old lease.
            let restart = now.addingTimeInterval(1)
            try await store.registerReplica(b, now: restart, lease: Self.lease)
            #expect(try await store.claimDeliveries(sink: "s", replica: b, now: restart, limit: 10).count == 2)
            #expect(try await store.adoptUnroutedEvents(replica: b, now: restart) == 1)
        }
    }
}
