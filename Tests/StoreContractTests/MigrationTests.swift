import BridgeCore
import BridgeSettings
import Foundation
import TestSupport
import Testing

@testable import BridgeStore
@testable import PostgresStore

/// A store made by the previous schema (main before replicas) opens, migrates, and keeps its
/// work: its unrouted events are routed by any replica, its deliveries are unclaimed.
@Suite("Store migrations: from the schema before replicas")
struct MigrationTests {
    /// The rows an older bridge left: an unrouted event and a routed one with a pending delivery.
    static func oldRows(routedThrough: Bool) -> String {
        let unrouted = makeEvent(at: t0.addingTimeInterval(1))
        let routed = makeEvent(at: t0)
        let body = { (event: BridgeEvent) in String(decoding: event.encoded(), as: UTF8.self).replacingOccurrences(of: "'", with: "''") }
        let flag = routedThrough ? "1" : "true"
        let unflag = routedThrough ? "0" : "false"
        return """
            INSERT INTO events(id, received_at, subscription, body, routed) VALUES ('\(routed.id)', \(t0.timeIntervalSince1970), 'inbox', '\(body(routed))', \(flag));
            INSERT INTO events(id, received_at, subscription, body, routed) VALUES ('\(unrouted.id)', \(t0.timeIntervalSince1970 + 1), 'inbox', '\(body(unrouted))', \(unflag));
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

    @Test("a SQLite file of schema v3 migrates to the current schema and keeps its events and deliveries")
    func sqlite() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("graph-bridge-migration-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/state.sqlite"
        try SQLiteStateStore.createFile(at: path, migratedThrough: "v3-routing-watermark", sql: Self.oldRows(routedThrough: true))
        let store = try SQLiteStateStore(path: path, logger: quietLogger)
        #expect(try store.appliedMigrations().last == "v5-sink-cursors")
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
}
