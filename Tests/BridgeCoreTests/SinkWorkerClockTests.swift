import BridgeStore
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import BridgeCore

/// The sink worker waits on the clock it is given and dates with its wall time: a retry happens
/// when the test moves time past its backoff, not before, with no real waiting.
@Suite("Sink worker on an injected clock", .timeLimit(.minutes(1)))
struct SinkWorkerClockTests {
    let replica = ReplicaID("worker-test")
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    /// A store with one event routed to `sink`, due at `start`, and this test's replica registered.
    func store(in directory: TemporaryDirectory, sink: String) async throws -> (ObservedStore, BridgeEvent) {
        let store = try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger)
        let event = makeEvent(at: Self.start)
        _ = try await store.journal([JournalEntry(event: event, deduplicationKey: nil, replica: replica)])
        let pending = try await store.unroutedEvents(for: replica, after: 0, limit: 10)
        try await store.commitRouting(
            pending.map { RoutedEvent(sequence: $0.sequence, event: $0.event, changed: false, sinks: [sink]) }, now: Self.start)
        try await store.registerReplica(replica, now: Self.start, lease: .seconds(30 * 86_400))
        return (ObservedStore(store), event)
    }

    func worker(_ store: ObservedStore, recorder: Recorder, clock: ManualTestClock, retry: RetryPolicy) -> SinkWorker {
        SinkWorker(
            name: "s", sink: RecordingSink(recorder: recorder), store: store, retry: retry, concurrency: 1, logger: quietLogger,
            shutdownGrace: .seconds(5), backlog: Backlog(limit: nil), replica: replica, clock: clock, wallClock: { clock.date })
    }

    @Test("a failed delivery sleeps until its backoff is over and is retried when time gets there")
    func retryAfterBackoff() async throws {
        let directory = TemporaryDirectory()
        let (store, event) = try await store(in: directory, sink: "s")
        let clock = ManualTestClock(start: Self.start)
        let recorder = Recorder { _, attempt in attempt.number == 1 ? .fail(.retryable("503")) : .succeed }
        let retry = RetryPolicy(initialBackoff: .seconds(10), maxBackoff: .seconds(60), maxAge: .seconds(3600))
        let worker = worker(store, recorder: recorder, clock: clock, retry: retry)
        let running = Task { await worker.run() }

        // The first try fails; the worker then sleeps until the retry is due: 5 to 10 s (equal jitter).
        #expect(await store.nextOutcome() == "retry")
        let wake = await clock.sleeper { $0.offset < .seconds(29) }
        let due = try #require(try await store.nextDueDate(sink: "s", excluding: []))
        #expect(abs(clock.wallDate(of: wake).timeIntervalSince(due)) < 0.001, "the worker sleeps until the retry is due")
        #expect(due.timeIntervalSince(Self.start) >= 5 && due.timeIntervalSince(Self.start) <= 10)
        #expect(recorder.attempts(for: event.id) == [1])

        // A moment before: still asleep, still one try.
        clock.advance(to: due.addingTimeInterval(-0.01))
        #expect(clock.pendingDeadlines.contains(wake))
        #expect(recorder.attempts(for: event.id) == [1])

        // At the due date: the second try, which succeeds and deletes the delivery.
        clock.advance(to: due)
        #expect(await store.nextOutcome() == "success")
        #expect(recorder.attempts(for: event.id) == [1, 2])
        #expect(try await store.queueDepths().isEmpty)

        worker.stop()
        await running.value
    }

    @Test("the engine registers its replica, renews the lease every third of it on its clock, and releases it at a stop")
    func leaseHeartbeat() async throws {
        let directory = TemporaryDirectory()
        let store = ObservedStore(try SQLiteStateStore(path: directory.file("state.sqlite"), logger: quietLogger), leases: true)
        let clock = ManualTestClock(start: Self.start)
        let engine = DeliveryEngine(
            store: store, router: Router(routes: []), sinks: [], replica: replica, lease: .seconds(30), clock: clock, wallClock: { clock.date },
            logger: quietLogger)
        let t = Self.start.timeIntervalSince1970
        try await EngineTests.withEngine(engine) {
            #expect(await store.nextOutcome() == "register \(t)")
            for renewal in [10.0, 20.0, 30.0] {
                // Both the lease renewal and the dispatcher's look for lapsed replicas sleep until then.
                await clock.sleepers(2, until: .seconds(renewal))
                clock.advance(to: Self.start.addingTimeInterval(renewal))
                #expect(await store.nextOutcome() == "renew \(t + renewal)")
            }
        }
        #expect(await store.nextOutcome() == "release")
    }

    @Test("a delivery past retry.maxAge on its failure becomes a dead letter dated by the wall clock given")
    func deadLetterAtMaxAge() async throws {
        let directory = TemporaryDirectory()
        let (store, _) = try await store(in: directory, sink: "s")
        let clock = ManualTestClock(start: Self.start)
        clock.advance(by: .seconds(7200))
        let recorder = Recorder { _, _ in .fail(.retryable("503")) }
        let retry = RetryPolicy(initialBackoff: .seconds(10), maxBackoff: .seconds(60), maxAge: .seconds(3600))
        let worker = worker(store, recorder: recorder, clock: clock, retry: retry)
        let running = Task { await worker.run() }
        #expect(await store.nextOutcome() == "dead letter")
        let letters = try await store.deadLetters(limit: 10)
        worker.stop()
        await running.value
        #expect(letters.count == 1)
        #expect(letters.first?.deadAt == clock.date)
        #expect(letters.first?.attempts == 1)
    }
}

