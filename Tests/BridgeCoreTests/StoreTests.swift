import BridgeCore
@testable import BridgeStore
import Foundation
import GRDB
import Testing
import TestSupport

@Suite("SQLite state store")
struct StoreTests {
    /// A file's size in bytes; 0 when it does not exist.
    static func size(_ file: String) -> Int { (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0 }

    @Test("the store file is created with mode 0600")
    func fileMode() throws {
        let directory = TemporaryDirectory()
        _ = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory.file("state.sqlite"))
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test("every commit is fsync'd: the writer runs WAL with synchronous = FULL, also after a reopen")
    func durableCommits() async throws {
        // GRDB's DatabasePool sets NORMAL on its writer after prepareDatabase; NORMAL would
        // survive a killed process but not a power cut, which the kill loop cannot tell apart.
        let directory = TemporaryDirectory()
        for _ in 0..<2 {
            let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
            let durability = try await store.durability()
            #expect(durability.journalMode == "wal")
            #expect(durability.synchronous == 2, "PRAGMA synchronous must be FULL (2), found \(durability.synchronous)")
        }
    }

    @Test("the WAL is checkpointed beside the writer and reused, not grown without end")
    func checkpointsBesideTheWriter() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        // Rounds run when the test says (no timer): what each one does is not left to timing.
        let store = try SQLiteStateStore(path: path, walSizeLimit: SQLiteStateStore.walSizeLimit, checkpointInterval: nil, logger: quietLogger)
        func writeBatch() async throws {
            for _ in 0..<40 {
                _ = try await store.journal((0..<50).map { _ in JournalEntry(event: makeEvent(), deduplicationKey: nil) })
            }
        }
        let initial = Self.size(path)
        try await writeBatch()
        // The writer never checkpoints (wal_autocheckpoint = 0): only a round moves data into the
        // database file.
        #expect(Self.size(path) == initial, "the writer checkpointed by itself")
        store.checkpointRound()
        #expect(Self.size(path) > initial, "nothing was checkpointed into the database file")
        let walAfterFirst = Self.size(path + "-wal")

        // Once fully checkpointed, the writer starts the WAL over: the same amount again does not double it.
        let checkpoint = try await store.checkpoint()
        #expect(checkpoint.copied == checkpoint.walFrames)
        try await writeBatch()
        #expect(Self.size(path + "-wal") < walAfterFirst * 3 / 2, "the WAL grew from \(walAfterFirst) to \(Self.size(path + "-wal")) bytes")
        #expect(try await store.eventCount() == 4000)
    }

