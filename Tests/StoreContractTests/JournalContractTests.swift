import BridgeCore
import Foundation
import Testing

@Suite("Store contract: journal and routing")
struct JournalContractTests {
    @Test("journal answers one outcome per entry, in order; a key repeats as a duplicate, no key never does", arguments: StoreKind.allCases)
    func outcomesInOrder(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let events = (0..<6).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
            let outcomes = try await store.journal([
                entry(events[0], key: "k1"), entry(events[1], key: "k1"), entry(events[2], key: "k2"),
                entry(events[3]), entry(events[4]), entry(events[5], key: "k2"),
            ])
            #expect(outcomes == [.journaled, .duplicate, .journaled, .journaled, .journaled, .duplicate])
            #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == [events[0], events[2], events[3], events[4]].map(\.id))
            #expect(try await store.unroutedCount() == 4)
            // The key stays known across calls.
            #expect(try await store.journal([entry(makeEvent(at: t0.addingTimeInterval(10)), key: "k1")]) == [.duplicate])
        }
    }

    @Test("a key seen again within the window, up to its very end, is a duplicate; after it, journaled again", arguments: StoreKind.allCases)
    func deduplicationWindow(kind: StoreKind) async throws {
        try await kind.withStore { (store) async throws in
            func journal(after seconds: TimeInterval) async throws -> JournalOutcome {
                let outcomes = try await store.journal([entry(makeEvent(at: t0.addingTimeInterval(seconds)), key: "k")])
                return try #require(outcomes.first)
            }
            #expect(try await journal(after: 0) == .journaled)
            #expect(try await journal(after: 3600) == .duplicate)
            #expect(try await journal(after: window) == .duplicate)
            #expect(try await journal(after: window + 0.001) == .journaled)
            #expect(try await store.unroutedCount() == 2)
        }
    }

    @Test("the window runs from the journaled notification, not from its duplicates", arguments: StoreKind.allCases)
    func windowNotExtendedByDuplicates(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let outcomes = try await store.journal([
                entry(makeEvent(at: t0), key: "k"),
                entry(makeEvent(at: t0.addingTimeInterval(window - 60)), key: "k"),
                // Past the first one's window, within the duplicate's: journaled.
                entry(makeEvent(at: t0.addingTimeInterval(window + 60)), key: "k"),
                // Within the window of the one just journaled: a duplicate.
                entry(makeEvent(at: t0.addingTimeInterval(window + 120)), key: "k"),
            ])
            #expect(outcomes == [.journaled, .duplicate, .journaled, .duplicate])
        }
    }

    @Test("a call that repeats a journaled event id fails whole: none of its events or keys are kept", arguments: StoreKind.allCases)
    func journalIsAllOrNothing(kind: StoreKind) async throws {
        try await kind.withStore { (store) async throws in
            let first = makeEvent(at: t0)
            #expect(try await store.journal([entry(first)]) == [.journaled])
            let fresh = makeEvent(at: t0.addingTimeInterval(1))
            await #expect(throws: (any Error).self) {
                _ = try await store.journal([entry(fresh, key: "fresh-key"), entry(first)])
            }
            #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == [first.id])
            // Neither the fresh event nor its key landed: both journal now.
            #expect(try await store.journal([entry(fresh, key: "fresh-key")]) == [.journaled])
            #expect(try await store.unroutedCount() == 2)
        }
    }

    @Test("unrouted events come oldest first, up to the limit, as journaled, with their attachments", arguments: StoreKind.allCases)
    func unroutedOrderAndLimit(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let events = (0..<5).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
            let attachment: JSONValue = .object(["encryptedContent": .object(["data": .string("c2VjcmV0"), "dataKey": .string("a2V5")])])
            _ = try await store.journal([entry(events[0]), entry(events[1], attachment: attachment)])
            _ = try await store.journal(events[2...].map { entry($0) })

            let firstThree = try await store.unroutedEvents(limit: 3)
            #expect(firstThree.map(\.event) == Array(events.prefix(3)))
            #expect(firstThree.map(\.attachment) == [nil, attachment, nil])
            let sequences = try await store.unroutedEvents(limit: 10).map(\.sequence)
            #expect(sequences.count == 5)
            #expect(sequences == sequences.sorted() && Set(sequences).count == 5, "sequence numbers must rise with arrival: \(sequences)")
            #expect(try await store.unroutedCount() == 5)
        }
    }

    @Test("commitRouting moves the routed-through mark and creates one delivery per sink, due now", arguments: StoreKind.allCases)
    func commitRoutingMovesMark(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let events = (0..<4).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
            _ = try await store.journal(events.map { entry($0) })
            let pending = try await store.unroutedEvents(limit: 3)
            let before = Date()
            try await store.commitRouting([
                RoutedEvent(sequence: pending[0].sequence, event: pending[0].event, changed: false, sinks: ["a", "b"]),
                RoutedEvent(sequence: pending[1].sequence, event: pending[1].event, changed: false, sinks: ["a"]),
                RoutedEvent(sequence: pending[2].sequence, event: pending[2].event, changed: false, sinks: [], dropped: true),
            ])
            let after = Date()

            #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == [events[3].id])
            #expect(try await store.unroutedCount() == 1)
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 2, dead: 0), "b": QueueDepth(pending: 1, dead: 0)])

            let dueA = try await store.dueDeliveries(sink: "a", now: after, limit: 10, excluding: [])
            #expect(dueA.map(\.event) == [events[0], events[1]])
            #expect(dueA.map(\.attempts) == [0, 0])
            #expect(dueA.map(\.createdAt) == [events[0].receivedAt, events[1].receivedAt], "a delivery's age counts from the event's arrival")
            #expect(dueA.allSatisfy { $0.sink == "a" })
            #expect(try await store.dueDeliveries(sink: "b", now: after, limit: 10, excluding: []).map(\.event.id) == [events[0].id])
            // Due at the moment of routing, not before.
            #expect(isWithin(try await store.nextDueDate(sink: "a", excluding: []), before, after))
            #expect(try await store.dueDeliveries(sink: "a", now: before.addingTimeInterval(-1), limit: 10, excluding: []).isEmpty)

            // An empty batch changes nothing.
            try await store.commitRouting([])
            #expect(try await store.unroutedCount() == 1)
        }
    }

    @Test("the routed-through mark never moves back", arguments: StoreKind.allCases)
    func markNeverMovesBack(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let events = (0..<3).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
            _ = try await store.journal(events.map { entry($0) })
            let pending = try await store.unroutedEvents(limit: 3)
            try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: []) })
            // Routing an earlier event again (a replay, or a second replica) leaves the later ones
            // routed and creates nothing: an event is routed once.
            #expect(try await store.commitRouting([RoutedEvent(sequence: pending[0].sequence, event: pending[0].event, changed: false, sinks: ["a"])]).isEmpty)
            #expect(try await store.unroutedCount() == 0)
            #expect(try await store.unroutedEvents(limit: 10).isEmpty)
            #expect(try await store.queueDepths().isEmpty)
        }
    }

    @Test("events routed out of order: the mark stops at the first unrouted one, and the ones ahead are not routed again", arguments: StoreKind.allCases)
    func outOfOrderRouting(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let events = (0..<6).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
            _ = try await store.journal(events.map { entry($0) })
            let pending = try await store.unroutedEvents(limit: 6)
            func routed(_ index: Int, sinks: [String] = ["a"]) -> RoutedEvent {
                RoutedEvent(sequence: pending[index].sequence, event: pending[index].event, changed: false, sinks: sinks)
            }
            // Event 1 waits for its enrichment; 2, 4 and 3 (in that order) go ahead of it.
            try await store.commitRouting([routed(2), routed(4)])
            try await store.commitRouting([routed(3)])
            #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == [events[0], events[1], events[5]].map(\.id))
            #expect(try await store.unroutedEvents(limit: 2).map(\.event.id) == [events[0], events[1]].map(\.id))
            #expect(try await store.unroutedEvents(after: pending[0].sequence, limit: 10).map(\.event.id) == [events[1], events[5]].map(\.id))
            #expect(try await store.unroutedEvents(after: pending[1].sequence, limit: 10).map(\.event.id) == [events[5].id])
            #expect(try await store.unroutedCount() == 3)
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 3, dead: 0)])

            // The oldest goes through: the mark stops at 1, which still waits.
            try await store.commitRouting([routed(0)])
            #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == [events[1], events[5]].map(\.id))
            #expect(try await store.unroutedCount() == 2)

            // 1 is routed at last: everything up to 4 is routed, 5 still waits, nothing was routed twice.
            try await store.commitRouting([routed(1, sinks: ["a", "b"])])
            #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == [events[5].id])
            #expect(try await store.unroutedCount() == 1)
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 5, dead: 0), "b": QueueDepth(pending: 1, dead: 0)])
            let due = try await store.dueDeliveries(sink: "a", now: wallClock(plus: 1), limit: 10, excluding: [])
            #expect(Set(due.map(\.event.id)) == Set(events.prefix(5).map(\.id)))

            // Pruning keeps what is above the mark, and 5 is routed normally afterwards.
            for delivery in due { try await store.recordSuccess(deliveryID: delivery.id) }
            try await store.commitRouting([routed(5, sinks: [])])
            #expect(try await store.unroutedCount() == 0)
            #expect(try await store.unroutedEvents(limit: 10).isEmpty)
        }
    }

    @Test("a changed event replaces the journaled form; an unchanged one keeps it", arguments: StoreKind.allCases)
    func changedBodyReplaced(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let enrichedEvent = makeEvent(at: t0)
            let plainEvent = makeEvent(at: t0.addingTimeInterval(1))
            _ = try await store.journal([entry(enrichedEvent), entry(plainEvent)])
            let pending = try await store.unroutedEvents(limit: 2)
            var enriched = pending[0].event
            enriched.data = .object(["subject": .string("Quarterly report"), "isRead": .bool(false)])
            var notMarkedChanged = pending[1].event
            notMarkedChanged.data = .object(["subject": .string("must not be stored")])
            try await store.commitRouting([
                RoutedEvent(sequence: pending[0].sequence, event: enriched, changed: true, sinks: ["a"]),
                RoutedEvent(sequence: pending[1].sequence, event: notMarkedChanged, changed: false, sinks: ["a"]),
            ])
            let due = try await store.dueDeliveries(sink: "a", now: wallClock(plus: 1), limit: 10, excluding: [])
            #expect(due.map(\.event) == [enriched, plainEvent])
        }
    }

    @Test("routing a delivery for an event the store does not hold fails and moves nothing", arguments: StoreKind.allCases)
    func routingUnknownEventFails(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let event = makeEvent()
            _ = try await store.journal([entry(event)])
            let pending = try await store.unroutedEvents(limit: 1)
            await #expect(throws: (any Error).self) {
                try await store.commitRouting([
                    RoutedEvent(sequence: pending[0].sequence, event: event, changed: false, sinks: ["a"]),
                    RoutedEvent(sequence: pending[0].sequence + 1000, event: makeEvent(), changed: false, sinks: ["a"]),
                ])
            }
            #expect(try await store.unroutedCount() == 1)
            #expect(try await store.queueDepths().isEmpty)
        }
    }

    @Test("sequence numbers and delivery ids are never reused, also after pruning everything", arguments: StoreKind.allCases)
    func numbersNeverReused(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let first = makeEvent(at: t0)
            _ = try await store.journal([entry(first)])
            let firstSequence = try #require(try await store.unroutedEvents(limit: 1).first?.sequence)
            try await store.commitRouting([RoutedEvent(sequence: firstSequence, event: first, changed: false, sinks: ["a"])])
            let firstDelivery = try #require(try await store.dueDeliveries(sink: "a", now: wallClock(plus: 1), limit: 1, excluding: []).first)
            try await store.recordSuccess(deliveryID: firstDelivery.id)
            try await store.prune(deliveredBefore: wallClock(plus: 60), deduplicationBefore: wallClock(plus: 60))
            #expect(try await store.eventCount() == 0)

            // A reused number would sit at or below the routed-through mark and never be routed.
            let second = makeEvent(at: t0.addingTimeInterval(1))
            _ = try await store.journal([entry(second)])
            let pending = try await store.unroutedEvents(limit: 10)
            #expect(pending.map(\.event.id) == [second.id])
            #expect(pending.allSatisfy { $0.sequence > firstSequence })
            try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["a"]) })
            let secondDelivery = try #require(try await store.dueDeliveries(sink: "a", now: wallClock(plus: 1), limit: 1, excluding: []).first)
            #expect(secondDelivery.id > firstDelivery.id, "a reused delivery id could match one a worker still excludes as in flight")
        }
    }

    @Test("concurrent journal calls all land, each with its own sequence number", arguments: StoreKind.allCases)
    func concurrentJournal(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let count = 200
            try await withThrowingTaskGroup(of: [JournalOutcome].self) { group in
                for index in 0..<count {
                    group.addTask { try await store.journal([entry(makeEvent(at: t0.addingTimeInterval(Double(index))), key: "key-\(index)")]) }
                }
                var journaled = 0
                for try await outcomes in group { journaled += outcomes.filter { $0 == .journaled }.count }
                #expect(journaled == count)
            }
            let pending = try await store.unroutedEvents(limit: 1000)
            #expect(pending.count == count)
            #expect(Set(pending.map(\.sequence)).count == count)
            #expect(Set(pending.map(\.event.id)).count == count)
        }
    }
}