/// A real store whose delivery outcomes are announced once written, so a test awaits them.
final class ObservedStore: StateStore {
    let base: SQLiteStateStore
    private struct Outcomes {
        var written: [String] = []
        var waiter: CheckedContinuation<String, Never>?
    }
    private let outcomes = Mutex(Outcomes())

    let leases: Bool

    init(_ base: SQLiteStateStore, leases: Bool = false) {
        self.base = base
        self.leases = leases
    }

    /// The next outcome written (in order): "success", "retry" or "dead letter"; with `leases`, also
    /// "register", "renew" and "release" with the time passed (seconds since 1970). One caller at a time.
    func nextOutcome() async -> String {
        await withCheckedContinuation { continuation in
            let ready = outcomes.withLock { state -> String? in
                if !state.written.isEmpty { return state.written.removeFirst() }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private func announce(_ outcome: String) {
        let waiter = outcomes.withLock { state -> CheckedContinuation<String, Never>? in
            guard let waiter = state.waiter else {
                state.written.append(outcome)
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(returning: outcome)
    }

    func recordSuccesses(deliveryIDs: [Int64]) async throws {
        try await base.recordSuccesses(deliveryIDs: deliveryIDs)
        for _ in deliveryIDs { announce("success") }
    }

    func recordRetry(deliveryID: Int64, attempts: Int, nextAttemptAt: Date, error: String) async throws {
        try await base.recordRetry(deliveryID: deliveryID, attempts: attempts, nextAttemptAt: nextAttemptAt, error: error)
        announce("retry")
    }

    func recordDeadLetter(deliveryID: Int64, attempts: Int, error: String, at date: Date) async throws {
        try await base.recordDeadLetter(deliveryID: deliveryID, attempts: attempts, error: error, at: date)
        announce("dead letter")
    }

    func journal(_ entries: [JournalEntry]) async throws -> [JournalOutcome] { try await base.journal(entries) }
    func unroutedEvents(limit: Int) async throws -> [PendingEvent] { try await base.unroutedEvents(limit: limit) }
    func unroutedEvents(for replica: ReplicaID, after sequence: Int64, limit: Int) async throws -> [PendingEvent] {
        try await base.unroutedEvents(for: replica, after: sequence, limit: limit)
    }
    func adoptUnroutedEvents(replica: ReplicaID, now: Date) async throws -> Int { try await base.adoptUnroutedEvents(replica: replica, now: now) }
    func commitRouting(_ events: [RoutedEvent], now: Date) async throws -> Set<Int64> { try await base.commitRouting(events, now: now) }
    func registerReplica(_ replica: ReplicaID, now: Date, lease: Duration) async throws {
        try await base.registerReplica(replica, now: now, lease: lease)
        if leases { announce("register \(now.timeIntervalSince1970)") }
    }
    func renewLease(_ replica: ReplicaID, now: Date, lease: Duration) async throws -> Bool {
        let alive = try await base.renewLease(replica, now: now, lease: lease)
        if leases { announce("renew \(now.timeIntervalSince1970)") }
        return alive
    }
    func releaseReplica(_ replica: ReplicaID) async throws {
        try await base.releaseReplica(replica)
        if leases { announce("release") }
    }
    func claimDeliveries(sink: String, replica: ReplicaID, now: Date, limit: Int) async throws -> [Delivery] {
        try await base.claimDeliveries(sink: sink, replica: replica, now: now, limit: limit)
    }
    func nextDueDate(sink: String, replica: ReplicaID, now: Date) async throws -> Date? {
        try await base.nextDueDate(sink: sink, replica: replica, now: now)
    }
    func dueDeliveries(sink: String, now: Date, limit: Int, excluding: Set<Int64>) async throws -> [Delivery] {
        try await base.dueDeliveries(sink: sink, now: now, limit: limit, excluding: excluding)
    }
    func nextDueDate(sink: String, excluding: Set<Int64>) async throws -> Date? { try await base.nextDueDate(sink: sink, excluding: excluding) }
    func queueDepths() async throws -> [String: QueueDepth] { try await base.queueDepths() }
    func unroutedCount() async throws -> Int { try await base.unroutedCount() }
    func deadLetters(_ selection: DeadLetterSelection, limit: Int) async throws -> DeadLetterPage {
        try await base.deadLetters(selection, limit: limit)
    }
    func retryDeadLetters(_ selection: DeadLetterSelection, now: Date) async throws -> Int { try await base.retryDeadLetters(selection, now: now) }
    func purgeDeadLetters(_ selection: DeadLetterSelection) async throws -> Int { try await base.purgeDeadLetters(selection) }
    func retireDeliveries(exceptFor sinks: Set<String>, error: String, at date: Date) async throws -> [String: Int] {
        try await base.retireDeliveries(exceptFor: sinks, error: error, at: date)
    }
    func prune(deliveredBefore date: Date, deduplicationBefore: Date) async throws {
        try await base.prune(deliveredBefore: date, deduplicationBefore: deduplicationBefore)
    }
}
