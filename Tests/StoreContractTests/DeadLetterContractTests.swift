import BridgeCore
import BridgeStore
import InMemoryStore
import Foundation
import Testing

/// `dead-letters list/retry/purge` at the store: selections by id, sink and time, counts, and
/// all-or-nothing on unknown ids. Part of the store contract: every implementation runs it.
@Suite("store contract: dead-letter selections")
struct DeadLetterContractTests {
    /// Journals one event per (sink, deadAt) pair, routes it to that sink and makes the delivery a dead letter then.
    static func makeDeadLetters(_ store: any ContractStore, _ letters: [(sink: String, deadAt: Date)]) async throws {
        let events = letters.map { _ in makeEvent(at: Date()) }
        _ = try await store.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil) })
        let pending = try await store.unroutedEvents(limit: letters.count)
        try await store.commitRouting(
            zip(pending, letters).map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: [$1.sink]) })
        for sink in Set(letters.map(\.sink)) {
            let due = try await store.dueDeliveries(sink: sink, now: Date().addingTimeInterval(1), limit: letters.count, excluding: [])
            let times = letters.filter { $0.sink == sink }.map(\.deadAt)
            #expect(due.count == times.count)
            for (delivery, deadAt) in zip(due, times) {
                try await store.recordDeadLetter(deliveryID: delivery.id, attempts: 3, error: "503 from \(sink)", at: deadAt)
            }
        }
    }

    @Test("a page holds the first dead letters oldest first and the total; sink and time narrow it", arguments: StoreKind.allCases)
    func listing(kind: StoreKind) async throws {
        try await kind.withStore { (store) async throws in
            let now = Date()
            let hour: TimeInterval = 3600
            try await Self.makeDeadLetters(
                store, (0..<6).map { (sink: $0 % 2 == 0 ? "chat" : "audit", deadAt: now.addingTimeInterval(-Double(6 - $0) * hour)) })

            let page = try await store.deadLetters(.all, limit: 4)
            #expect(page.total == 6)
            #expect(page.letters.count == 4)
            #expect(page.remaining == 2)
            #expect(page.letters.map(\.id) == page.letters.map(\.id).sorted())

            let chat = try await store.deadLetters(DeadLetterSelection(sink: "chat"), limit: 100)
            #expect(chat.total == 3)
            #expect(chat.letters.allSatisfy { $0.sink == "chat" })

            // Dead 6, 5, 4, 3, 2 and 1 hours ago: since 3.5 h ago holds the last three, before it the first three.
            let cut = now.addingTimeInterval(-3.5 * hour)
            #expect(try await store.deadLetters(DeadLetterSelection(deadSince: cut), limit: 100).total == 3)
            let older = try await store.deadLetters(DeadLetterSelection(deadBefore: cut), limit: 100)
            #expect(older.total == 3)
            #expect(older.letters.allSatisfy { $0.deadAt < cut })
            #expect(try await store.deadLetters(DeadLetterSelection(sink: "audit", deadBefore: cut), limit: 100).total == 1)

            let two = Array(page.letters.prefix(2).map(\.id))
            #expect(try await store.deadLetters(DeadLetterSelection(ids: two), limit: 100).letters.map(\.id) == two)
            #expect(try await store.deadLetters(.all, limit: 0).letters.isEmpty)
        }
    }

    @Test("retry and purge by id refuse unknown ids and change nothing then", arguments: StoreKind.allCases)
    func unknownIDs(kind: StoreKind) async throws {
        try await kind.withStore { (store) async throws in
            try await Self.makeDeadLetters(store, [("chat", Date()), ("chat", Date())])
            let ids = try await store.deadLetters(.all, limit: 10).letters.map(\.id)

            await #expect(throws: UnknownDeadLetters(ids: [99999])) {
                try await store.retryDeadLetters(DeadLetterSelection(ids: [ids[0], 99999]))
        }
        await #expect(throws: UnknownDeadLetters(ids: [99998, 99999])) {
            try await store.purgeDeadLetters(DeadLetterSelection(ids: [99998, ids[1], 99999]))
        }
        #expect(try await store.deadLetters(.all, limit: 10).total == 2, "nothing may change when an id is unknown")
        #expect(UnknownDeadLetters(ids: [99999]).description.hasPrefix("no dead letter has id 99999; nothing was changed"))

        #expect(try await store.retryDeadLetters(DeadLetterSelection(ids: [ids[0]])) == 1)
        #expect(try await store.dueDeliveries(sink: "chat", now: Date().addingTimeInterval(1), limit: 10, excluding: []).map(\.id) == [ids[0]])
        // A pending delivery is not a dead letter any more.
        await #expect(throws: UnknownDeadLetters(ids: [ids[0]])) { try await store.purgeDeadLetters(DeadLetterSelection(ids: [ids[0]])) }
        #expect(try await store.purgeDeadLetters(DeadLetterSelection(ids: [ids[1]])) == 1)
        #expect(try await store.deadLetters(.all, limit: 10).total == 0)
        }
    }

    @Test("purge and retry by sink and time touch only their selection", arguments: StoreKind.allCases)
    func selections(kind: StoreKind) async throws {
        try await kind.withStore { (store) async throws in
            let now = Date()
            try await Self.makeDeadLetters(
                store,
                [
                    ("chat", now.addingTimeInterval(-7200)), ("chat", now.addingTimeInterval(-60)), ("audit", now.addingTimeInterval(-7200)),
                    ("gone", now.addingTimeInterval(-60)),
                ])
            #expect(try await store.purgeDeadLetters(DeadLetterSelection(sink: "chat", deadBefore: now.addingTimeInterval(-3600))) == 1)
            #expect(try await store.deadLetters(.all, limit: 10).letters.map(\.sink).sorted() == ["audit", "chat", "gone"])
            #expect(try await store.retryDeadLetters(DeadLetterSelection(sink: "gone")) == 1)
            #expect(try await store.queueDepths()["gone"] == QueueDepth(pending: 1, dead: 0))
            #expect(try await store.purgeDeadLetters(.all) == 2)
            #expect(try await store.deadLetters(.all, limit: 10).total == 0)
        }
    }

    @Test("the pending deliveries of a removed sink become dead letters under its name; the others are untouched", arguments: StoreKind.allCases)
    func removedSink(kind: StoreKind) async throws {
        try await kind.withStore { (store) async throws in
            try await Self.makeDeadLetters(store, [("gone", Date())])
            let events = (0..<3).map { _ in makeEvent(at: Date()) }
            _ = try await store.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil) })
            let pending = try await store.unroutedEvents(limit: 10)
            try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["kept", "gone"]) })
            let at = Date(timeIntervalSince1970: 1_800_000_000)

            #expect(try await store.retireDeliveries(exceptFor: ["kept"], error: "the sink was removed", at: at) == ["gone": 3])
            #expect(try await store.queueDepths()["gone"] == QueueDepth(pending: 0, dead: 4))
            #expect(try await store.queueDepths()["kept"] == QueueDepth(pending: 3, dead: 0))
            let retired = try await store.deadLetters(DeadLetterSelection(sink: "gone", deadSince: at), limit: 10)
            #expect(retired.total == 3 && retired.letters.allSatisfy { $0.lastError == "the sink was removed" && $0.deadAt == at })
            #expect(try await store.retireDeliveries(exceptFor: ["kept"], error: "again", at: at).isEmpty, "nothing left to retire")
        }
    }
}
