import BridgeCore
import Foundation
import GRDB
import TestSupport
import Testing

@testable import BridgeStore

/// The SQLite store's two deduplication tables (``DeduplicationTables``): keys go into the current
/// one, pruning empties the other once all of it has expired, then the tables swap.
@Suite("SQLite store: deduplication tables")
struct DeduplicationTablesTests {
    /// Rows in each table, and which one is current.
    static func tables(_ store: SQLiteStateStore) async throws -> (a: Int, b: Int, current: String?) {
        try await store.pool.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dedup_a") ?? -1,
                try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM dedup_b") ?? -1,
                try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = ?", arguments: [DeduplicationTables.currentKey])
            )
        }
    }

    /// Prunes as if it were `now` (the deduplication cut-off a window before).
    static func prune(_ store: SQLiteStateStore, at now: Date) async throws {
        try await store.prune(deliveredBefore: t0, deduplicationBefore: now.addingTimeInterval(-window))
    }

    static func journal(_ store: SQLiteStateStore, _ keys: [String], at date: Date) async throws -> [JournalOutcome] {
        try await store.journal(keys.map { entry(makeEvent(at: date), key: $0) })
    }

    /// A turn's start is the prune's time that began it plus this.
    static let slack = DeduplicationTables.slack

    @Test("keys stay between one and two windows: the tables swap a window after the current one began, and the kept one empties the swap after")
    func turns() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), walSizeLimit: 1 << 30, checkpointInterval: nil, logger: quietLogger)
        let s = Self.slack
        #expect(try await Self.tables(store) == (0, 0, "dedup_b"))
        #expect(try await Self.journal(store, ["first"], at: t0) == [.journaled])
        try await Self.prune(store, at: t0.addingTimeInterval(1))  // dedup_b's turn begins at t0 + 1 s + slack
        #expect(try await Self.journal(store, ["second"], at: t0.addingTimeInterval(2)) == [.journaled])
        try await Self.prune(store, at: t0.addingTimeInterval(window + s))  // not a window since it began
        #expect(try await Self.tables(store) == (0, 2, "dedup_b"))

        try await Self.prune(store, at: t0.addingTimeInterval(window + s + 1.5))  // a window since: swap
        #expect(try await Self.tables(store) == (0, 2, "dedup_a"))
        // The kept table still answers: "second" (seen at t0 + 2 s) is inside the window at
        // t0 + window + 1.5 s, "first" is not and journals again, into the new current table.
        #expect(try await Self.journal(store, ["second", "first", "third"], at: t0.addingTimeInterval(window + 1.5)) == [.duplicate, .journaled, .journaled])
        #expect(try await Self.tables(store) == (2, 2, "dedup_a"))

        // dedup_a's turn began at t0 + window + 2 slack + 1.5 s.
        try await Self.prune(store, at: t0.addingTimeInterval(2 * window + 2 * s + 1))
        #expect(try await Self.tables(store) == (2, 2, "dedup_a"))
        try await Self.prune(store, at: t0.addingTimeInterval(2 * window + 2 * s + 2))  // empties dedup_b and swaps
        #expect(try await Self.tables(store) == (2, 0, "dedup_b"))
        // "first" (seen at t0 + window + 1.5 s, kept in dedup_a) is a duplicate until a window
        // after that; "second" went with dedup_b.
        #expect(try await Self.journal(store, ["first", "second"], at: t0.addingTimeInterval(2 * window + 1.5)) == [.duplicate, .journaled])
        // Reopened, the store knows which table is current and since when (t0 + 2 windows + 3 slack + 2 s).
        let reopened = try SQLiteStateStore(path: directory.file("state.sqlite"), walSizeLimit: 1 << 30, checkpointInterval: nil, logger: quietLogger)
        #expect(try await Self.tables(reopened) == (2, 1, "dedup_b"))
        try await Self.prune(reopened, at: t0.addingTimeInterval(3 * window + 3 * s + 1))
        #expect(try await Self.tables(reopened) == (2, 1, "dedup_b"))
        try await Self.prune(reopened, at: t0.addingTimeInterval(3 * window + 3 * s + 3))
        #expect(try await Self.tables(reopened) == (0, 1, "dedup_a"))
    }

    @Test("an expired table is emptied a chunk a transaction, and a prune stopped between chunks goes on at the next")
    func chunks() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        let store = try SQLiteStateStore(path: path, walSizeLimit: 1 << 30, checkpointInterval: nil, deduplicationChunk: 3, logger: quietLogger)
        let s = Self.slack
        let keys = (0..<10).map { "key-\($0)" }
        _ = try await Self.journal(store, keys, at: t0)
        try await Self.prune(store, at: t0)
        try await Self.prune(store, at: t0.addingTimeInterval(window + s + 1))
        #expect(try await Self.tables(store) == (0, 10, "dedup_a"))
        let commits = store.commits
        try await Self.prune(store, at: t0.addingTimeInterval(2 * window + 2 * s + 2))
        #expect(try await Self.tables(store) == (0, 0, "dedup_b"))
        #expect(store.commits - commits == 4, "10 keys, 3 a transaction: 3 + 3 + 3, then 1 and the swap")

        // Stopped after one chunk (as a killed process would be): what is left goes at the next prune.
        _ = try await Self.journal(store, keys, at: t0.addingTimeInterval(2 * window + 2 * s + 2))
        try await Self.prune(store, at: t0.addingTimeInterval(3 * window + 3 * s + 3))
        #expect(try await Self.tables(store) == (0, 10, "dedup_a"))
        let more = try await store.pool.write { db in
            try DeduplicationTables.prune(now: t0.timeIntervalSince1970 + 4 * window + 4 * s + 4, window: window, chunk: 3, db)
        }
        #expect(more)
        #expect(try await Self.tables(store) == (0, 7, "dedup_a"))
        try await Self.prune(store, at: t0.addingTimeInterval(4 * window + 4 * s + 5))
        #expect(try await Self.tables(store) == (0, 0, "dedup_b"))
    }
}
