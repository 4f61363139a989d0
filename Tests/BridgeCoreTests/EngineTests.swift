import BridgeCore
import BridgeStore
import Foundation
import ServiceLifecycle
import Testing

@Suite("Delivery engine", .timeLimit(.minutes(2)))
struct EngineTests {
    static let fastRetry = RetryPolicy(initialBackoff: .milliseconds(20), maxBackoff: .milliseconds(100), maxAge: .seconds(3600))

    static func sink(_ name: String, recorder: Recorder, retry: RetryPolicy = fastRetry, concurrency: Int = 2) -> DeliveryEngine.SinkEntry {
        DeliveryEngine.SinkEntry(
            configuration: ConfiguredSink(
                name: name,
                type: RecordingSink.typeName,
                retry: retry,
                concurrency: concurrency,
                factory: SinkFactory(defaultConcurrency: 1) { _ in RecordingSink(recorder: recorder) }
            ),
            sink: RecordingSink(recorder: recorder)
        )
    }

    static func everythingTo(_ sinks: [String]) -> Router { Router(routes: [Route(matcher: nil, sinks: sinks)]) }

    /// Runs the engine in a service group until `body` returns, then shuts it down gracefully.
    static func withEngine(_ engine: DeliveryEngine, _ body: () async throws -> Void) async throws {
        let group = ServiceGroup(configuration: .init(services: [.init(service: engine)], logger: quietLogger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            do {
                try await body()
            } catch {
                await group.triggerGracefulShutdown()
                throw error
            }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    static func journal(_ store: SQLiteStateStore, _ engine: DeliveryEngine, count: Int) async throws -> [BridgeEvent] {
        let events = (0..<count).map { _ in makeEvent() }
        _ = try await store.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil) })
        engine.journalDoorbell.ring()
        return events
    }

