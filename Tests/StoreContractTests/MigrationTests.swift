import BridgeCore
import BridgeSettings
import Foundation
import GRDB
import TestSupport
import Testing

@testable import BridgeStore
@testable import PostgresStore

/// A store made by the previous schema (main before replicas) opens, migrates, and keeps its
/// work: its unrouted events are routed by any replica, its deliveries are unclaimed.
@Suite("Store migrations: from the schema before replicas")
struct MigrationTests {
    /// The schema a file migrates to.
    static let latest = "v9-deduplication-tables"

    /// `event`'s JSON as an SQL string literal's inside.
    static func bodyText(_ event: BridgeEvent) -> String {
        String(decoding: event.encoded(), as: UTF8.self).replacingOccurrences(of: "'", with: "''")
    }

    /// Rows for `events` in an older schema's `events` table; `numbered`: with `seq` 1, 2, ...
    static func eventRows(_ events: [BridgeEvent], numbered: Bool) -> String {
        events.enumerated().map { index, event in
            let (column, value) = numbered ? ("seq, ", "\(index + 1), ") : ("", "")
            return "INSERT INTO events(\(column)id, received_at, subscription, body) VALUES (\(value)'\(event.id)', \(event.receivedAt.timeIntervalSince1970), 'inbox', '\(bodyText(event))');"
        }.joined()
    }

    /// The rows an older bridge left: an unrouted event and a routed one with a pending delivery.
    static func oldRows(routedThrough: Bool) -> String {
        let unrouted = makeEvent(at: t0.addingTimeInterval(1))
        let routed = makeEvent(at: t0)
        let flag = routedThrough ? "1" : "true"
        let unflag = routedThrough ? "0" : "false"
        return """
            INSERT INTO events(id, received_at, subscription, body, routed) VALUES ('\(routed.id)', \(t0.timeIntervalSince1970), 'inbox', '\(Self.bodyText(routed))', \(flag));
            INSERT INTO events(id, received_at, subscription, body, routed) VALUES ('\(unrouted.id)', \(t0.timeIntervalSince1970 + 1), 'inbox', '\(Self.bodyText(unrouted))', \(unflag));
            INSERT INTO deliveries(event_seq, sink, created_at, next_attempt_at) VALUES (1, 's', \(t0.timeIntervalSince1970), \(t0.timeIntervalSince1970));
            """ + (routedThrough ? "UPDATE routing_state SET routed_through = 1;" : "")
    }

