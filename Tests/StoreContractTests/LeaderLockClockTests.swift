import BridgeCore
import BridgeSettings
import Foundation
import Logging
import PostgresStore
import Synchronization
import TestSupport
import Testing

/// The leader lock's waits on a clock the test moves, against a real server: a follower asks again
/// only after its retry interval, and a leader whose probe hangs stops leading when the probe's
/// timeout passes on its clock, not before.
@Suite("leader lock timing", .machine(.processes))
struct LeaderLockClockTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Each change of role of one lock, awaitable in order.
    final class RoleChanges: Sendable {
        let stream: AsyncStream<Bool>
        let continuation: AsyncStream<Bool>.Continuation
        init() { (stream, continuation) = AsyncStream.makeStream(of: Bool.self) }
        func changed(_ leading: Bool) { continuation.yield(leading) }
        /// The next change of role.
        func next() async -> Bool? {
            var iterator = stream.makeAsyncIterator()
            return await iterator.next()
        }
    }

    static func leaderBackends(_ server: PostgresServer, _ database: String) async throws -> [String] {
        try await server.query(database: database, "SELECT pid FROM pg_stat_activity WHERE application_name = 'graph-bridge leader' AND datname = current_database()").filter { !$0.isEmpty }
    }

    @Test("a follower asks for the lock again only when its retry interval has passed on its clock")
    func followerRetries() async throws {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        let location = try PostgresLocation.parse(server.url(database: database))

        let holder = RoleChanges()
        let holding = Task {
            await LeaderLock(location: location, logger: Self.quiet).run(changed: holder.changed) {
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(60)) }
            }
        }
        #expect(await holder.next() == true)

        let clock = ManualTestClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        let follower = RoleChanges()
        let following = Task {
            await LeaderLock(location: location, retryInterval: .seconds(5), probeInterval: .seconds(3), clock: clock, logger: Self.quiet)
                .run(changed: follower.changed) {
                    while !Task.isCancelled { try? await Task.sleep(for: .seconds(60)) }
                }
        }
        defer { following.cancel() }
        // Refused: it waits one retry interval.
        await clock.sleepers(1, until: .seconds(5))

        // The holder lets go; the server has released the lock once its session is gone.
        holding.cancel()
        await holding.value
        #expect(
            try await eventually {
                try await server.query(database: database, LeaderLockTests.advisoryLocksHere).first == "0"
            })
        clock.advance(by: .milliseconds(4_999))
        #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(5)], "still waiting: it asks only when the interval is over")
        clock.advance(by: .milliseconds(1))
        #expect(await follower.next() == true)
        following.cancel()
        await following.value
        #expect(await follower.next() == false)
    }

    @Test("a leader's probe that hangs ends its leadership when the probe timeout passes on its clock; a slow probe within it does not")
    func probeTimeout() async throws {
        guard let server = try await PostgresServer.shared() else { try Test.cancel(Comment(rawValue: PostgresServer.unavailableReason)) }
        let database = try await server.createDatabase()
        let location = try PostgresLocation.parse(server.url(database: database))
        let clock = ManualTestClock(start: Date(timeIntervalSince1970: 1_800_000_000))
        let roles = RoleChanges()
        let leading = Task {
            await LeaderLock(
                location: location, retryInterval: .seconds(5), probeInterval: .seconds(1), probeTimeout: .seconds(10), clock: clock, logger: Self.quiet
            ).run(changed: roles.changed) {
                while !Task.isCancelled { try? await Task.sleep(for: .seconds(60)) }
            }
        }
        defer { leading.cancel() }
        #expect(await roles.next() == true)
        // Its watch ticks every 500 ms; the probe is due after 1 s.
        await clock.sleepers(1, until: .milliseconds(500))
        let backends = try await Self.leaderBackends(server, database)
        let backend = try #require(backends.first.flatMap { Int32($0) }, "\(backends)")
        // The server stops answering on the lock's session (its backend is stopped).
        #expect(kill(backend, SIGSTOP) == 0)
        defer { kill(backend, SIGCONT) }
        clock.advance(by: .milliseconds(500))
        await clock.sleepers(1, until: .seconds(1))
        clock.advance(by: .milliseconds(500))
        // The probe is out, waiting at most 10 s on the clock.
        await clock.sleepers(1, until: .seconds(11))
        clock.advance(by: .milliseconds(9_999))
        #expect(clock.pendingDeadlines.map(\.offset) == [.seconds(11)], "within its timeout the probe may still answer")
        clock.advance(by: .milliseconds(1))
        #expect(await roles.next() == false, "a probe past its timeout ends leadership")
        // It closed the session and waits to ask again.
        await clock.sleepers(1, until: .seconds(16))
        kill(backend, SIGCONT)
        leading.cancel()
        await leading.value
    }
}

/// A stopping replica does not wait for an attempt to take the lock that hangs. (A connect that
/// hangs here ends on cancellation by itself too; the query that did not, in the store suite's
/// failure, needs a server that answers the start-up and then nothing, which this test does not have.)
@Suite("leader lock: a cancelled attempt")
struct LeaderLockCancelTests {
    @Test("a lock task cancelled while its connect hangs on a server that never answers ends at once")
    func cancelledWhileConnecting() async throws {
        let server = try SilentListener()
        let location = try PostgresLocation.parse("postgres://bridge@127.0.0.1:\(server.port)/graph?sslmode=disable")
        let lock = LeaderLock(location: location, logger: LeaderLockClockTests.quiet)
        let task = Task { await lock.run { Issue.record("led without a server") } }
        // The attempt is under way: its session waits for the server's answer to its start-up message.
        await server.nextConnection()
        task.cancel()
        let ended: Void? = await value(within: .seconds(5)) { await task.value }
        #expect(ended != nil, "the cancelled lock task still waits for its attempt")
    }
}
