import BridgeCore
import BridgeSettings
import Foundation
import PostgresStore
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The PostgreSQL journal's group commit, against a real server. Each test holds the first batch
/// in flight (a `psql` session of the test's own locks the `events` table, so that batch waits at
/// its insert), queues more requests behind it, and then lets it go: the queued requests are
/// then one batch, whatever the machine's speed.
@Suite("PostgreSQL journal: group commit", .machine(.processes))
struct PostgresGroupCommitTests {
    /// A `psql` session of the test's own that holds a lock until ``release()``: the `events`
    /// table (every batch waits at its events insert), or one deduplication key (only a batch
    /// holding that key waits).
    final class HeldLock {
        let server: PostgresServer
        let database: String
        let process = ChildProcess()
        /// Only this test's database: other tests share the server (a relation's OID can repeat across databases).
        static let here = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        /// Selects the backends holding the lock.
        private let holders: String
        /// Counts the backends waiting for it.
        private let waiting: String

        static func events(_ server: PostgresServer, database: String) async throws -> HeldLock {
            try await HeldLock(
                server, database: database, "BEGIN; LOCK TABLE events IN EXCLUSIVE MODE; SELECT pg_sleep(600)",
                holders: "SELECT pid FROM pg_locks WHERE \(Self.here) AND relation = 'events'::regclass AND mode = 'ExclusiveLock' AND granted",
                waiting: "SELECT count(*) FROM pg_locks WHERE \(Self.here) AND relation = 'events'::regclass AND NOT granted")
        }

        /// An uncommitted insert of `key`: a batch inserting it waits for this transaction.
        static func key(_ key: String, _ server: PostgresServer, database: String) async throws -> HeldLock {
            try await HeldLock(
                server, database: database, "BEGIN; INSERT INTO dedup(key, seen_at) VALUES ('\(key)', 0); SELECT pg_sleep(600)",
                holders: "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'BEGIN; INSERT INTO dedup%' AND pid <> pg_backend_pid()",
                waiting: "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.datname = current_database() AND l.locktype = 'transactionid' AND NOT l.granted")
        }

        private init(_ server: PostgresServer, database: String, _ sql: String, holders: String, waiting: String) async throws {
            self.server = server
            self.database = database
            self.holders = holders
            self.waiting = waiting
            let (psql, arguments) = server.psqlCommand(database: database, sql)
            process.executableURL = URL(fileURLWithPath: psql)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            try #require(
                try await eventually { try await server.query(database: database, "SELECT count(*) FROM (\(holders)) h").first == "1" },
                "the test's psql did not take the lock")
        }

        /// Ends the session, rolling its transaction back (psql ignores SIGTERM, and a backend in
        /// pg_sleep would notice a killed client only at its end).
        func release() async throws {
            _ = try await server.query(database: database, "SELECT pg_terminate_backend(pid) FROM (\(holders)) h")
        }

        /// Whether a journal batch waits for the lock.
        func hasWaiter() async throws -> Bool {
            try await server.query(database: database, waiting).first == "1"
        }

        deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
    }

    static func database() async throws -> (PostgresServer, String, PostgresLocation) {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        return (server, database, try PostgresLocation.parse(server.url(database: database)))
    }

    /// Starts a journal request that becomes the batch in flight, held at its events insert by
    /// `lock`; returns its task once the batch waits for the lock.
    static func holdFirstBatch(_ store: PostgresStateStore, _ lock: HeldLock, key: String? = "first") async throws -> Task<
        [JournalOutcome], any Error
    > {
        let first = Task { try await store.journal([entry(makeEvent(resource: "first"), key: key)]) }
        try #require(try await eventually { try await lock.hasWaiter() }, "the first batch did not reach the lock")
        #expect(store.journalCommitStatistics.waiting == 0)
        return first
    }

    /// Starts one task per request, each once the one before waits for the next batch (tasks
    /// started together reach the committer in any order), so arrival order is the order of
    /// `requests`; returns them once all of them wait.
    static func queue(_ store: PostgresStateStore, _ requests: [[JournalEntry]]) async throws -> [Task<[JournalOutcome], any Error>] {
        var tasks: [Task<[JournalOutcome], any Error>] = []
        for request in requests {
            tasks.append(Task { try await store.journal(request) })
            let count = tasks.count
            try #require(
                try await eventually { store.journalCommitStatistics.waiting == count },
                "\(store.journalCommitStatistics.waiting) of \(count) requests queued")
        }
        return tasks
    }

    @Test("requests arriving while a batch commits share the next transaction; each gets its own outcome")
    func concurrentRequestsShareACommit() async throws {
        let (server, database, location) = try await Self.database()
        let store = try await PostgresStateStore(location: location, logger: quietLogger)
        defer { Task { await store.shutdown() } }
        let lock = try await HeldLock.events(server, database: database)
        let first = try await Self.holdFirstBatch(store, lock)
        let requests = (0..<20).map { i in (0...(i % 3)).map { j in entry(makeEvent(resource: "r\(i)-\(j)"), key: "k\(i)-\(j)") } }
        let queued = try await Self.queue(store, requests)
        #expect(try await store.eventCount() == 0, "nothing is visible before the commit")

        try await lock.release()
        #expect(try await first.value == [.journaled])
        for (task, request) in zip(queued, requests) {
            #expect(try await task.value == Array(repeating: .journaled, count: request.count))
        }
        let statistics = store.journalCommitStatistics
        #expect(statistics.batches == 2, "one batch held, then one for the 20 queued requests: \(statistics)")
        #expect(statistics.requests == 21)
        #expect(statistics.fallbacks == 0)
        #expect(try await store.eventCount() == 1 + requests.map(\.count).reduce(0, +))
        // The batch keeps arrival order in the sequence numbers, as requests one by one would.
        let resources = try await store.unroutedEvents(limit: 1000).map(\.event.resource)
        #expect(resources == ["first"] + requests.flatMap { $0.map(\.event.resource) })
    }

    @Test(
        "deduplication inside one batch is per item: the same item twice in a request and across requests, a key of the batch before, keys older and newer than the window"
    )
    func deduplicationPerItem() async throws {
        let (server, database, location) = try await Self.database()
        let store = try await PostgresStateStore(location: location, logger: quietLogger)
        defer { Task { await store.shutdown() } }
        // Keys journaled earlier: one just outside the window (it counts again), one inside it.
        #expect(try await store.journal([entry(makeEvent(at: t0.addingTimeInterval(-window - 1)), key: "old")]) == [.journaled])
        #expect(try await store.journal([entry(makeEvent(at: t0.addingTimeInterval(-window + 1)), key: "recent")]) == [.journaled])
        let before = store.journalCommitStatistics.batches

        let lock = try await HeldLock.events(server, database: database)
        let first = try await Self.holdFirstBatch(store, lock, key: "first")
        let later = t0.addingTimeInterval(window + 1)
        let requests: [[JournalEntry]] = [
            [entry(makeEvent(), key: "same"), entry(makeEvent(), key: "same")],  // twice in one request
            [entry(makeEvent(), key: "same")],  // again, in another request of the batch
            [entry(makeEvent(), key: "first")],  // the held batch's key: committed before this batch runs
            [entry(makeEvent(), key: "fresh"), entry(makeEvent(), key: nil)],
            [entry(makeEvent(), key: "old")],
            [entry(makeEvent(), key: "recent")],
            // The same key twice, the second beyond the window after the first: both count.
            [entry(makeEvent(), key: "spread"), entry(makeEvent(at: later), key: "spread"), entry(makeEvent(at: later), key: "spread")],
        ]
        let queued = try await Self.queue(store, requests)
        try await lock.release()
        #expect(try await first.value == [.journaled])
        var outcomes: [[JournalOutcome]] = []
        for task in queued { outcomes.append(try await task.value) }
        #expect(
            outcomes == [
                [.journaled, .duplicate],
                [.duplicate],
                [.duplicate],
                [.journaled, .journaled],
                [.journaled],
                [.duplicate],
                [.journaled, .journaled, .duplicate],
            ])
        let statistics = store.journalCommitStatistics
        #expect(statistics.batches - before == 2, "\(statistics)")
        #expect(statistics.fallbacks == 0)
        #expect(try await store.eventCount() == 2 + 1 + 1 + 2 + 1 + 2)
        // The next batch sees what this one claimed.
        #expect(try await store.journal([entry(makeEvent(), key: "same"), entry(makeEvent(), key: "fresh")]) == [.duplicate, .duplicate])
    }

    @Test("a request the server refuses fails alone: the batch runs again request by request and the others are journaled")
    func failingMemberDoesNotPoisonTheBatch() async throws {
        let (server, database, location) = try await Self.database()
        let store = try await PostgresStateStore(location: location, logger: quietLogger)
        defer { Task { await store.shutdown() } }
        let taken = makeEvent(resource: "taken")
        #expect(try await store.journal([entry(taken)]) == [.journaled])

        let lock = try await HeldLock.events(server, database: database)
        let first = try await Self.holdFirstBatch(store, lock)
        // The middle request reuses an event id the journal holds: a unique violation.
        let requests: [[JournalEntry]] = [
            [entry(makeEvent(resource: "a"), key: "a")],
            [entry(makeEvent(resource: "b"), key: "b"), entry(taken, key: "b2")],
            [entry(makeEvent(resource: "c"), key: "c")],
        ]
        let queued = try await Self.queue(store, requests)
        try await lock.release()
        #expect(try await first.value == [.journaled])
        #expect(try await queued[0].value == [.journaled])
        do {
            _ = try await queued[1].value
            Issue.record("a request reusing an event id was journaled")
        } catch {
            #expect("\(error)".contains("duplicate key"), "\(error)")
        }
        #expect(try await queued[2].value == [.journaled])
        let statistics = store.journalCommitStatistics
        #expect(statistics.fallbacks == 1, "\(statistics)")
        let resources = Set(try await store.unroutedEvents(limit: 100).map(\.event.resource))
        #expect(resources == ["taken", "first", "a", "c"])
        // The failed request claimed nothing: its keys are free.
        #expect(try await store.journal([entry(makeEvent(resource: "b"), key: "b"), entry(makeEvent(), key: "b2")]) == [.journaled, .journaled])
    }

    /// `store.journal(entries)` given up after `deadline`, as the intake does for a remote store.
    static func journal(_ store: PostgresStateStore, _ entries: [JournalEntry], deadline: Duration) -> Task<[JournalOutcome], any Error> {
        let write = Task { try await store.journal(entries) }
        Task {
            try await Task.sleep(for: deadline)
            write.cancel()
        }
        return write
    }

    @Test("a batch that no request waits for any more (all gave up at their deadline) holds up nobody: the next batch commits while it still hangs")
    func abandonedBatchHoldsUpNobody() async throws {
        let (server, database, location) = try await Self.database()
        let store = try await PostgresStateStore(location: location, logger: quietLogger)
        defer { Task { await store.shutdown() } }
        let lock = try await HeldLock.key("stuck", server, database: database)
        let stuck = Self.journal(store, [entry(makeEvent(resource: "stuck"), key: "stuck")], deadline: .milliseconds(500))
        try #require(try await eventually { try await lock.hasWaiter() }, "the batch did not reach the held key")
        await #expect(throws: CancellationError.self) { try await stuck.value }
        #expect(store.journalCommitStatistics.abandoned == 1)

        // The held batch still waits at the server; a request for another key does not wait for it.
        #expect(try await lock.hasWaiter())
        #expect(try await Self.journal(store, [entry(makeEvent(resource: "next"), key: "next")], deadline: .seconds(20)).value == [.journaled])
        #expect(try await lock.hasWaiter(), "the abandoned batch was still in flight")
        try await lock.release()
        #expect(try await eventually { try await !lock.hasWaiter() })
    }

    @Test(
        "the server going away mid-batch: the batch in flight and the queued requests answer by their deadline, never later; after a restart the journal works again"
    )
    func serverGoneMidBatch() async throws {
        guard let server = try await PostgresServer.dedicated() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        defer { server.remove() }
        let database = try await server.createDatabase()
        let store = try await PostgresStateStore(location: try PostgresLocation.parse(server.url(database: database)), logger: quietLogger)
        defer { Task { await store.shutdown() } }
        let lock = try await HeldLock.events(server, database: database)
        let deadline = Duration.seconds(3)
        let started = ContinuousClock.now
        let first = Self.journal(store, [entry(makeEvent(resource: "first"), key: "first")], deadline: deadline)
        try #require(try await eventually { try await lock.hasWaiter() }, "the first batch did not reach the lock")
        let queued = (0..<5).map { i in Self.journal(store, [entry(makeEvent(resource: "q\(i)"), key: "q\(i)")], deadline: deadline) }
        try #require(try await eventually { store.journalCommitStatistics.waiting == 5 })

        try await server.stop()
        for task in [first] + queued {
            await #expect(throws: (any Error).self) { try await task.value }
        }
        // Their deadline, plus a margin for a busy machine; not the pool's minute of connection attempts.
        #expect(ContinuousClock.now - started < deadline + .seconds(3))
        #expect(store.journalCommitStatistics.batches == 0)

        try await server.start()
        // The pool reconnects with a backoff of its own; each attempt has its deadline too.
        let attempts = Mutex(0)
        #expect(
            try await eventually(timeout: .seconds(60)) {
                let attempt = attempts.withLock { count in
                    count += 1
                    return count
                }
                let write = Self.journal(store, [entry(makeEvent(resource: "after-\(attempt)"), key: "after-\(attempt)")], deadline: .seconds(5))
                return (try? await write.value) == [.journaled]
            }, "the journal works again after the restart")
        // Nothing of the batch the stop cut was committed.
        let resources = try await store.unroutedEvents(limit: 100).compactMap(\.event.resource)
        #expect(!resources.contains("first"), "\(resources)")
        #expect(resources.contains { $0.hasPrefix("after-") })
    }
}
