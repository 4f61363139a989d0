import BridgeCore
import Dispatch
import Foundation
import GRDB
import Synchronization
import TestSupport
import Testing

@testable import BridgeStore

/// The SQLite group committer's deferral on an injected clock: a write no caller waits to
/// acknowledge (routing, outcomes) waits up to 3 ms for a transaction to join before it starts one.
@Suite("SQLite group commit: the deferral of a write that can wait")
struct DeferredWriteClockTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    /// A store on `clock` with one delivery of one event to sink `a`; returns it and the delivery's id.
    func storeWithDelivery(_ directory: TemporaryDirectory, clock: ManualTestClock) async throws -> (SQLiteStateStore, Int64) {
        let store = try SQLiteStateStore(
            path: directory.file("state.sqlite"), walSizeLimit: SQLiteStateStore.walSizeLimit, checkpointInterval: nil, clock: clock, logger: quietLogger)
        _ = try await store.journal([JournalEntry(event: makeEvent(at: Self.start), deduplicationKey: nil, replica: nil)])
        let pending = try await store.unroutedEvents(limit: 10)
        // Routing is a deferred write too: it commits when the clock has moved 3 ms.
        let routing = Task {
            try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["a"]) }, now: Self.start)
        }
        await clock.sleepers(1, until: .milliseconds(3))
        clock.advance(by: .milliseconds(3))
        _ = try await routing.value
        let due = try await store.dueDeliveries(sink: "a", now: Self.start, limit: 10, excluding: [])
        return (store, try #require(due.first?.id))
    }

    @Test("alone, it commits when 3 ms have passed on the clock, not a microsecond before")
    func alone() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualTestClock(start: Self.start)
        let (store, id) = try await storeWithDelivery(directory, clock: clock)
        let write = Task { try await store.recordSuccesses(deliveryIDs: [id]) }
        await clock.sleepers(1, until: .milliseconds(6))
        clock.advance(by: .microseconds(2_999))
        #expect(clock.pendingDeadlines.count == 1, "still waiting for company")
        #expect(try await store.dueDeliveries(sink: "a", now: Self.start, limit: 10, excluding: []).map(\.id) == [id], "not written yet")
        clock.advance(by: .microseconds(1))
        try await write.value
        #expect(try await store.dueDeliveries(sink: "a", now: Self.start, limit: 10, excluding: []).isEmpty)
    }

    @Test("a write that cannot wait (a journal entry) takes it along at once, without the clock moving")
    func joins() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualTestClock(start: Self.start)
        let (store, id) = try await storeWithDelivery(directory, clock: clock)
        let write = Task { try await store.recordSuccesses(deliveryIDs: [id]) }
        await clock.sleepers(1, until: .milliseconds(6))
        _ = try await store.journal([JournalEntry(event: makeEvent(at: Self.start), deduplicationKey: nil, replica: nil)])
        try await write.value
        #expect(clock.now.offset == .milliseconds(3), "the clock did not move")
        #expect(try await store.dueDeliveries(sink: "a", now: Self.start, limit: 10, excluding: []).isEmpty)
    }
}

/// The group committer alone, on a table of its own, with a commit held open by the test.
@Suite("SQLite group commit: deferred writes that arrive during a commit", .timeLimit(.minutes(1)))
struct DeferredDuringCommitTests {
    /// Blocks the writer's thread at the first batch until `release()`.
    final class Gate: Sendable {
        let entered = DispatchSemaphore(value: 0)
        let opened = DispatchSemaphore(value: 0)
        let first = Mutex(true)

        func pass() {
            guard first.withLock({ value in defer { value = false }; return value }) else { return }
            entered.signal()
            opened.wait()
        }
    }

    func rows(_ pool: DatabasePool) throws -> [String] {
        try pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM t ORDER BY rowid") }
    }

    func insert(_ name: String) -> @Sendable (Database) throws -> Void {
        { db in try db.execute(sql: "INSERT INTO t(name) VALUES (?)", arguments: [name]) }
    }