    @Test("after a burst the WAL is cut back once the store is quiet, not kept at its largest")
    func walShrinksAfterBurst() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let store = try SQLiteStateStore(path: path, walSizeLimit: 256 << 10, checkpointInterval: nil, logger: quietLogger)
        func walSize() -> Int { Self.size(path + "-wal") }
        for _ in 0..<20 {
            _ = try await store.journal((0..<50).map { _ in JournalEntry(event: makeEvent(), deduplicationKey: nil) })
        }
        #expect(walSize() > 512 << 10, "the burst should outgrow the limit for this test to mean anything (WAL \(walSize()) bytes)")
        // The first round after the burst copies the WAL; it is not cut back while frames may still come.
        store.checkpointRound()
        #expect(walSize() > 512 << 10, "cut back in the round that copied it, before the writer was seen idle")
        // No write since: the next round sees the writer idle and the WAL copied, and truncates it.
        store.checkpointRound()
        #expect(walSize() <= 256 << 10, "the WAL kept \(walSize()) bytes")
        _ = try await store.journal([JournalEntry(event: makeEvent(), deduplicationKey: nil)])
        #expect(try await store.eventCount() == 1001)
        let reopened = try SQLiteStateStore(path: path, logger: quietLogger)
        #expect(try await reopened.unroutedCount() == 1001)
    }

    @Test("under steady writes with readers polling, the WAL starts over instead of growing without end")
    func walBoundedUnderSteadyWrites() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        // Restart past 64 frames (256 KB); never truncate (the limit is far above what this writes).
        let store = try SQLiteStateStore(path: path, walSizeLimit: 1 << 40, walRestartFrames: 64, logger: quietLogger)
        func walSize() -> Int { Self.size(path + "-wal") }
        let writes = 3000
        let largest = try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                // One small commit after another, as steady traffic makes them.
                var largest = 0
                for _ in 0..<writes {
                    _ = try await store.journal([JournalEntry(event: makeEvent(), deduplicationKey: nil)])
                    largest = max(largest, walSize())
                }
                return largest
            }
            group.addTask {
                // Readers polling the whole time, as the dispatcher and sink workers do.
                while try await store.eventCount() < writes {
                    _ = try await store.unroutedEvents(limit: 10)
                }
                return 0
            }
            return try await group.reduce(0, max)
        }
        // Each commit appends a few pages: 3,000 of them with no restart made a 40 MB WAL here;
        // restarting, it holds about one checkpoint round's worth (5 MB here).
        #expect(largest < 12 << 20, "the WAL grew to \(largest) bytes")
        #expect(try await store.eventCount() == writes)
    }

    @Test("a missing folder is a clear error")
    func missingFolder() {
        #expect(throws: (any Error).self) {
            try SQLiteStateStore(path: "/nonexistent-folder-\(UUID())/state.sqlite", logger: quietLogger)
        }
    }

    @Test("journal, route, deliver: the whole life of a delivery survives reopening the file")
    func lifecycle() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let event = makeEvent()
        do {
            let store = try SQLiteStateStore(path: path, logger: quietLogger)
            let outcomes = try await store.journal([JournalEntry(event: event, deduplicationKey: nil)])
            #expect(outcomes == [.journaled])
        }
        let store = try SQLiteStateStore(path: path, logger: quietLogger)
        let pending = try await store.unroutedEvents(limit: 10)
        #expect(pending.map(\.event) == [event])

        try await store.commitRouting([RoutedEvent(sequence: pending[0].sequence, event: event, changed: false, sinks: ["a", "b"])])
        #expect(try await store.unroutedEvents(limit: 10).isEmpty)

        let dueA = try await store.dueDeliveries(sink: "a", now: Date(), limit: 10, excluding: [])
        #expect(dueA.map(\.event.id) == [event.id])
        #expect(try await store.dueDeliveries(sink: "a", now: Date(), limit: 10, excluding: [dueA[0].id]).isEmpty)

        try await store.recordSuccess(deliveryID: dueA[0].id)
        #expect(try await store.dueDeliveries(sink: "a", now: Date(), limit: 10, excluding: []).isEmpty)

        let dueB = try await store.dueDeliveries(sink: "b", now: Date(), limit: 10, excluding: [])
        let later = Date().addingTimeInterval(60)
        try await store.recordRetry(deliveryID: dueB[0].id, attempts: 1, nextAttemptAt: later, error: "503")
        #expect(try await store.dueDeliveries(sink: "b", now: Date(), limit: 10, excluding: []).isEmpty)
        let next = try #require(try await store.nextDueDate(sink: "b", excluding: []))
        #expect(abs(next.timeIntervalSince(later)) < 0.001)
        let retried = try await store.dueDeliveries(sink: "b", now: later, limit: 10, excluding: [])
        #expect(retried.first?.attempts == 1)

        try await store.recordDeadLetter(deliveryID: dueB[0].id, attempts: 2, error: "400 Bad Request", at: Date())
        #expect(try await store.queueDepths()["b"] == QueueDepth(pending: 0, dead: 1))
        let letters = try await store.deadLetters(limit: 10)
        #expect(letters.map(\.eventID) == [event.id])
        #expect(letters.first?.lastError == "400 Bad Request")

        #expect(try await store.retryAllDeadLetters() == 1)
        #expect(try await store.dueDeliveries(sink: "b", now: Date(), limit: 10, excluding: []).count == 1)
    }

    @Test("the same change (subscription, changeType, resource, etag) within the window is journaled once")
    func deduplication() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let now = Date()
        let first = try await store.journal([
            JournalEntry(event: makeEvent(at: now), deduplicationKey: "k1"),
            JournalEntry(event: makeEvent(at: now), deduplicationKey: "k1"),
            JournalEntry(event: makeEvent(at: now), deduplicationKey: "k2"),
            JournalEntry(event: makeEvent(at: now), deduplicationKey: nil),
            JournalEntry(event: makeEvent(at: now), deduplicationKey: nil),
        ])
        #expect(first == [.journaled, .duplicate, .journaled, .journaled, .journaled])
        // Five hours later the key has aged out of Graph's 4-hour retry window.
        let later = now.addingTimeInterval(5 * 3600)
        let second = try await store.journal([JournalEntry(event: makeEvent(at: later), deduplicationKey: "k1")])
        #expect(second == [.journaled])
        #expect(try await store.unroutedEvents(limit: 100).count == 5)
    }

    @Test("a failing write in a group commit fails alone: the writes batched with it land")
    func failingWriteFailsAlone() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        // Routing an event that does not exist violates the deliveries → events foreign key.
        let bogus = RoutedEvent(sequence: 987_654, event: makeEvent(), changed: false, sinks: ["rec"])
        let (journaled, failed) = await withTaskGroup(of: (Int, Int).self) { group in
            for index in 0..<300 {
                group.addTask {
                    if index % 30 == 7 {
                        return (try? await store.commitRouting([bogus])) == nil ? (0, 1) : (0, 0)
                    }
                    let outcomes = try? await store.journal([JournalEntry(event: makeEvent(), deduplicationKey: nil)])
                    return (outcomes?.count ?? 0, 0)
                }
            }
            return await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        }
        #expect(failed == 10, "each bogus routing write must fail")
        #expect(journaled == 290)
        #expect(try await store.unroutedEvents(limit: 1000).count == 290, "every journal write batched with a failing one must land")
    }

    @Test("many concurrent journal calls all land (group commit)")
    func concurrentJournal() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        try await withThrowingTaskGroup(of: [JournalOutcome].self) { group in
            for _ in 0..<500 {
                group.addTask { try await store.journal([JournalEntry(event: makeEvent(), deduplicationKey: nil)]) }
            }
            var count = 0
            for try await outcome in group { count += outcome.count }
            #expect(count == 500)
        }
        #expect(try await store.unroutedEvents(limit: 1000).count == 500)
    }

    @Test("prune drops delivered events past retention and keeps the rest")
    func prune() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let old = makeEvent(at: Date().addingTimeInterval(-7200))
        let stillQueued = makeEvent(at: Date().addingTimeInterval(-7200))
        _ = try await store.journal([JournalEntry(event: old, deduplicationKey: "a"), JournalEntry(event: stillQueued, deduplicationKey: nil)])
        let pending = try await store.unroutedEvents(limit: 10)
        try await store.commitRouting([
            RoutedEvent(sequence: pending[0].sequence, event: old, changed: false, sinks: []),
            RoutedEvent(sequence: pending[1].sequence, event: stillQueued, changed: false, sinks: ["a"]),
        ])
        #expect(try await store.eventCount() == 2)
        try await store.prune(deliveredBefore: Date().addingTimeInterval(-3600), deduplicationBefore: Date())
        #expect(try await store.eventCount() == 1)
        // The queued delivery still has its event.
        #expect(try await store.dueDeliveries(sink: "a", now: Date(), limit: 10, excluding: []).map(\.event.id) == [stillQueued.id])
        // Keys go a table at a time (DeduplicationTables): this first prune only starts the current
        // table's clock, so the key seen two hours ago, inside the window, is still a duplicate.
        #expect(try await store.journal([JournalEntry(event: makeEvent(), deduplicationKey: "a")]) == [.duplicate])
    }

    @Test("what is routed survives a restart: the routed-through mark is stored with the deliveries")
    func routedThroughSurvivesRestart() async throws {
        let directory = TemporaryDirectory()
        let events = (0..<3).map { _ in makeEvent() }
        do {
            let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
            _ = try await store.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil) })
            let first = try await store.unroutedEvents(limit: 2)
            #expect(first.map(\.event.id) == Array(events.prefix(2)).map(\.id))
            try await store.commitRouting(first.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["a"]) })
            #expect(try await store.unroutedCount() == 1)
        }
        let reopened = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        #expect(try await reopened.unroutedEvents(limit: 10).map(\.event.id) == [events[2].id])
        #expect(try await reopened.unroutedCount() == 1)
        #expect(try await reopened.dueDeliveries(sink: "a", now: Date(), limit: 10, excluding: []).count == 2)
    }

    @Test("a state file from before the routed-through mark keeps its unrouted events unrouted")
    func migratesRoutedFlags() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let events = (0..<4).map { _ in makeEvent() }
        do {
            // The schema as it was (v1, v2), with two routed events and two waiting.
            let queue = try DatabaseQueue(path: path)
            try SQLiteStateStore.migrator.migrate(queue, upTo: "v2-subscriptions")
            try await queue.write { db in
                for (index, event) in events.enumerated() {
                    try db.execute(
                        sql: "INSERT INTO events(id, received_at, subscription, body, routed) VALUES (?, ?, ?, ?, ?)",
                        arguments: [event.id, event.receivedAt.timeIntervalSince1970, event.subscription.name,
                                    String(decoding: event.encoded(), as: UTF8.self), index < 2 ? 1 : 0])
                }
            }
        }
        let store = try SQLiteStateStore(path: path, logger: quietLogger)
        #expect(try await store.unroutedEvents(limit: 10).map(\.event.id) == events.suffix(2).map(\.id))
        #expect(try await store.unroutedCount() == 2)
    }
}
