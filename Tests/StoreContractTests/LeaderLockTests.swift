import BridgeCore
import BridgeSettings
import Foundation
import Logging
import PostgresStore
import Synchronization
import TestSupport
import Testing

/// The leader election of replicas on PostgreSQL, against a real server: one holder at a time,
/// and a leader whose session is cut stops leading at once while another takes over.
@Suite("leader lock on PostgreSQL", .machine(.processes))
struct LeaderLockTests {
    /// Who leads, as the locks report it.
    final class Roles: Sendable {
        let state = Mutex<[String: Bool]>([:])
        let leads = Mutex<[String]>([])

        func changed(_ name: String, _ leading: Bool) {
            state.withLock { $0[name] = leading }
            if leading { leads.withLock { $0.append(name) } }
        }

        var leaders: [String] { state.withLock { $0.filter(\.value).map(\.key).sorted() } }
        var history: [String] { leads.withLock { $0 } }
    }

    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Counts the advisory locks granted in the query's own database (other tests share the server).
    static let advisoryLocksHere =
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"

    static func location(_ server: PostgresServer, database: String) throws -> PostgresLocation {
        try PostgresLocation.parse(server.url(database: database))
    }

    @Test("two replicas: one leads; when its session is terminated it stops leading and the other takes over")
    func takeover() async throws {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        let location = try Self.location(server, database: database)
        let roles = Roles()
        let logger = Self.quiet
        var tasks: [Task<Void, Never>] = []
        for name in ["a", "b"] {
            // The takeover comes from the terminated session's error, not from a late probe, so the
            // probe timeout is the default's. With 2 s, a probe held up on a loaded host could make
            // the leader step down before the termination, which would then cut the other replica
            // and hand the lead back to the first: the one way this test timed out (once, in a
            // full parallel run).
            let lock = LeaderLock(location: location, retryInterval: .milliseconds(100), probeInterval: .milliseconds(100), logger: logger)
            tasks.append(
                Task {
                    await lock.run(changed: { roles.changed(name, $0) }) {
                        // The work of a leader: runs until cancelled.
                        while !Task.isCancelled { try? await Task.sleep(for: .seconds(60)) }
                    }
                })
        }
        defer { for task in tasks { task.cancel() } }
        #expect(try await eventually { roles.leaders.count == 1 })
        let first = try #require(roles.leaders.first)
        #expect(try await server.query(database: database, Self.advisoryLocksHere).first == "1")

        // The leader's session is cut by the server: it stops leading, and the other one leads.
        _ = try await server.query(database: database, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        #expect(try await eventually { roles.leaders.count == 1 && roles.leaders.first != first })
        #expect(roles.history.count == 2, "\(roles.history)")
        #expect(roles.leaders.count <= 1)

        // Cancelled: the leader stops leading and its lock is released.
        for task in tasks { task.cancel() }
        let started = tasks
        let stopped: Void? = await value(within: .seconds(30)) { for task in started { await task.value } }
        #expect(stopped != nil, "a cancelled lock ends")
        #expect(roles.leaders.isEmpty)
        #expect(
            try await eventually {
                try await server.query(database: database, Self.advisoryLocksHere).first == "0"
            })
    }

    @Test("a leader whose server goes away stops leading at once; it leads again when the server is back")
    func serverRestart() async throws {
        guard let server = try await PostgresServer.dedicated() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        defer { server.remove() }
        let database = try await server.createDatabase()
        let roles = Roles()
        let lock = LeaderLock(
            location: try Self.location(server, database: database), retryInterval: .milliseconds(100), probeInterval: .milliseconds(100),
            probeTimeout: .seconds(2), logger: Self.quiet)
        let task = Task {
            await lock.run(changed: { roles.changed("a", $0) }) {
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(60)) }
            }
        }
        defer { task.cancel() }
        #expect(try await eventually { roles.leaders == ["a"] })
        try await server.stop()
        #expect(try await eventually(timeout: .seconds(5)) { roles.leaders.isEmpty })
        try await server.start()
        #expect(try await eventually(timeout: .seconds(30)) { roles.leaders == ["a"] })
        #expect(roles.history == ["a", "a"])
        task.cancel()
        #expect(await value(within: .seconds(30)) { await task.value } != nil, "a cancelled lock ends")
    }
}