    @Test("alone behind a commit, they wait for company (the deferral, or the next urgent write) instead of a commit of their own")
    func waitForCompany() async throws {
        let directory = TemporaryDirectory()
        let pool = try DatabasePool(path: directory.file("t.sqlite"))
        try await pool.write { db in try db.execute(sql: "CREATE TABLE t(name TEXT)") }
        let clock = ManualTestClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        let gate = Gate()
        let committer = GroupCommitter(pool: pool, clock: clock, beforeBatch: { gate.pass() })

        let journal = Task { try await committer.write(.now, insert("journal 1")) }
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                gate.entered.wait()
                continuation.resume()
            }
        }
        // The journal's commit is running: a routing write arrives meanwhile.
        let routing = Task { try await committer.write(.deferred, insert("routing")) }
        #expect(try await eventually { committer.pendingCount == 1 }, "the routing write is queued behind the commit")
        gate.opened.signal()
        try await journal.value
        // Behind the commit there is only the deferred write: it waits for the deferral.
        await clock.sleepers(1, until: .milliseconds(3))
        #expect(try rows(pool) == ["journal 1"], "no commit of its own right after the journal's")
        // The next urgent write takes it along, without the clock moving.
        try await committer.write(.now, insert("journal 2"))
        try await routing.value
        #expect(try rows(pool) == ["journal 1", "routing", "journal 2"])
        #expect(clock.now.offset == .zero)
    }
}

/// The group committer's commit interval on an injected clock: urgent writes that come sooner than
/// the interval after a transaction began wait for it, or for enough company (4), and share the next one.
@Suite("SQLite group commit: the commit interval", .timeLimit(.minutes(1)))
struct CommitIntervalTests {
    /// The clock's offset when each transaction began.
    final class Transactions: Sendable {
        let starts = Mutex<[Duration]>([])
    }

    let directory = TemporaryDirectory()
    let clock = ManualTestClock(start: Date(timeIntervalSince1970: 1_800_000_000))
    let transactions = Transactions()

    /// A committer with a 2 ms interval and a company of 4, on a table of its own. With `hold`,
    /// its first transaction stays open until the test signals it (others queue behind it).
    func committer(holdingFirst hold: DispatchSemaphore? = nil) async throws -> (GroupCommitter, DatabasePool) {
        let pool = try DatabasePool(path: directory.file("t.sqlite"))
        try await pool.write { db in try db.execute(sql: "CREATE TABLE t(name TEXT)") }
        let clock = clock
        let transactions = transactions
        let committer = GroupCommitter(
            pool: pool, commitInterval: .milliseconds(2), company: 4, clock: clock,
            beforeBatch: {
                let first = transactions.starts.withLock { starts in
                    starts.append(clock.now.offset)
                    return starts.count == 1
                }
                if first { hold?.wait() }
            })
        return (committer, pool)
    }

    /// Writes "a" with a committer whose first transaction is held; returns once that
    /// transaction has begun, with the write still waiting for `hold`.
    func heldFirstWrite(_ hold: DispatchSemaphore) async throws -> (GroupCommitter, DatabasePool, Task<Void, any Error>) {
        let (committer, pool) = try await committer(holdingFirst: hold)
        let a = Task { try await committer.write(.now, insert("a")) }
        #expect(try await eventually { transactions.starts.withLock { $0.count } == 1 }, "a's transaction began")
        return (committer, pool, a)
    }

    func insert(_ name: String) -> @Sendable (Database) throws -> Void {
        { db in try db.execute(sql: "INSERT INTO t(name) VALUES (?)", arguments: [name]) }
    }

    func rows(_ pool: DatabasePool) throws -> Set<String> {
        try Set(pool.read { db in try String.fetchAll(db, sql: "SELECT name FROM t") })
    }

    @Test("urgent writes sooner than the interval wait for it and share one transaction; a lone one later commits at once")
    func urgentWritesWait() async throws {
        let (committer, pool) = try await committer()
        try await committer.write(.now, insert("a"))
        #expect(try rows(pool) == ["a"], "the first write commits at once")

        let b = Task { try await committer.write(.now, insert("b")) }
        let c = Task { try await committer.write(.now, insert("c")) }
        await clock.sleepers(1, until: .milliseconds(2))
        #expect(try await eventually { committer.pendingCount == 2 }, "both wait for the interval")
        clock.advance(by: .microseconds(1_999))
        #expect(try rows(pool) == ["a"], "nothing commits before the interval is up")
        clock.advance(by: .microseconds(1))
        try await b.value
        try await c.value
        #expect(try rows(pool) == ["a", "b", "c"])

        // Long after the last transaction began: no wait, and the clock does not move.
        clock.advance(by: .milliseconds(10))
        try await committer.write(.now, insert("d"))
        #expect(try rows(pool) == ["a", "b", "c", "d"])
        #expect(transactions.starts.withLock { $0 } == [.zero, .milliseconds(2), .milliseconds(12)], "b and c shared one transaction")
    }

