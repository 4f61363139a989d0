import BridgeCore
import BridgeStore
import Foundation
import GraphClient
import ServiceLifecycle
import TestSupport
import Testing

@testable import BridgeGraph

/// When the subscription manager acts, with time moved by the test (``ManualUpkeepClock``) and an
/// in-memory Graph on the same clock: renewals a day and a half apart, retry backoff and
/// `Retry-After`, tested in milliseconds.
@Suite("subscription upkeep timing (manual clock)", .timeLimit(.minutes(1)))
struct UpkeepTimingTests {
    /// The manager on `graph` with `clock` until `body` returns; "listening" at once.
    static func run(
        graph: InMemoryGraph, clock: ManualUpkeepClock, statePath: String, declarations: [SubscriptionManager.Declaration] = [BridgeUnderTest.inbox],
        _ body: (SQLiteStateStore) async throws -> Void
    ) async throws {
        let store = try SQLiteStateStore(path: statePath, logger: quiet)
        let readiness = ListenerReadiness()
        let manager = SubscriptionManager(
            declarations: declarations, graph: graph, store: store, directory: SubscriptionDirectory(), readiness: readiness,
            publicURL: { _ in "https://bridge.example.test" }, logger: quiet, maxRetryDelay: .seconds(900), clock: clock)
        readiness.markListening(port: 443)
        let group = ServiceGroup(configuration: .init(services: [.init(service: manager)], logger: quiet))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body(store)
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test("mail's 4230-minute subscription is renewed once half its lifetime has passed, not a minute before; then again half a lifetime later")
    func renewsAtHalfLife() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualUpkeepClock()
        let graph = InMemoryGraph(now: { clock.now })
        try await Self.run(graph: graph, clock: clock, statePath: directory.file("state.sqlite")) { store in
            _ = try await graph.waitForCall { $0.operation == .create && $0.status == 201 }
            try await clock.waitForSleeps(1)
            let half: Duration = .seconds(4230 * 60 / 2)
            try await clock.advance(by: half - .seconds(60))
            #expect(graph.calls(.renew).isEmpty, "not due yet")
            try await clock.advance(by: .seconds(61))
            #expect(graph.calls(.renew).map(\.status) == [200])
            let record = try #require(try await store.subscriptionRecords().first)
            #expect(abs((record.renewedAt ?? .distantPast).timeIntervalSince(clock.now)) < 1, "stored with the clock's date")

            try await clock.advance(by: half - .seconds(1))
            #expect(graph.calls(.renew).count == 1)
            try await clock.advance(by: .seconds(2))
            #expect(graph.calls(.renew).count == 2)
            #expect(graph.subscriptions.count == 1, "never lapsed")
        }
    }

    @Test("a failed renewal is retried after 2 s, then 4 s (doubling); Graph's longer Retry-After is honoured")
    func renewalBackoff() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualUpkeepClock()
        let graph = InMemoryGraph(now: { clock.now })
        try await Self.run(graph: graph, clock: clock, statePath: directory.file("state.sqlite")) { _ in
            _ = try await graph.waitForCall { $0.operation == .create && $0.status == 201 }
            try await clock.waitForSleeps(1)
            graph.fail(.renew, with: InMemoryGraph.error(503, .serverError, "ServiceUnavailable", "busy"), times: 2)
            graph.fail(.renew, with: InMemoryGraph.error(429, .throttled, "TooManyRequests", "slow down", retryAfter: .seconds(120)))
            try await clock.advance(by: .seconds(4230 * 60 / 2))
            #expect(graph.calls(.renew).map(\.status) == [503])
            // (Steps leave a margin: dates far from 1970 are not exact to the nanosecond.)
            try await clock.advance(by: .milliseconds(1500))
            #expect(graph.calls(.renew).count == 1, "the first retry waits 2 s")
            try await clock.advance(by: .milliseconds(600))
            #expect(graph.calls(.renew).map(\.status) == [503, 503])
            try await clock.advance(by: .milliseconds(3500))
            #expect(graph.calls(.renew).count == 2, "the second waits 4 s")
            try await clock.advance(by: .milliseconds(600))
            #expect(graph.calls(.renew).map(\.status) == [503, 503, 429])
            try await clock.advance(by: .seconds(119))
            #expect(graph.calls(.renew).count == 3, "Retry-After: 120 s, longer than the 8 s backoff")
            try await clock.advance(by: .seconds(2))
            #expect(graph.calls(.renew).map(\.status) == [503, 503, 429, 200])
        }
    }

}
