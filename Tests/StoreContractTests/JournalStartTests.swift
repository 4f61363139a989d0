import BridgeCore
import Dispatch
import Foundation
import GRDB
import Synchronization
import TestSupport
import Testing

@testable import BridgeStore

/// The first journal write of a transaction reads where numbering starts and which deduplication
/// table is current; the next ones in the same transaction take that from the write before. These
/// tests put several writes in one transaction by holding the writer's queue while they queue up.
@Suite("SQLite store: journal writes in one transaction", .timeLimit(.minutes(1)))
struct JournalStartTests {
    /// Holds the store's writer queue until `release()`; the writes queued meanwhile commit together.
    final class WriterHold: Sendable {
        let entered = DispatchSemaphore(value: 0)
        let opened = DispatchSemaphore(value: 0)
        let task: Task<Void, any Error>

        init(_ store: SQLiteStateStore) async {
            let entered = entered
            let opened = opened
            task = Task {
                try await store.pool.writeWithoutTransaction { _ in
                    entered.signal()
                    opened.wait()
                }
            }
            await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    entered.wait()
                    continuation.resume()
                }
            }
        }

        func release() async throws {
            opened.signal()
            try await task.value
        }
    }

    /// Starts `write` and returns once it waits in the committer's queue (so writes queue in order).
    func queue<T: Sendable>(_ store: SQLiteStateStore, _ write: @escaping @Sendable () async throws -> T) async throws -> Task<T, any Error> {
        let before = store.committer.pendingCount
        let task = Task { try await write() }
        #expect(try await eventually { store.committer.pendingCount == before + 1 })
        return task
    }

    static func event(_ id: String) -> BridgeEvent {
        var event = makeEvent(at: t0)
        event.id = id
        return event
    }

    static func sequences(_ store: SQLiteStateStore) async throws -> [String: Int64] {
        Dictionary(uniqueKeysWithValues: try await store.unroutedEvents(limit: 100).map { ($0.event.id, $0.sequence) })
    }

    @Test("a transaction retried with savepoints numbers its events afresh: no number skipped, none given twice")
    func retriedTransaction() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), walSizeLimit: 1 << 30, checkpointInterval: nil, logger: quietLogger)
        _ = try await store.journal([entry(Self.event("e1"))])
        let hold = await WriterHold(store)
        let a = try await queue(store) { try await store.journal([entry(Self.event("a"))]) }
        // Routing an event that does not exist violates the deliveries → events foreign key: the
        // batch's plain transaction is rolled back, and every write runs again in a savepoint.
        let bogus = try await queue(store) {
            try await store.commitRouting([RoutedEvent(sequence: 987_654, event: makeEvent(at: t0), changed: false, sinks: ["s"])], now: t0)
        }
        let b = try await queue(store) { try await store.journal([entry(Self.event("b"))]) }
        try await hold.release()
        #expect(try await a.value == [.journaled])
        await #expect(throws: (any Error).self) { try await bogus.value }
        #expect(try await b.value == [.journaled])
        #expect(try await Self.sequences(store) == ["e1": 1, "a": 2, "b": 3])
    }

    @Test("a prune that turns the deduplication tables between two journal writes sends the second's keys to the new current table")
    func pruneBetweenJournalWrites() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), walSizeLimit: 1 << 30, checkpointInterval: nil, logger: quietLogger)
        let s = DeduplicationTables.slack
        #expect(try await DeduplicationTablesTests.journal(store, ["first"], at: t0) == [.journaled])
        try await DeduplicationTablesTests.prune(store, at: t0.addingTimeInterval(1))  // dedup_b's turn begins
        let hold = await WriterHold(store)
        let x = try await queue(store) { try await DeduplicationTablesTests.journal(store, ["x"], at: t0.addingTimeInterval(2)) }
        let swap = try await queue(store) { try await DeduplicationTablesTests.prune(store, at: t0.addingTimeInterval(window + s + 1.5)) }
        let y = try await queue(store) { try await DeduplicationTablesTests.journal(store, ["y"], at: t0.addingTimeInterval(3)) }
        try await hold.release()
        #expect(try await x.value == [.journaled])
        try await swap.value
        #expect(try await y.value == [.journaled])
        // "first" and "x" in dedup_b, which is kept now; "y" in dedup_a, current since the swap.
        #expect(try await DeduplicationTablesTests.tables(store) == (1, 2, "dedup_a"))
        let numbers = try await store.unroutedEvents(limit: 100).map(\.sequence)
        #expect(numbers == [1, 2, 3])
    }
}