    @Test("with enough company (4 urgent writes) the transaction begins at once, without the clock moving")
    func enoughCompany() async throws {
        let (committer, pool) = try await committer()
        try await committer.write(.now, insert("a"))
        let early = ["b", "c", "d"].map { name in Task { try await committer.write(.now, insert(name)) } }
        await clock.sleepers(1, until: .milliseconds(2))
        #expect(try await eventually { committer.pendingCount == 3 }, "three wait for the interval")
        let e = Task { try await committer.write(.now, insert("e")) }
        #expect(try await eventually(timeout: .seconds(5)) { try rows(pool) == ["a", "b", "c", "d", "e"] }, "committed with the clock standing still")
        // Had they not gone, the interval lets them go now (so a failure ends the test).
        clock.advance(by: .milliseconds(2))
        for task in early + [e] { try await task.value }
        #expect(transactions.starts.withLock { $0 } == [.zero, .zero], "b to e in one transaction, at once")
    }

    @Test("urgent writes that came while a transaction was committing go next with half the company (2 of 4), without the clock moving")
    func queuedBehindACommitGoAtOnce() async throws {
        let hold = DispatchSemaphore(value: 0)
        let (committer, pool, a) = try await heldFirstWrite(hold)
        let queued = ["b", "c"].map { name in Task { try await committer.write(.now, insert(name)) } }
        #expect(try await eventually { committer.pendingCount == 2 }, "b and c queue behind a's commit")
        hold.signal()
        try await a.value
        // Two, half the company of 4, 0 ms after a's transaction began: they go at once.
        #expect(try await eventually(timeout: .seconds(5)) { try rows(pool) == ["a", "b", "c"] }, "committed with the clock standing still")
        clock.advance(by: .milliseconds(2))  // had they waited, this lets them go (so a failure ends the test)
        for task in queued { try await task.value }
        #expect(transactions.starts.withLock { $0 } == [.zero, .zero])
    }

    @Test("one write queued behind a commit waits for half the company; a second that comes later makes it, without the clock moving")
    func halfCompanyCountsLaterWrites() async throws {
        let hold = DispatchSemaphore(value: 0)
        let (committer, pool, a) = try await heldFirstWrite(hold)
        let b = Task { try await committer.write(.now, insert("b")) }
        #expect(try await eventually { committer.pendingCount == 1 })
        hold.signal()
        try await a.value
        await clock.sleepers(1, until: .milliseconds(2))
        #expect(try rows(pool) == ["a"], "b alone is less than half the company: it waits for the interval")
        let c = Task { try await committer.write(.now, insert("c")) }
        #expect(try await eventually(timeout: .seconds(5)) { try rows(pool) == ["a", "b", "c"] }, "b and c are half the company: they go at once")
        clock.advance(by: .milliseconds(2))  // had they waited, this lets them go (so a failure ends the test)
        try await b.value
        try await c.value
        #expect(transactions.starts.withLock { $0 } == [.zero, .zero])
    }

    @Test("a deferred write waiting for its deferral joins an urgent write's earlier turn")
    func deferredJoinsTheEarlierTurn() async throws {
        let (committer, pool) = try await committer()
        try await committer.write(.now, insert("a"))
        let routing = Task { try await committer.write(.deferred, insert("routing")) }
        await clock.sleepers(1, until: .milliseconds(3))
        let b = Task { try await committer.write(.now, insert("b")) }
        await clock.sleepers(1, until: .milliseconds(2))
        clock.advance(by: .milliseconds(2))
        try await b.value
        try await routing.value
        #expect(try rows(pool) == ["a", "routing", "b"])
        #expect(transactions.starts.withLock { $0 } == [.zero, .milliseconds(2)], "both in the transaction at 2 ms, none at 3 ms")
    }
}
