import BridgeCore
import Foundation
import Testing

@Suite("Store contract: delivery queue and dead letters")
struct DeliveryContractTests {
    @Test("due deliveries come by due date, then age, up to the limit, for one sink only", arguments: StoreKind.allCases)
    func dueOrderAndLimit(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let events = (0..<4).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
            let a = try #require(try await store.journalAndRoute(events, to: ["a"])["a"])
            let other = makeEvent(at: t0.addingTimeInterval(10))
            try await store.journalAndRoute([other], to: ["b"])
            let later = wallClock(plus: 60)
            try await store.recordRetry(deliveryID: a[0].id, attempts: 1, nextAttemptAt: later.addingTimeInterval(20), error: "503")
            try await store.recordRetry(deliveryID: a[1].id, attempts: 1, nextAttemptAt: later.addingTimeInterval(10), error: "503")

            func due(at now: Date, limit: Int = 10) async throws -> [Int64] {
                try await store.dueDeliveries(sink: "a", now: now, limit: limit, excluding: []).map(\.id)
            }
            #expect(try await due(at: later.addingTimeInterval(20)) == [a[2].id, a[3].id, a[1].id, a[0].id])
            #expect(try await due(at: later.addingTimeInterval(20), limit: 3) == [a[2].id, a[3].id, a[1].id])
            // Due at its date exactly, not a millisecond before.
            #expect(try await due(at: later.addingTimeInterval(10)) == [a[2].id, a[3].id, a[1].id])
            #expect(try await due(at: later.addingTimeInterval(9.999)) == [a[2].id, a[3].id])
            #expect(try await store.dueDeliveries(sink: "b", now: later, limit: 10, excluding: []).map(\.event.id) == [other.id])
            #expect(try await store.dueDeliveries(sink: "c", now: later, limit: 10, excluding: []).isEmpty)
        }
    }

    @Test("excluded deliveries (in flight) are left out and do not use up the limit", arguments: StoreKind.allCases)
    func excluding(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let a = try #require(try await store.journalAndRoute((0..<4).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }, to: ["a"])["a"])
            let now = wallClock(plus: 1)
            let due = try await store.dueDeliveries(sink: "a", now: now, limit: 2, excluding: [a[0].id, a[1].id])
            #expect(due.map(\.id) == [a[2].id, a[3].id])
            #expect(try await store.dueDeliveries(sink: "a", now: now, limit: 10, excluding: Set(a.map(\.id))).isEmpty)

            try await store.recordRetry(deliveryID: a[3].id, attempts: 1, nextAttemptAt: now.addingTimeInterval(30), error: "503")
            let first = try #require(try await store.nextDueDate(sink: "a", excluding: []))
            #expect(first < now)
            #expect(try await store.nextDueDate(sink: "a", excluding: [a[0].id, a[1].id, a[2].id]) == now.addingTimeInterval(30))
            #expect(try await store.nextDueDate(sink: "a", excluding: Set(a.map(\.id))) == nil)
        }
    }

    @Test("nextDueDate is the earliest pending due date of the sink, dead letters left out", arguments: StoreKind.allCases)
    func nextDueDate(kind: StoreKind) async throws {
        try await kind.withStore { store in
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == nil)
            let a = try #require(try await store.journalAndRoute([makeEvent(at: t0), makeEvent(at: t0.addingTimeInterval(1))], to: ["a"])["a"])
            let later = wallClock(plus: 60)
            try await store.recordRetry(deliveryID: a[0].id, attempts: 1, nextAttemptAt: later.addingTimeInterval(20), error: "503")
            try await store.recordRetry(deliveryID: a[1].id, attempts: 1, nextAttemptAt: later.addingTimeInterval(10), error: "503")
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == later.addingTimeInterval(10))
            #expect(try await store.nextDueDate(sink: "b", excluding: []) == nil)

            try await store.recordDeadLetter(deliveryID: a[1].id, attempts: 2, error: "400", at: later)
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == later.addingTimeInterval(20))
            try await store.recordSuccess(deliveryID: a[0].id)
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == nil)
        }
    }

    @Test("recordRetry keeps the delivery, counts its attempts and holds it until its date", arguments: StoreKind.allCases)
    func recordRetry(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let event = makeEvent()
            let a = try #require(try await store.journalAndRoute([event], to: ["a"])["a"])
            let next = wallClock(plus: 60)
            try await store.recordRetry(deliveryID: a[0].id, attempts: 3, nextAttemptAt: next, error: "503 Service Unavailable")
            #expect(try await store.dueDeliveries(sink: "a", now: next.addingTimeInterval(-1), limit: 10, excluding: []).isEmpty)
            let retried = try await store.dueDeliveries(sink: "a", now: next, limit: 10, excluding: [])
            #expect(retried.map(\.id) == [a[0].id])
            #expect(retried.first?.attempts == 3)
            #expect(retried.first?.createdAt == event.receivedAt, "a retry does not reset the delivery's age")
            #expect(retried.first?.event == event)
            #expect(try await store.queueDepths()["a"] == QueueDepth(pending: 1, dead: 0))
        }
    }

    @Test("recordSuccess removes the delivery for good, leaving the other sinks' deliveries of the event", arguments: StoreKind.allCases)
    func recordSuccess(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let deliveries = try await store.journalAndRoute([makeEvent()], to: ["a", "b"])
            let a = try #require(deliveries["a"]?.first)
            try await store.recordSuccess(deliveryID: a.id)
            #expect(try await store.dueDeliveries(sink: "a", now: wallClock(plus: 1), limit: 10, excluding: []).isEmpty)
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == nil)
            // A sink with nothing left has no entry.
            #expect(try await store.queueDepths() == ["b": QueueDepth(pending: 1, dead: 0)])
            let dueB = try await store.dueDeliveries(sink: "b", now: wallClock(plus: 1), limit: 10, excluding: [])
            #expect(dueB.map(\.id) == deliveries["b"]?.map(\.id))
            #expect(try await store.deadLetters(limit: 10).isEmpty)
        }
    }

    @Test("a dead letter leaves the queue and is listed with its event, attempts, error and dates", arguments: StoreKind.allCases)
    func recordDeadLetter(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let event = makeEvent(subscription: "calendar")
            let a = try #require(try await store.journalAndRoute([event], to: ["a"])["a"])
            let deadAt = wallClock(plus: 5)
            try await store.recordDeadLetter(deliveryID: a[0].id, attempts: 5, error: "400 Bad Request", at: deadAt)
            #expect(try await store.dueDeliveries(sink: "a", now: wallClock(plus: 3600), limit: 10, excluding: []).isEmpty)
            #expect(try await store.nextDueDate(sink: "a", excluding: []) == nil)
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 0, dead: 1)])

            let letters = try await store.deadLetters(limit: 10)
            try #require(letters.count == 1)
            #expect(letters[0].id == a[0].id)
            #expect(letters[0].sink == "a")
            #expect(letters[0].eventID == event.id)
            #expect(letters[0].subscription == "calendar")
            #expect(letters[0].attempts == 5)
            #expect(letters[0].lastError == "400 Bad Request")
            #expect(letters[0].createdAt == event.receivedAt)
            #expect(letters[0].deadAt == deadAt)
        }
    }

    @Test("dead letters are listed oldest delivery first, up to the limit, across sinks", arguments: StoreKind.allCases)
    func deadLetterListing(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let events = (0..<3).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
            let deliveries = try await store.journalAndRoute(events, to: ["a", "b"])
            let a = try #require(deliveries["a"])
            let b = try #require(deliveries["b"])
            for (delivery, error) in [(a[2], "third"), (b[0], "b first"), (a[0], "first"), (a[1], "second")] {
                try await store.recordDeadLetter(deliveryID: delivery.id, attempts: 1, error: error, at: wallClock(plus: 1))
            }
            let all = [a[0], a[1], a[2], b[0]].map(\.id).sorted()
            #expect(try await store.deadLetters(limit: 10).map(\.id) == all)
            #expect(try await store.deadLetters(limit: 2).map(\.id) == Array(all.prefix(2)))
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 0, dead: 3), "b": QueueDepth(pending: 2, dead: 1)])
        }
    }

    @Test("retrying dead letters by id queues only those that are dead, due now, aged from now, attempts kept", arguments: StoreKind.allCases)
    func retryByID(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let a = try #require(try await store.journalAndRoute((0..<3).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }, to: ["a"])["a"])
            try await store.recordDeadLetter(deliveryID: a[0].id, attempts: 4, error: "400", at: wallClock(plus: 0))
            try await store.recordDeadLetter(deliveryID: a[1].id, attempts: 2, error: "400", at: wallClock(plus: 0))

            // a[2] is pending, not dead; 987654 does not exist: an error naming both, nothing changed.
            await #expect(throws: UnknownDeadLetters(ids: [a[2].id, 987_654])) {
                try await store.retryDeadLetters(DeadLetterSelection(ids: [a[0].id, a[2].id, 987_654, a[0].id]))
            }
            #expect(try await store.deadLetters(limit: 10).map(\.id) == [a[0].id, a[1].id])

            let before = Date()
            // a[0] twice counts once.
            #expect(try await store.retryDeadLetters(DeadLetterSelection(ids: [a[0].id, a[0].id])) == 1)
            let after = Date()
            #expect(try await store.deadLetters(limit: 10).map(\.id) == [a[1].id])
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 2, dead: 1)])

            let due = try await store.dueDeliveries(sink: "a", now: after.addingTimeInterval(0.001), limit: 10, excluding: [a[2].id])
            #expect(due.map(\.id) == [a[0].id])
            #expect(due.first?.attempts == 4)
            // The retry budget (retry.maxAge) starts over.
            #expect(isWithin(due.first?.createdAt, before, after))
            #expect(isWithin(try await store.nextDueDate(sink: "a", excluding: [a[2].id]), before, after))
        }
    }

    @Test("retrying all dead letters queues every one, in every sink", arguments: StoreKind.allCases)
    func retryAll(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let deliveries = try await store.journalAndRoute([makeEvent(at: t0), makeEvent(at: t0.addingTimeInterval(1))], to: ["a", "b"])
            let a = try #require(deliveries["a"])
            let b = try #require(deliveries["b"])
            try await store.recordDeadLetter(deliveryID: a[0].id, attempts: 1, error: "x", at: wallClock(plus: 0))
            try await store.recordDeadLetter(deliveryID: b[1].id, attempts: 1, error: "y", at: wallClock(plus: 0))
            #expect(try await store.retryAllDeadLetters() == 2)
            #expect(try await store.deadLetters(limit: 10).isEmpty)
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 2, dead: 0), "b": QueueDepth(pending: 2, dead: 0)])
            #expect(try await store.dueDeliveries(sink: "b", now: wallClock(plus: 1), limit: 10, excluding: []).map(\.id).sorted() == b.map(\.id))
            #expect(try await store.retryAllDeadLetters() == 0)
        }
    }

    @Test("purging deletes the dead letters and nothing else", arguments: StoreKind.allCases)
    func purge(kind: StoreKind) async throws {
        try await kind.withStore { store in
            let deliveries = try await store.journalAndRoute((0..<3).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }, to: ["a", "b"])
            let a = try #require(deliveries["a"])
            let b = try #require(deliveries["b"])
            try await store.recordDeadLetter(deliveryID: a[0].id, attempts: 1, error: "x", at: wallClock(plus: 0))
            try await store.recordDeadLetter(deliveryID: b[2].id, attempts: 1, error: "y", at: wallClock(plus: 0))
            #expect(try await store.purgeAllDeadLetters() == 2)
            #expect(try await store.deadLetters(limit: 10).isEmpty)
            #expect(try await store.queueDepths() == ["a": QueueDepth(pending: 2, dead: 0), "b": QueueDepth(pending: 2, dead: 0)])
            await #expect(throws: UnknownDeadLetters(ids: [a[0].id]), "a purged dead letter cannot come back") {
                try await store.retryDeadLetters(DeadLetterSelection(ids: [a[0].id]))
            }
            #expect(try await store.purgeAllDeadLetters() == 0)
            #expect(try await store.dueDeliveries(sink: "a", now: wallClock(plus: 1), limit: 10, excluding: []).map(\.id) == [a[1].id, a[2].id])
        }
    }
}