    @Test("every journaled event reaches every sink its route names, in order for a single-lane sink")
    func delivers() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let a = Recorder()
        let b = Recorder()
        let engine = DeliveryEngine(store: store, router: Self.everythingTo(["a", "b"]), sinks: [Self.sink("a", recorder: a, concurrency: 1), Self.sink("b", recorder: b)], logger: quietLogger)
        try await Self.withEngine(engine) {
            let events = try await Self.journal(store, engine, count: 50)
            await a.waitForDeliveries(50)
            await b.waitForDeliveries(50)
            #expect(a.delivered == events.map(\.id))
            #expect(Set(b.delivered) == Set(events.map(\.id)))
        }
        #expect(try await store.queueDepths().values.allSatisfy { $0.pending == 0 })
    }

    @Test("a sink that keeps failing holds up no other sink")
    func isolation() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let good = Recorder()
        let failing = Recorder { _, _ in .fail(.retryable("503 Service Unavailable")) }
        let hanging = Recorder { _, _ in .hang }
        let engine = DeliveryEngine(
            store: store,
            router: Self.everythingTo(["failing", "hanging", "good"]),
            sinks: [Self.sink("failing", recorder: failing), Self.sink("hanging", recorder: hanging, concurrency: 1), Self.sink("good", recorder: good, concurrency: 1)],
            shutdownGrace: .milliseconds(100),
            logger: quietLogger
        )
        try await Self.withEngine(engine) {
            let events = try await Self.journal(store, engine, count: 20)
            await good.waitForDeliveries(20)
            #expect(good.delivered == events.map(\.id))
            #expect(failing.delivered.isEmpty)
            // The hanging sink took its first event and holds its only lane: no second attempt.
            #expect(try await eventually { hanging.attemptCount == 1 })
            #expect(hanging.attemptCount == 1)
        }
        // What the failing and hanging sinks did not deliver is still queued.
        let depths = try await store.queueDepths()
        #expect(depths["failing"]?.pending == 20)
        #expect(depths["hanging"]?.pending == 20)
        #expect(depths["good"] == nil)
    }

    @Test("a retryable failure is retried with the same event until it succeeds")
    func retries() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let flaky = Recorder { _, attempt in attempt.number < 3 ? .fail(.retryable("try again")) : .succeed }
        let engine = DeliveryEngine(store: store, router: Self.everythingTo(["flaky"]), sinks: [Self.sink("flaky", recorder: flaky)], logger: quietLogger)
        try await Self.withEngine(engine) {
            let events = try await Self.journal(store, engine, count: 1)
            await flaky.waitForDeliveries(1)
            #expect(flaky.attempts(for: events[0].id) == [1, 2, 3])
        }
    }

    @Test("a permanent failure and an expired one become dead letters")
    func deadLetters() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let rejecting = Recorder { _, _ in .fail(.permanent("400 Bad Request")) }
        let failing = Recorder { _, _ in .fail(.retryable("503")) }
        let shortLived = RetryPolicy(initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(20), maxAge: .milliseconds(500))
        let engine = DeliveryEngine(
            store: store,
            router: Self.everythingTo(["rejecting", "failing"]),
            sinks: [Self.sink("rejecting", recorder: rejecting), Self.sink("failing", recorder: failing, retry: shortLived)],
            logger: quietLogger
        )
        try await Self.withEngine(engine) {
            let events = try await Self.journal(store, engine, count: 1)
            #expect(try await eventually { try await store.queueDepths() == ["rejecting": QueueDepth(pending: 0, dead: 1), "failing": QueueDepth(pending: 0, dead: 1)] })
            #expect(rejecting.attempts(for: events[0].id) == [1])
            let letters = try await store.deadLetters(limit: 10)
            // Retried until maxAge ran out (how many tries fit depends on the machine's load).
            #expect(failing.attempts(for: events[0].id).count >= 1)
            #expect(letters.first { $0.sink == "failing" }?.lastError == "503")
            #expect(Set(letters.map(\.sink)) == ["rejecting", "failing"])
            #expect(letters.first { $0.sink == "rejecting" }?.lastError == "400 Bad Request")
        }
    }

    @Test("after a restart, pending deliveries are delivered")
    func resumes() async throws {
        let directory = TemporaryDirectory()
        let path = directory.file("state.sqlite")
        var events: [BridgeEvent] = []
        do {
            let store = try SQLiteStateStore(path: path, logger: quietLogger)
            let down = Recorder { _, _ in .fail(.retryable("connection refused")) }
            let engine = DeliveryEngine(store: store, router: Self.everythingTo(["sink"]), sinks: [Self.sink("sink", recorder: down)], logger: quietLogger)
            try await Self.withEngine(engine) {
                events = try await Self.journal(store, engine, count: 5)
                #expect(try await eventually { down.attemptCount >= 5 })
            }
        }
        let store = try SQLiteStateStore(path: path, logger: quietLogger)
        let up = Recorder()
        let engine = DeliveryEngine(store: store, router: Self.everythingTo(["sink"]), sinks: [Self.sink("sink", recorder: up)], logger: quietLogger)
        try await Self.withEngine(engine) {
            await up.waitForDeliveries(5)
            #expect(Set(up.delivered) == Set(events.map(\.id)))
        }
    }

    @Test("events that no route matches are recorded as routed with no delivery")
    func unrouted() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let recorder = Recorder()
        let router = Router(routes: [Route(matcher: Matcher([.init(path: EventPath("changeType"), value: .string("deleted"))]), sinks: ["sink"])])
        let engine = DeliveryEngine(store: store, router: router, sinks: [Self.sink("sink", recorder: recorder)], logger: quietLogger)
        try await Self.withEngine(engine) {
            _ = try await Self.journal(store, engine, count: 3)
            #expect(try await eventually { try await store.unroutedEvents(limit: 10).isEmpty })
        }
        #expect(recorder.attemptCount == 0)
        #expect(try await store.queueDepths().isEmpty)
    }
}
