import BridgeCore
import BridgeStore
import Foundation
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

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

    @Test("an outcome the store cannot write is written again later, and the event is not delivered again meanwhile")
    func unwritableOutcomes() async throws {
        let directory = TemporaryDirectory()
        let store = OutcomeRefusingStore(try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger))
        let sink = Recorder()
        let engine = DeliveryEngine(store: store, router: Self.everythingTo(["sink"]), sinks: [Self.sink("sink", recorder: sink, concurrency: 2)], logger: quietLogger)
        try await Self.withEngine(engine) {
            store.refusing.store(true, ordering: .relaxed)
            let events = try await Self.journal(store.base, engine, count: 5)
            // Each outcome refused three times (100 and 200 ms apart): time enough for a worker that
            // forgets a refused outcome to hand the same events to the sink again and again.
            #expect(try await eventually { store.refusals.load(ordering: .relaxed) >= 3 * sink.attemptCount && sink.attemptCount > 0 })
            #expect(events.allSatisfy { sink.attempts(for: $0.id).count <= 1 }, "no event tried twice: \(sink.attemptCount) tries")
            store.refusing.store(false, ordering: .relaxed)
            #expect(try await eventually { try await store.queueDepths().isEmpty })
            let delivered = sink.delivered
            #expect(delivered.count == events.count && Set(delivered) == Set(events.map(\.id)), "each event delivered once, not \(delivered.count) times in all")
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

    @Test("an event the enricher drops gets no delivery; the others of its batch are delivered in order, enriched by every link of the chain")
    func enricherDrops() async throws {
        let directory = TemporaryDirectory()
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let recorder = Recorder()
        let events = (0..<5).map { makeEvent(resource: "Users/1/Messages/\($0)") }
        let dropped = events[2].id
        // The first link drops one event; the second sees only the rest, and marks them.
        let chain = EnricherChain([
            ScriptedEnricher { $0.event.id == dropped ? nil : $0.event },
            ScriptedEnricher { pending in
                var event = pending.event
                #expect(event.id != dropped)
                event.data = .object(["marked": .bool(true)])
                return event
            },
        ])
        let engine = DeliveryEngine(store: store, router: Self.everythingTo(["sink"]), sinks: [Self.sink("sink", recorder: recorder, concurrency: 1)], enricher: chain, logger: quietLogger)
        try await Self.withEngine(engine) {
            _ = try await store.journal(events.map { JournalEntry(event: $0, deduplicationKey: nil) })
            engine.journalDoorbell.ring()
            await recorder.waitForDeliveries(4)
            #expect(try await store.unroutedEvents(limit: 10).isEmpty, "the dropped event is settled, not left for another try")
        }
        #expect(recorder.delivered == events.map(\.id).filter { $0 != dropped })
        #expect((try await store.queueDepths()["sink"]?.pending ?? 0) == 0)
    }
}

/// An enricher that does what the test says.
struct ScriptedEnricher: EventEnricher {
    let script: @Sendable (PendingEvent) -> BridgeEvent?
    init(_ script: @escaping @Sendable (PendingEvent) -> BridgeEvent?) { self.script = script }
    func enrich(_ pending: PendingEvent) async -> BridgeEvent? { script(pending) }
}

/// A store whose delivery outcomes fail to write while `refusing` is set (as an unwritable disk
/// makes them); everything else goes to the real store.
final class OutcomeRefusingStore: StateStore {
    struct Refused: Error {}

    let base: SQLiteStateStore
    let refusing = Atomic<Bool>(false)
    let refusals = Atomic<Int>(0)

    init(_ base: SQLiteStateStore) { self.base = base }

    /// Counts `outcomes` refused outcomes (a refused batch refuses each of its outcomes).
    private func refuse(_ outcomes: Int = 1) throws {
        guard refusing.load(ordering: .relaxed) else { return }
        refusals.add(outcomes, ordering: .relaxed)
        throw Refused()
    }

    func recordSuccesses(deliveryIDs: [Int64]) async throws {
        try refuse(deliveryIDs.count)
        try await base.recordSuccesses(deliveryIDs: deliveryIDs)
    }

    func recordRetry(deliveryID: Int64, attempts: Int, nextAttemptAt: Date, error: String) async throws {
        try refuse()
        try await base.recordRetry(deliveryID: deliveryID, attempts: attempts, nextAttemptAt: nextAttemptAt, error: error)
    }

    func recordDeadLetter(deliveryID: Int64, attempts: Int, error: String, at date: Date) async throws {
        try refuse()
        try await base.recordDeadLetter(deliveryID: deliveryID, attempts: attempts, error: error, at: date)
    }

    func journal(_ entries: [JournalEntry]) async throws -> [JournalOutcome] { try await base.journal(entries) }
    func unroutedEvents(limit: Int) async throws -> [PendingEvent] { try await base.unroutedEvents(limit: limit) }
    func unroutedEvents(for replica: ReplicaID, after sequence: Int64, limit: Int) async throws -> [PendingEvent] {
        try await base.unroutedEvents(for: replica, after: sequence, limit: limit)
    }
    func adoptUnroutedEvents(replica: ReplicaID, now: Date) async throws -> Int { try await base.adoptUnroutedEvents(replica: replica, now: now) }
    func commitRouting(_ events: [RoutedEvent], now: Date) async throws -> Set<Int64> { try await base.commitRouting(events, now: now) }
    func registerReplica(_ replica: ReplicaID, now: Date, lease: Duration) async throws { try await base.registerReplica(replica, now: now, lease: lease) }
    func renewLease(_ replica: ReplicaID, now: Date, lease: Duration) async throws -> Bool { try await base.renewLease(replica, now: now, lease: lease) }
    func releaseReplica(_ replica: ReplicaID) async throws { try await base.releaseReplica(replica) }
    func claimDeliveries(sink: String, replica: ReplicaID, now: Date, limit: Int) async throws -> [Delivery] {
        try await base.claimDeliveries(sink: sink, replica: replica, now: now, limit: limit)
    }
    func nextDueDate(sink: String, replica: ReplicaID, now: Date) async throws -> Date? { try await base.nextDueDate(sink: sink, replica: replica, now: now) }
    func dueDeliveries(sink: String, now: Date, limit: Int, excluding: Set<Int64>) async throws -> [Delivery] {
        try await base.dueDeliveries(sink: sink, now: now, limit: limit, excluding: excluding)
    }
    func nextDueDate(sink: String, excluding: Set<Int64>) async throws -> Date? { try await base.nextDueDate(sink: sink, excluding: excluding) }
    func queueDepths() async throws -> [String: QueueDepth] { try await base.queueDepths() }
    func unroutedCount() async throws -> Int { try await base.unroutedCount() }
    func deadLetters(_ selection: DeadLetterSelection, limit: Int) async throws -> DeadLetterPage { try await base.deadLetters(selection, limit: limit) }
    func retryDeadLetters(_ selection: DeadLetterSelection, now: Date) async throws -> Int { try await base.retryDeadLetters(selection, now: now) }
    func purgeDeadLetters(_ selection: DeadLetterSelection) async throws -> Int { try await base.purgeDeadLetters(selection) }
    func retireDeliveries(exceptFor sinks: Set<String>, error: String, at date: Date) async throws -> [String: Int] {
        try await base.retireDeliveries(exceptFor: sinks, error: error, at: date)
    }
    func prune(deliveredBefore date: Date, deduplicationBefore: Date) async throws {
        try await base.prune(deliveredBefore: date, deduplicationBefore: deduplicationBefore)
    }
}
