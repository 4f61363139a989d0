import BridgeCore
import BridgeSettings
import Foundation
import PostgresStore
import Testing
import TestSupport

/// What only the PostgreSQL store has: its versioned schema. (The contract suite covers the rest.)
@Suite("PostgreSQL store: schema")
struct PostgresStoreTests {
    static func database() async throws -> (PostgresServer, PostgresLocation) {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        return (server, try PostgresLocation.parse(server.url(database: database)))
    }

    @Test("the first start creates the schema and records its version; the next start finds it and keeps the data")
    func migratesOnce() async throws {
        let (_, location) = try await Self.database()
        let first = try await PostgresStateStore(location: location, logger: quietLogger)
        #expect(try await first.storedSchemaVersion() == PostgresStateStore.schemaVersion)
        #expect(try await first.journal([entry(makeEvent(), key: "k")]) == [.journaled])
        await first.shutdown()

        let second = try await PostgresStateStore(location: location, logger: quietLogger)
        #expect(try await second.storedSchemaVersion() == PostgresStateStore.schemaVersion)
        #expect(try await second.unroutedCount() == 1)
        #expect(try await second.journal([entry(makeEvent(), key: "k")]) == [.duplicate])
        await second.shutdown()
    }

    @Test("a database whose schema is newer than this build knows is refused, naming both versions")
    func refusesNewerSchema() async throws {
        let (server, location) = try await Self.database()
        try await PostgresStateStore(location: location, logger: quietLogger).shutdown()
        let newer = PostgresStateStore.schemaVersion + 1
        try await server.psql(database: location.database, "INSERT INTO schema_migrations(version) VALUES (\(newer))")
        do {
            let store = try await PostgresStateStore(location: location, logger: quietLogger)
            await store.shutdown()
            Issue.record("a newer schema was accepted")
        } catch {
            #expect("\(error)".contains("holds graph-bridge schema version \(newer), newer than the \(PostgresStateStore.schemaVersion) this graph-bridge knows"), "\(error)")
        }
    }

    @Test("a server that cannot be reached fails the start at once, naming the database, without the password")
    func unreachable() async throws {
        let (server, location) = try await Self.database()
        var wrong = location
        wrong.socketDirectory = server.socketDirectory + "-missing"
        wrong.password = "hunter2"
        do {
            let store = try await PostgresStateStore(location: wrong, logger: quietLogger)
            await store.shutdown()
            Issue.record("a store opened on a missing socket")
        } catch {
            #expect("\(error)".hasPrefix("PostgreSQL at postgres://graph_bridge@\(wrong.socketPath!)/\(location.database)"), "\(error)")
            #expect(!"\(error)".contains("hunter2"))
        }
    }
}