    /// What the migrated store must do with those rows.
    static func checkMigrated(_ store: any StateStore) async throws {
        let replica = ReplicaID("after-migration")
        let now = t0.addingTimeInterval(60)
        try await store.registerReplica(replica, now: now, lease: .seconds(30))
        let claimed = try await store.claimDeliveries(sink: "s", replica: replica, now: now, limit: 10)
        #expect(claimed.map(\.event.receivedAt) == [t0], "the old delivery is unclaimed")
        let pending = try await store.unroutedEvents(for: replica, after: 0, limit: 10)
        #expect(pending.map(\.event.receivedAt) == [t0.addingTimeInterval(1)], "an event without a replica is any replica's to route")
        let routed = try await store.commitRouting(
            pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["s"]) }, now: now)
        #expect(routed == Set(pending.map(\.sequence)))
        #expect(try await store.claimDeliveries(sink: "s", replica: replica, now: now, limit: 10).count == 1)
    }

    /// A state file as an older graph-bridge left it (the schema after `migration`, then `sql`),
    /// in `directory`, opened by this one: it must have migrated to the latest schema.
    static func migrated(_ directory: TemporaryDirectory, from migration: String, sql: String) throws -> SQLiteStateStore {
        let path = directory.file("state.sqlite")
        try SQLiteStateStore.createFile(at: path, migratedThrough: migration, sql: sql)
        let store = try SQLiteStateStore(path: path, logger: quietLogger)
        #expect(try store.appliedMigrations().last == Self.latest)
        return store
    }

    @Test("a SQLite file of schema v3 migrates to the current schema and keeps its events and deliveries")
    func sqlite() async throws {
        let directory = TemporaryDirectory()  // removed with the object: held to the test's end
        let store = try Self.migrated(directory, from: "v3-routing-watermark", sql: Self.oldRows(routedThrough: true))
        try await Self.checkMigrated(store)
    }

    @Test("a PostgreSQL database of schema version 1 migrates to version 2 and keeps its events and deliveries")
    func postgres() async throws {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        let location = try PostgresLocation.parse(server.url(database: database))
        let version1 = PostgresStateStore.migrations[0].joined(separator: ";\n")
        try await server.psql(
            database: database,
            """
            CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
            \(version1);
            INSERT INTO schema_migrations(version) VALUES (1);
            \(Self.oldRows(routedThrough: false))
            """)
        let store = try await PostgresStateStore(location: location, logger: quietLogger)
        #expect(try await store.storedSchemaVersion() == 2)
        do {
            try await Self.checkMigrated(store)
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
    }

    @Test("a SQLite file of schema v5 keeps its deliveries through the events table's rebuild, and numbers on from the highest number given")
    func sqliteEventsSequence() async throws {
        let directory = TemporaryDirectory()
        let events = (0..<3).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
        // Three events given numbers 1-3, all routed; 1 and 3 delivered and pruned, 2 still waits
        // as an older row. sqlite_sequence says 3, and no event left has it.
        let store = try Self.migrated(
            directory, from: "v5-sink-cursors",
            sql: Self.eventRows(events, numbered: false)
                + """
                INSERT INTO deliveries(event_seq, sink, created_at, next_attempt_at) VALUES (2, 's', \(t0.timeIntervalSince1970), \(t0.timeIntervalSince1970));
                UPDATE routing_state SET routed_through = 3;
                DELETE FROM events WHERE seq IN (1, 3);
                """)
        let now = t0.addingTimeInterval(60)
        let replica = ReplicaID("after-migration")
        try await store.registerReplica(replica, now: now, lease: .seconds(30))
        #expect(try await store.claimDeliveries(sink: "s", replica: replica, now: now, limit: 10).map(\.event.id) == [events[1].id], "the rebuild kept the row")
        _ = try await store.journal([entry(makeEvent(at: now))])
        #expect(try await store.unroutedEvents(limit: 10).map(\.sequence) == [4], "3 was given before: the next is 4")
    }

    @Test("a SQLite file of schema v6 keeps its routed-through mark and its sinks' cursors as the routing cursor joins them")
    func sqliteRoutingCursor() async throws {
        let directory = TemporaryDirectory()
        let events = (0..<3).map { makeEvent(at: t0.addingTimeInterval(Double($0))) }
        // Events 1-3; 1 and 2 routed to sink a (one range), whose cursor has passed 1.
        let store = try Self.migrated(
            directory, from: "v6-events-sequence",
            sql: Self.eventRows(events, numbered: true)
                + """
                UPDATE routing_state SET routed_through = 2;
                INSERT INTO sink_cursors(slot, sink, through) VALUES (0, 'a', 1);
                INSERT INTO routes(first, last, slots, routed_at) VALUES (1, 2, '0', \(t0.timeIntervalSince1970));
                """)
        #expect(try await store.pool.read { db in try Bool.fetchOne(db, sql: "SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = 'routing_state'") } == false)
        let now = t0.addingTimeInterval(60)
        #expect(try await store.unroutedEvents(limit: 10).map(\.sequence) == [3], "the mark stayed at 2")
        #expect(try await store.dueDeliveries(sink: "a", now: now, limit: 10, excluding: []).map(\.event.id) == [events[1].id], "a's cursor stayed at 1")
        // A new sink gets the next slot after the sinks' (not the routing row's).
        let pending = try await store.unroutedEvents(limit: 10)
        try await store.commitRouting(pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: ["a", "b"]) }, now: now)
        #expect(try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT slot FROM sink_cursors WHERE sink = 'b'") } == 1)
        #expect(try await store.dueDeliveries(sink: "b", now: now, limit: 10, excluding: []).map(\.event.id) == [events[2].id])
        #expect(try await store.dueDeliveries(sink: "a", now: now, limit: 10, excluding: []).map(\.event.id) == [events[1].id, events[2].id])
        #expect(try await store.unroutedEvents(limit: 10).isEmpty, "the mark moved to 3")
        // Reopened: the mirror is loaded from the sinks' rows alone.
        let reopened = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        #expect(try await reopened.dueDeliveries(sink: "a", now: now, limit: 10, excluding: []).map(\.event.id) == [events[1].id, events[2].id])
        #expect(try await reopened.unroutedEvents(limit: 10).isEmpty)
    }

    @Test("a SQLite file of schema v8 keeps its deduplication keys as the kept table, which goes a window after the first prune")
    func sqliteDeduplicationTables() async throws {
        let directory = TemporaryDirectory()
        let store = try Self.migrated(
            directory, from: "v8-open-route-range",
            sql: "INSERT INTO dedup(key, seen_at) VALUES ('recent', \(t0.timeIntervalSince1970)), ('expired', \(t0.timeIntervalSince1970 - window - 1));")
        #expect(try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('dedup', 'dedup_seen')") } == 0)
        let outcomes = try await store.journal([entry(makeEvent(at: t0.addingTimeInterval(1)), key: "recent"), entry(makeEvent(at: t0.addingTimeInterval(1)), key: "expired")])
        #expect(outcomes == [.duplicate, .journaled])
        // The first prune starts the new table's clock; a window later the kept keys go.
        try await store.prune(deliveredBefore: t0, deduplicationBefore: t0.addingTimeInterval(2 - window))
        try await store.prune(deliveredBefore: t0, deduplicationBefore: t0.addingTimeInterval(3 + DeduplicationTables.slack))
        let rows = try await store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT key FROM dedup_a UNION ALL SELECT '/' UNION ALL SELECT key FROM dedup_b")
        }
        #expect(rows == ["/", "expired"], "dedup_a lost the old keys and is current again; the key journaled since is in the kept table now")
    }
}
